"""Sensor telemetry: device profiles, pure rules, the time-series stores and ESPHome topics.

Readings never go through the ticket transaction: they are stored on their own path
(`gateway.telemetry.sink`), and only the conditions the rules find become Alerts.
"""
