"""The Celery task of the loop: one thin, idempotent task on the `gpu` queue, and the worker's wiring.

Late acknowledgement (the app's default) means a worker that dies mid-training gets the task delivered
again; `run_retrain_job` then starts the job over (see `retrain.pipeline`).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from celery.signals import worker_process_init, worker_ready

from monitor.worker.app import celery_app
from retrain.jobs import TASK_NAME


@celery_app.task(name=TASK_NAME)
def run_retrain_task(job_id: int) -> dict[str, Any]:
    from retrain.pipeline import run_retrain_job

    return asdict(run_retrain_job(job_id))


@worker_ready.connect
@worker_process_init.connect
def _install_action_handler(**_: Any) -> None:
    # Alert rules are evaluated in workers: a firing rule's `retrain` action must find its handler there.
    from retrain.hooks import install

    install()
