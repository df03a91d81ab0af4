"""What goes into the outbox and comes back out: items, stored rows, priorities, stats, errors."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Literal

from contract import Severity


class Priority(IntEnum):
    """Drop order under pressure: lowest value goes first; URGENT never goes."""

    LOW = 0
    NORMAL = 1
    URGENT = 2

    @classmethod
    def of(cls, severity: Severity) -> Priority:
        """The priority of an event's severity."""
        return {Severity.LOW: cls.LOW, Severity.NORMAL: cls.NORMAL, Severity.URGENT: cls.URGENT}[
            severity
        ]


class CommandClaim(StrEnum):
    """What the ledger knows about a command id."""

    NEW = "new"
    """Never seen: it is now recorded as started; execute it."""
    ANSWERED = "answered"
    """Executed and answered already: do nothing."""
    INTERRUPTED = "interrupted"
    """Started before a crash but never answered: do not re-run it; answer that it was cut off."""


@dataclass(frozen=True)
class OutboxItem:
    """One message to publish: exact bytes, where, and how urgent."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    priority: Priority
    kind: Literal["event", "snapshot", "command_result", "other"]
    msg_id: str | None = None
    snapshot_id: str | None = None
    """The key a gateway Ack names a snapshot by (snapshots carry no msg_id)."""


@dataclass(frozen=True)
class StoredItem:
    """An item as stored, with its position in the replay order."""

    seq: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    kind: str
    msg_id: str | None
    snapshot_id: str | None = None

    @property
    def ackable(self) -> bool:
        """True when a gateway Ack can name this row (else it goes on its PUBACK)."""
        return self.msg_id is not None or self.snapshot_id is not None


@dataclass(frozen=True)
class OutboxStats:
    """Depth and drop counter, for heartbeats."""

    depth: int
    bytes: int
    dropped: int


@dataclass(frozen=True)
class CommitStats:
    """How the puts were committed so far (since open): groups per transaction, for benchmarks."""

    groups: int
    """Groups (`put` calls) committed."""
    commits: int
    """Transactions (one fsync each with ``synchronous=full``) they took."""


class OutboxError(RuntimeError):
    """The outbox file cannot be opened or written."""
