"""Alerting: rules evaluated after each window's metrics commit, alerts with a stored lifecycle, signed
webhooks (Standard Webhooks) delivered from an outbox, and action requests (e.g. retraining).

Other parts emit events through `monitor.alerts.events.emit_event` and register action handlers through
`monitor.alerts.actions.register_action_handler`.
"""
