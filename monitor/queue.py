"""The one queue seam: work is queued by task *name*, with ids, after the session commits.

`enqueue(session, task_name, *args)` is the only way a service starts follow-up work:
- Celery runner: the task is sent by name (`send_task`) once the session's transaction has committed, so a
  task never sees a row that was rolled back; on rollback nothing is sent.
- In-process runner (embedded mode, tests, the demo): the inline function registered under the same name runs
  right after that commit, in this process, with a session factory on the committed session's connection.

Services therefore never import task modules and never look at the runner setting: this module is the one
place that does. The inline table (task name -> function) is an explicit table handed over by the composition
root (`monitor.composition`); the Celery task of a name calls the very same function.
"""

from __future__ import annotations

import logging
import queue as _queue_mod
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from monitor.settings import Settings, get_settings

log = logging.getLogger(__name__)
_KEY = "driftloop_after_commit"

# `(factory, settings, *args) -> anything`: what a task name runs as in the in-process runner.
InlineTask = Callable[..., Any]
_inline: dict[str, InlineTask] = {}


@dataclass(frozen=True)
class Step:
    """One task of a chain: its name, its (JSON) arguments and the Celery queue it runs on."""
    task: str
    args: tuple[Any, ...]
    queue: str = "default"


def set_inline_tasks(table: Mapping[str, InlineTask]) -> None:
    """The composition root's table of inline tasks (replaces the previous one: wiring twice is harmless)."""
    _inline.clear()
    _inline.update(table)


def runs_inline(settings: Settings | None = None) -> bool:
    """True in the in-process runner (work runs in this process), False with Celery."""
    return (settings or get_settings()).runner != "celery"


def _run_after_commit(session: Session) -> None:
    # after_commit also fires when a savepoint commits; only the outermost commit makes rows visible.
    if session.in_nested_transaction():
        return
    callbacks = session.info.pop(_KEY, [])
    for callback in callbacks:
        try:
            callback()
        except Exception:  # the data is committed; a failed send is retried by the due-sweeps
            log.exception("after-commit callback failed")


def _discard_on_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the outermost transaction ended without (or after) running them
        session.info.pop(_KEY, None)


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run `callback` once the session's current transaction has committed; never if it rolls back.

    A callback registered inside a savepoint that is later rolled back still runs after the outer commit;
    callbacks therefore carry ids and the work they start tolerates ids that no longer exist.
    """
    if _KEY not in session.info:
        session.info[_KEY] = []
        if not event.contains(session, "after_commit", _run_after_commit):
            event.listen(session, "after_commit", _run_after_commit)
            event.listen(session, "after_transaction_end", _discard_on_end)
    session.info[_KEY].append(callback)


def factory_like(session: Session) -> sessionmaker[Session]:
    # Same engine (or, in tests, the same outer connection) as the session that committed.
    return sessionmaker(bind=session.get_bind(), expire_on_commit=False, join_transaction_mode="create_savepoint")


def run_inline(task_name: str, *args: Any, factory: sessionmaker[Session] | None = None,
               settings: Settings | None = None) -> Any:
    """Run the inline function of `task_name` now, in this process."""
    try:
        fn = _inline[task_name]
    except KeyError:
        known = ", ".join(sorted(_inline)) or "none: monitor.composition.wire() was not called"
        raise LookupError(f"no inline task {task_name!r} (known: {known})") from None
    if factory is None:
        from monitor.db import session_factory

        factory = session_factory()
    return fn(factory, settings or get_settings(), *args)


def send(task_name: str, *args: Any, queue: str = "default", countdown: float | None = None) -> None:
    """Send a task to Celery by name, now (callers outside a transaction, or after its commit)."""
    from monitor.worker.app import celery_app

    celery_app.send_task(task_name, args=list(args), queue=queue, countdown=countdown)


def dispatch(task_name: str, *args: Any, settings: Settings | None = None,
             factory: sessionmaker[Session] | None = None, queue: str = "default") -> None:
    """Start committed work now: send it to Celery, or run it inline in this process."""
    settings = settings or get_settings()
    if runs_inline(settings):
        run_inline(task_name, *args, factory=factory, settings=settings)
    else:
        send(task_name, *args, queue=queue)


class SerialRunner:
    """Embedded mode's worker for heavy tasks (retraining): one daemon thread running queued tasks one at a time.

    A web request must never run them itself: five `POST /v1/retrain` calls used to train five models at once
    inside the collector (1.6 GB, crashed jobs). Here the request only queues the job id and answers; the thread
    runs the jobs in order, each with the session factory and settings it was queued with. Started on first use.
    A task that raises is logged and the next one runs (the task records its own failure, like a Celery task).
    Jobs queued when the process ends are lost with it: their rows stay `queued` until the abandoned-job timeout
    marks them failed (retrain.jobs.service).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._queue: _queue_mod.Queue[tuple[str, tuple[Any, ...], sessionmaker[Session] | None, Settings]] = (
            _queue_mod.Queue())
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, task_name: str, *args: Any, factory: sessionmaker[Session] | None = None,
               settings: Settings | None = None) -> None:
        self._queue.put((task_name, args, factory, settings or get_settings()))
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=f"driftloop-{self.name}", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            task_name, args, factory, settings = self._queue.get()
            try:
                run_inline(task_name, *args, factory=factory, settings=settings)
            except Exception:
                log.exception("%s: task %s%r failed", self.name, task_name, args)
            finally:
                self._queue.task_done()

    def join(self) -> None:
        """Wait until every queued task has run (tests, the CLI, shutdown)."""
        self._queue.join()

    def pending(self) -> int:
        return self._queue.unfinished_tasks


