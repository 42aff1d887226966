"""A simulated support assistant that logs every call through the SDK, as a real app would.

Answers come from a callable (`monitor.demo.answers.canned_answer` in the demo); users and the support team
leave feedback the way they do in practice: thumbs up on many good answers, thumbs down on rude answers and
non-answers, and for some of those a person writes the right answer as a correction. That feedback is the
retraining set (`retrain.dataset.builder`: thumbs-up answers and corrections, toxic targets dropped).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from monitor.demo.answers import RUDE, is_helpful, team_answer
from monitor.sdk import Client


@dataclass
class SupportApp:
    client: Client
    answer: Callable[[str], tuple[str, str]]  # prompt -> (response, model_version)
    rng: random.Random
    toxic_share: float = 0.0
    thumbs_up_share: float = 0.4  # of helpful answers
    correction_share: float = 0.5  # of rude answers and non-answers

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
        if is_helpful(response):
            if roll < self.thumbs_up_share:
                self.client.feedback(event_id, score=1.0, label="thumbs_up")
        elif roll < self.correction_share:  # a person on the team writes the answer the user should have had
            self.client.feedback(event_id, score=0.0, label="thumbs_down", corrected_response=team_answer(prompt))
        elif roll < self.correction_share + (1 - self.correction_share) / 2:
            self.client.feedback(event_id, score=0.0, label="thumbs_down")
