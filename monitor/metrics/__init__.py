"""Metric rows as the outside sees them: the catalog of names, the read queries and the read API."""
