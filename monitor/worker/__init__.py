"""Celery entry point: `celery -A monitor.worker.app worker -Q default,gpu` and `... beat`."""
