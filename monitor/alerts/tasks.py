"""Thin Celery task of alerting: ids in, one service call, safe to run twice."""

from __future__ import annotations

from monitor.alerts.evaluation import evaluate_job
from monitor.alerts.subscribers import EVALUATE_TASK
from monitor.db import session_factory
from monitor.settings import get_settings
from monitor.worker.app import celery_app


@celery_app.task(name=EVALUATE_TASK)
def evaluate_rules_task(project_id: int, window_start: str) -> int:
    """Evaluate a project's rules at one window (queued after that window's metrics committed)."""
    return evaluate_job(session_factory(), get_settings(), project_id, window_start)
