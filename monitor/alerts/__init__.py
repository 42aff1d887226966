"""Alerting: rules evaluated after each window's metrics commit (`state` is the pure state machine,
`evaluation` the database service), alerts with a stored lifecycle, and action requests (e.g. retraining).
Transitions go out as events through the webhook outbox (`monitor.webhooks`).

Other parts register action handlers through `monitor.alerts.actions.register_action_handler`.
"""
