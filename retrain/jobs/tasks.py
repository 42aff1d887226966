"""The Celery task of the loop: one thin, idempotent task on the `gpu` queue.

Late acknowledgement (the app's default) means a worker that dies mid-training gets the task delivered
again; `run_retrain_job` then starts the job over (see `retrain.jobs.pipeline`). The worker's wiring (the `retrain`
action handler included) is done by the composition root, `monitor.composition`.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from monitor.worker.app import celery_app
from retrain.jobs.service import TASK_NAME


@celery_app.task(name=TASK_NAME)
def run_retrain_task(job_id: int) -> dict[str, Any]:
    from retrain.jobs.pipeline import run_retrain_job  # the training stack (torch) is imported on first use

    return asdict(run_retrain_job(job_id))
