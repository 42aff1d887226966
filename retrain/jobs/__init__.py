"""Retraining jobs: rows and queueing (`service`), the run itself (`pipeline`), its Celery task (`tasks`),
and the alert action that starts one (`alerting`)."""
