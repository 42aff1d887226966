"""Fault scripts: each breaks one real part (collector, one of several collectors behind nginx, Postgres, a Celery
worker, a webhook receiver) and checks the promise RELIABILITY.md makes about it. `python -m bench.faults [--quick]`
runs them all."""

SCRIPTS = ("collector_down", "collector_kill", "postgres_restart", "worker_kill", "webhook_down")
