"""Retention: events and feedback older than `DRIFTLOOP_RETENTION_DAYS` deleted in short batches (service, CLI)."""
