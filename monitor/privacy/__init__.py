"""Privacy by default: PII detectors and redaction (`detectors`, `redact`: standard library only, shared with the
SDK) and the collector's policy and ingestion hook (`policy`, `ingest`). This `__init__` imports nothing, so the
SDK can import the stdlib-only modules without pulling in the service."""
