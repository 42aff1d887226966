"""The Celery app. Broker and result backend are Redis (from settings); tasks are late-acknowledged with
prefetch 1, so a task whose worker dies is delivered again rather than lost."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import worker_process_init

from monitor.settings import Settings, get_settings


def _conf(settings: Settings) -> dict[str, Any]:
    return {
        "broker_url": settings.redis_url,
        "result_backend": settings.redis_url,
        "broker_transport_options": {"visibility_timeout": settings.celery_visibility_timeout,
                                     **({"global_keyprefix": settings.celery_key_prefix}
                                        if settings.celery_key_prefix else {})},
        "result_backend_transport_options": ({"global_keyprefix": settings.celery_key_prefix}
                                             if settings.celery_key_prefix else {}),
        "beat_schedule": {
            "driftloop-tick": {"task": "driftloop.tick", "schedule": settings.tick_seconds},
            "driftloop-probes": {"task": "driftloop.schedule_probes", "schedule": 3600.0},
            "driftloop-webhooks-sweep": {"task": "driftloop.webhooks.sweep", "schedule": settings.tick_seconds},
            "driftloop-partitions": {"task": "driftloop.partitions", "schedule": settings.partition_interval_seconds},
            "driftloop-retention": {"task": "driftloop.retention", "schedule": settings.retention_interval_seconds},
            "driftloop-search-index": {"task": "driftloop.search_index", "schedule": settings.search_index_seconds},
        },
    }


# The worker app is a composition root: it names the task modules of both packages, by name only (the queue
# seam that sends tasks imports this module, so it must not import the task modules back). The first one wires
# each worker process (`monitor.composition`).
TASK_MODULES = ("monitor.worker.tasks", "monitor.alerts.tasks", "monitor.webhooks.tasks", "retrain.jobs.tasks")


def make_celery() -> Celery:
    app = Celery("driftloop", include=list(TASK_MODULES))
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_track_started=True,
        task_default_queue="default",
        task_routes={
            "driftloop.run_stage": {"queue": "default"},
            "driftloop.alerts.*": {"queue": "default"},
            "driftloop.webhooks.*": {"queue": "default"},
            "driftloop.retrain.*": {"queue": "gpu"},
        },
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=24 * 3600,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        timezone="UTC",
        **_conf(get_settings()),
    )
    return app


def reconfigure(settings: Settings) -> None:
    """Point the process's Celery app at other settings (the settings object changed after import)."""
    celery_app.conf.update(**_conf(settings))
    # Broker connections, the producer pool and the result backend are made on first use and cached: drop
    # them, or a process that already sent a task keeps talking to the old broker (as Celery does after fork).
    celery_app._pool = None
    amqp = celery_app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None
    celery_app._backend_cache = None
    if hasattr(celery_app._local, "backend"):
        del celery_app._local.backend


celery_app = make_celery()
app = celery_app  # `celery -A monitor.worker.app` finds `app`


@worker_process_init.connect
def _fresh_connections(**_: Any) -> None:
    # A forked pool process must not reuse the parent's database sockets.
    from monitor.db import reset_engines

    reset_engines()
