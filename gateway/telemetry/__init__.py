"""Sensor telemetry: device profiles, pure rules, the time-series stores and ESPHome topics.

Readings never become rows of the ticket database: a batch's message ids and the alerts its
rules raise are committed there (`gateway.telemetry.ingest`), and only then are its points
written to the stores (`gateway.telemetry.sink`).
"""
