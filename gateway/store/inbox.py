"""The ledger of incoming messages: processed message ids and dead letters.

Every accepted message id is a ``processed_messages`` row (per sending device) written with
its effect (by `IngestTx`), which is what drops redeliveries; every refused message is a
dead letter with its topic, the site and device the topic names, a payload excerpt and the
reason. Dead letters expire by age and are capped per device (`prune_dead_letters`, run by
the SLA loop), so a device sending garbage cannot fill the database; so do snapshots no
event took as evidence (`prune_snapshots`).
"""

from __future__ import annotations

from sqlalchemy import and_, delete, func, or_, select

from gateway.models import DeadLetterPublic
from gateway.store.base import Part, from_row
from gateway.store.schema import dead_letters, processed_messages, snapshots


class InboxStore(Part):
    """Dead letters in and out; forgetting processed ids once no redelivery can come, and
    snapshots no event wants."""

    def dead_letter(
        self, topic: str, payload: bytes, error_kind: str, reason: str, now: float
    ) -> None:
        """Record a refused message with a bounded excerpt of its payload."""
        self._db.ingest(lambda tx: tx.dead_letter(topic, payload, error_kind, reason), now)

    def list_dead_letters(
        self, sites: list[str] | None, *, offset: int = 0, limit: int = 100
    ) -> list[DeadLetterPublic]:
        """Newest refused messages first: of `sites` only, or of every site (None). A letter
        whose topic names no parsable site is listed only to all-site callers."""
        query = select(dead_letters).order_by(dead_letters.c.id.desc())
        if sites is not None:
            query = query.where(dead_letters.c.site_id.in_(sites))
        with self._read() as conn:
            rows = conn.execute(query.offset(offset).limit(limit)).all()
        return [from_row(DeadLetterPublic, r) for r in rows]

    def dead_letter_count(self) -> int:
        """All refused messages."""
        with self._read() as conn:
            return int(conn.execute(select(func.count()).select_from(dead_letters)).scalar_one())

    def prune_dead_letters(self, older_than: float, per_device: int) -> int:
        """Forget dead letters received before `older_than`, and all but the newest
        `per_device` of each (site, device) — letters naming no device count as one."""
        ranked = select(
            dead_letters.c.id,
            func.row_number()
            .over(
                partition_by=(dead_letters.c.site_id, dead_letters.c.device_id),
                order_by=dead_letters.c.id.desc(),
            )
            .label("rank"),
        ).subquery()
        beyond_cap = select(ranked.c.id).where(ranked.c.rank > per_device)
        with self._tx() as conn:
            old = conn.execute(delete(dead_letters).where(dead_letters.c.received_at < older_than))
            capped = conn.execute(delete(dead_letters).where(dead_letters.c.id.in_(beyond_cap)))
            return int(old.rowcount) + int(capped.rowcount)

    def prune_snapshots(self, orphaned_before: float, pending_before: float) -> int:
        """Delete snapshots no event took as evidence that arrived before `orphaned_before`
        (a device cannot store JPEGs under made-up ids for long), and snapshots an event
        announced before `pending_before` that never arrived."""
        orphan = and_(snapshots.c.linked_at.is_(None), snapshots.c.received_at < orphaned_before)
        never_came = and_(snapshots.c.data.is_(None), snapshots.c.linked_at < pending_before)
        with self._tx() as conn:
            return int(conn.execute(delete(snapshots).where(or_(orphan, never_came))).rowcount)

    def prune_processed(self, older_than: float) -> int:
        """Forget message ids older than the broker could still redeliver."""
        with self._tx() as conn:
            return int(
                conn.execute(
                    delete(processed_messages).where(processed_messages.c.received_at < older_than)
                ).rowcount
            )
