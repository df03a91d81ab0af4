"""The gateway: MQTT ingest, device registry, tickets with SLA and escalation, REST API.

Imports the contract; never imports the edge.
"""
