"""driftloop: production monitoring and a closed retraining loop for LLM applications.

`monitor` is the core (collector, metrics, alerts). `retrain` builds on it and is never imported
from here, except by the two entry points (the API app and the Celery app).
"""

__version__ = "0.1.0"
