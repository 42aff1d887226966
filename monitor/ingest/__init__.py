"""Ingestion: events and feedback from the SDK (`routes`, `service`) and OpenTelemetry spans (`otlp`)."""
