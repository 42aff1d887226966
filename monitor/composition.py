"""The composition root's wiring: what runs after what, listed where it is wired.

Everything that exists in a process is listed in a table, instead of being registered as a side effect of
importing some module: the runner's subscribers and the inline table of the queue seam (task name -> the
function its Celery task calls, the same one). The entry points call `wire()`: the CLI (`monitor.cli`, which
also mounts the command groups), the API app factory (`monitor.api.app`, which also mounts the routers), the
Celery worker processes (`monitor.worker.tasks`). These entry points and the demo (`monitor.demo.run`) are the
composition roots: the import contracts in `pyproject.toml` (`lint-imports`) allow them, and no other
`monitor` module, to import `retrain`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from monitor import queue, runner
from monitor.alerts.evaluation import evaluate_job
from monitor.alerts.subscribers import EVALUATE_TASK, deliver_due_webhooks, evaluate_after_window
from monitor.events.indexing import index_after_run
from monitor.partitions.service import upkeep_after_run
from monitor.retention.service import retention_after_run
from monitor.settings import Settings
from monitor.webhooks.dispatch import DELIVER_TASK, deliver_job
from retrain.jobs import alerting as retrain_alerting
from retrain.jobs.service import TASK_NAME as RETRAIN_TASK

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker


def run_retrain_job(factory: sessionmaker[Session], settings: Settings, job_id: int) -> Any:
    # Imported on use: the training stack (torch) takes seconds to import, and most processes never train.
    from retrain.jobs.pipeline import run_job

    return run_job(factory, settings, job_id)

INLINE_TASKS: dict[str, queue.InlineTask] = {
    EVALUATE_TASK: evaluate_job,
    DELIVER_TASK: deliver_job,
    RETRAIN_TASK: run_retrain_job,
}
AFTER_WINDOW = (evaluate_after_window,)
AFTER_RUN = (deliver_due_webhooks, upkeep_after_run, retention_after_run, index_after_run)


def wire() -> None:
    """Hand the explicit tables to the runner and the queue seam (idempotent: tables are replaced)."""
    runner.wire(after_window=AFTER_WINDOW, after_run=AFTER_RUN)
    queue.set_inline_tasks(INLINE_TASKS)


def install_action_handlers(settings: Settings | None = None) -> bool:
    """A firing rule's `retrain` action is handled in the process that evaluates it: installed at the process
    entry points (the CLI's `main`, worker processes), never on import."""
    return retrain_alerting.install(settings)
