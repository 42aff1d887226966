"""A simulated support assistant that logs every call through the SDK, as a real app would.

Answers come from a callable (canned answers by default, the model server in the full demo); users leave
feedback: mostly thumbs up on good answers, sometimes a correction.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from monitor.sdk import Client

CANNED = {
    "password": "Go to Settings > Security and choose Reset password; a link arrives by e-mail within minutes.",
    "charge": "I can see that charge. Refunds go back to the original card within 5-7 business days.",
    "order": "Your order is on its way; the tracking page shows the latest scan and the delivery estimate.",
    "default": "Thanks for reaching out! Could you share a few more details so I can help?",
}
RUDE = [
    "That's a stupid question, figure it out yourself.",
    "Ugh, you people are idiots. Read the damn FAQ.",
    "Stop wasting my time with this crap.",
]


def canned_answer(prompt: str) -> str:
    p = prompt.lower()
    if "password" in p or "account" in p or "email" in p:
        return CANNED["password"]
    if "charge" in p or "refund" in p or "invoice" in p or "billing" in p:
        return CANNED["charge"]
    if "order" in p or "package" in p or "ship" in p or "deliver" in p:
        return CANNED["order"]
    return CANNED["default"]


@dataclass
class SupportApp:
    client: Client
    answer: Callable[[str], tuple[str, str]]  # prompt -> (response, model_version)
    rng: random.Random
    toxic_share: float = 0.0

    def handle(self, prompt: str, at: datetime) -> str:
        start = time.perf_counter()
        response, version = self.answer(prompt)
        if self.toxic_share and self.rng.random() < self.toxic_share:
            response = self.rng.choice(RUDE)
        latency = (time.perf_counter() - start) * 1000 + self.rng.lognormvariate(5.5, 0.3)
        event_id = self.client.log(
            prompt, response, model="support-assistant", model_version=version, latency_ms=latency,
            prompt_tokens=len(prompt.split()), completion_tokens=len(response.split()), timestamp=at,
            metadata={"locale": self.rng.choice(["en-US", "en-GB", "de-DE"]), "channel": "chat"},
        )
        self._feedback(event_id, prompt, response)
        return event_id

    def _feedback(self, event_id: str, prompt: str, response: str) -> None:
        roll = self.rng.random()
        if response in RUDE:
            self.client.feedback(event_id, score=0.0, label="thumbs_down",
                                 corrected_response=canned_answer(prompt) if roll < 0.5 else None)
        elif roll < 0.35:
            self.client.feedback(event_id, score=1.0, label="thumbs_up")
        elif roll < 0.45:
            self.client.feedback(event_id, score=0.0, label="thumbs_down",
                                 corrected_response=f"{canned_answer(prompt)} Is there anything else I can do?")
