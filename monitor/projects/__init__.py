"""Projects and their API keys: the tenant every event, metric and rule belongs to."""
