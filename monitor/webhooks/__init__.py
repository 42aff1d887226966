"""Webhooks: the outbox. Events (alert transitions, the loop's retraining and model changes) are stored with the
transaction that caused them, one delivery per subscribed endpoint, signed (Standard Webhooks) and sent after
commit, retried with backoff, every attempt logged.

Other parts emit events through `monitor.webhooks.outbox.emit_event`.
"""
