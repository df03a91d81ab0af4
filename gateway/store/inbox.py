"""The ledger of incoming messages: processed message ids and dead letters.

Every accepted message id is a ``processed_messages`` row written with its effect (by
`IngestTx`), which is what drops redeliveries; every refused message is a dead letter with
its topic, a payload excerpt and the reason.
"""

from __future__ import annotations

from sqlalchemy import delete, func, select

from gateway.models import DeadLetterPublic
from gateway.store.base import StoreBase
from gateway.store.schema import dead_letters, processed_messages


class InboxStore(StoreBase):
    """Dead letters in and out; forgetting processed ids once no redelivery can come."""

    def dead_letter(
        self, topic: str, payload: bytes, error_kind: str, reason: str, now: float
    ) -> None:
        """Record a refused message with a bounded excerpt of its payload."""
        self.ingest(lambda tx: tx.dead_letter(topic, payload, error_kind, reason), now)

    def list_dead_letters(self, *, offset: int = 0, limit: int = 100) -> list[DeadLetterPublic]:
        """Newest refused messages first."""
        with self._read() as conn:
            rows = conn.execute(
                select(dead_letters).order_by(dead_letters.c.id.desc()).offset(offset).limit(limit)
            ).all()
        return [DeadLetterPublic(**dict(r._mapping)) for r in rows]

    def dead_letter_count(self) -> int:
        """All refused messages."""
        with self._read() as conn:
            return int(conn.execute(select(func.count()).select_from(dead_letters)).scalar_one())

    def prune_processed(self, older_than: float) -> int:
        """Forget message ids older than the broker could still redeliver."""
        with self._tx() as conn:
            return int(
                conn.execute(
                    delete(processed_messages).where(processed_messages.c.received_at < older_than)
                ).rowcount
            )
