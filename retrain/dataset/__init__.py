"""The training set: feedback rows in (`store`), a content-addressed snapshot out (`builder`), PII scrubbed (`pii`)."""
