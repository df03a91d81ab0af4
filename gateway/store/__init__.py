"""The gateway's data layer: the only package that imports SQLAlchemy (plus the Alembic
migrations in `gateway/migrations`). Everything else talks to `Store`."""

from gateway.store.base import ConflictError, NotFoundError
from gateway.store.engine import StoreUnavailableError, database_url, migrate, url_problem
from gateway.store.ingest_tx import IngestTx
from gateway.store.repository import Store
from gateway.store.snapshot_tx import SnapshotOutcome
from gateway.store.webhooks import Delivery

__all__ = [
    "ConflictError",
    "Delivery",
    "IngestTx",
    "NotFoundError",
    "SnapshotOutcome",
    "Store",
    "StoreUnavailableError",
    "database_url",
    "migrate",
    "url_problem",
]
