"""Alembic environment and revisions of the gateway schema (`gateway.store.schema`)."""
