"""Resident reports (业主吹哨): the public QR-code report, its abuse protection, tracking and
satisfaction ratings. The service (`gateway.residents.service`) is what routes and console
pages call."""