_serial: dict[str, SerialRunner] = {}
_serial_lock = threading.Lock()


def serial_runner(queue: str) -> SerialRunner:
    """The process's serial runner of a queue (one thread per queue name: `gpu` work never runs two at a time)."""
    with _serial_lock:
        runner = _serial.get(queue)
        if runner is None:
            runner = _serial[queue] = SerialRunner(queue)
        return runner


def submit(task_name: str, *args: Any, settings: Settings | None = None,
           factory: sessionmaker[Session] | None = None, queue: str = "default") -> None:
    """Start committed work in the background: send it to Celery, or (embedded mode) hand it to this process's
    serial runner for `queue`. Returns at once either way: for request handlers, which must not run it."""
    settings = settings or get_settings()
    if runs_inline(settings):
        serial_runner(queue).submit(task_name, *args, factory=factory, settings=settings)
    else:
        send(task_name, *args, queue=queue)


def enqueue(session: Session, task_name: str, *args: Any, settings: Settings | None = None,
            queue: str = "default") -> None:
    """Queue `task_name(*args)` to start once `session` commits (dropped if it rolls back)."""
    settings = settings or get_settings()
    if runs_inline(settings):
        factory = factory_like(session)
        after_commit(session, lambda: run_inline(task_name, *args, factory=factory, settings=settings))
    else:
        after_commit(session, lambda: send(task_name, *args, queue=queue))


def enqueue_chain(session: Session, steps: Sequence[Step], *, settings: Settings | None = None) -> None:
    """Queue tasks that run one after another (each on its own queue) once `session` commits."""
    settings = settings or get_settings()
    if runs_inline(settings):
        factory = factory_like(session)

        def run_all() -> None:
            for step in steps:
                run_inline(step.task, *step.args, factory=factory, settings=settings)

        after_commit(session, run_all)
        return

    def send_chain() -> None:
        from celery import chain

        from monitor.worker.app import celery_app

        chain(*[celery_app.signature(s.task, args=list(s.args), immutable=True).set(queue=s.queue)
                for s in steps]).apply_async()

    after_commit(session, send_chain)
