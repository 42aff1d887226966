"""The driftloop app SDK: log LLM calls and feedback to a driftloop collector.

Imports only the standard library and httpx, so `pip install driftloop` stays light.

    from monitor.sdk import Client
    dl = Client("http://collector:8000", api_key="...")
    event_id = dl.log(prompt, response, model="smollm2-135m", latency_ms=120)
    dl.feedback(event_id, score=1)
"""

from monitor.sdk.client import LOG_BLOCK_BOUND_SECONDS, Client
from monitor.sdk.items import Limits
from monitor.sdk.openai_wrapper import wrap_openai
from monitor.sdk.spool import default_spool_dir
from monitor.sdk.stats import Stats
from monitor.sdk.tracing import Trace, current_trace
from monitor.sdk.webhooks import WebhookVerificationError, sign_webhook, verify_webhook
from monitor.sdk.wire import RetryPolicy

__all__ = [
    "LOG_BLOCK_BOUND_SECONDS",
    "Client",
    "Limits",
    "RetryPolicy",
    "Stats",
    "Trace",
    "WebhookVerificationError",
    "current_trace",
    "default_spool_dir",
    "sign_webhook",
    "verify_webhook",
    "wrap_openai",
]
