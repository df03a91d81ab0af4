"""The durable outbox on a real SQLite file: order, acks, bounds, drop policy, kill -9."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edge.outbox import CommandClaim, Outbox, OutboxError, OutboxItem, Priority

REPO = Path(__file__).resolve().parents[3]


def item(n: int, priority: Priority = Priority.NORMAL, size: int = 10) -> OutboxItem:
    payload = f"{n:06d}".encode().ljust(size, b".")
    return OutboxItem(
        topic=f"t/{n}",
        payload=payload,
        qos=1,
        retain=False,
        priority=priority,
        kind="event",
        msg_id=f"msg-{n:08d}",
    )


def test_outbox_file_is_wal_with_full_sync(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as box:
        box.put([item(1)])
        assert box._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert box._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_outbox_replays_in_insertion_order_with_identical_bytes(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox(path) as box:
        seqs = [box.put([item(n)])[0] for n in range(20)]
    assert seqs == sorted(seqs)
    with Outbox(path) as box:
        rows = box.peek(limit=100)
    assert [r.payload for r in rows] == [item(n).payload for n in range(20)]
    assert [r.msg_id for r in rows] == [f"msg-{n:08d}" for n in range(20)]
    assert [r.seq for r in rows] == seqs


def test_outbox_ack_deletes_only_acked_rows_and_seq_is_never_reused(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox(path) as box:
        seqs = [box.put([item(n)])[0] for n in range(5)]
        box.delete([seqs[0], seqs[2], 999_999])
        assert [r.seq for r in box.peek()] == [seqs[1], seqs[3], seqs[4]]
        assert box.stats().depth == 3
        box.delete(seqs[3:])
    with Outbox(path) as box:
        assert box.stats().depth == 1
        new = box.put([item(9)])[0]
        assert new > seqs[-1]
        assert [r.seq for r in box.peek(after=seqs[1])] == [new]


def test_outbox_group_is_one_transaction_in_order(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as box:
        seqs = box.put([item(1), item(2)])
        assert seqs[1] == seqs[0] + 1
        assert [r.payload for r in box.peek()] == [item(1).payload, item(2).payload]


@pytest.mark.parametrize(
    ("existing", "incoming", "survivors"),
    [
        # the oldest low item goes first, even if a normal one is older
        (
            [(0, Priority.NORMAL), (1, Priority.LOW), (2, Priority.LOW)],
            (3, Priority.NORMAL),
            [0, 2, 3],
        ),
        # with no low items left, the oldest normal goes
        (
            [(0, Priority.URGENT), (1, Priority.NORMAL), (2, Priority.NORMAL)],
            (3, Priority.URGENT),
            [0, 2, 3],
        ),
        # an incoming low item is itself the oldest low when all else is more urgent
        (
            [(0, Priority.URGENT), (1, Priority.NORMAL), (2, Priority.NORMAL)],
            (3, Priority.LOW),
            [0, 1, 2],
        ),
        # urgent is never dropped: the outbox goes over its bound instead
        (
            [(0, Priority.URGENT), (1, Priority.URGENT), (2, Priority.URGENT)],
            (3, Priority.URGENT),
            [0, 1, 2, 3],
        ),
    ],
)
def test_outbox_drop_policy_by_rows(
    tmp_path: Path,
    existing: list[tuple[int, Priority]],
    incoming: tuple[int, Priority],
    survivors: list[int],
) -> None:
    with Outbox(tmp_path / "o.db", max_rows=3) as box:
        for n, prio in existing:
            box.put([item(n, prio)])
        box.put([item(*incoming)])
        left = [int(r.payload[:6]) for r in box.peek()]
        assert left == survivors
        assert box.stats().dropped == len(existing) + 1 - len(survivors)
        assert box.stats().depth == len(survivors)


def test_outbox_drops_snapshot_with_its_event_and_counts_persist(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox(path, max_rows=100, max_bytes=1000) as box:
        box.put([item(0, Priority.LOW, 300), item(1, Priority.LOW, 100)])  # snapshot + event
        box.put([item(2, Priority.NORMAL, 300)])
        box.put([item(3, Priority.NORMAL, 400)])  # 1100 bytes: the low group (2 rows) goes
        assert [int(r.payload[:6]) for r in box.peek()] == [2, 3]
        assert box.stats().dropped == 2
        assert box.stats().bytes == 700
    with Outbox(path, max_rows=100, max_bytes=1000) as box:
        assert box.stats().dropped == 2
        assert box.stats().bytes == 700
        assert box.stats().depth == 2


def test_outbox_command_ledger_claims_once(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox(path) as box:
        assert box.claim_command("cmd-00000001", 1.0) is CommandClaim.NEW
        assert box.claim_command("cmd-00000001", 2.0) is CommandClaim.INTERRUPTED
        box.complete_command("cmd-00000001", item(1, Priority.URGENT))
        assert box.claim_command("cmd-00000001", 3.0) is CommandClaim.ANSWERED
        assert box.stats().depth == 1
    with Outbox(path) as box:
        assert box.claim_command("cmd-00000001", 4.0) is CommandClaim.ANSWERED


def test_outbox_command_ledger_is_bounded(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", command_ledger_size=3) as box:
        for n in range(5):
            box.claim_command(f"cmd-{n:08d}", float(n))
        count = box._db.execute("SELECT COUNT(*) FROM commands").fetchone()[0]
        assert count == 3
        assert box.claim_command("cmd-00000000", 9.0) is CommandClaim.NEW


def test_outbox_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutboxError, match="cannot open outbox"):
        Outbox(blocker / "o.db")


def test_outbox_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(OutboxError, match="cannot open outbox"):
        Outbox(path)


_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from edge.outbox import Outbox, OutboxItem, Priority
    box = Outbox(Path(sys.argv[1]))
    n = 0
    while True:
        box.put([OutboxItem(topic="t", payload=b"%08d" % n, qos=1, retain=False,
                            priority=Priority.NORMAL, kind="event", msg_id="m%08d" % n)])
        print(n, flush=True)
        n += 1
    """
)


def test_outbox_survives_kill_9_mid_write(tmp_path: Path) -> None:
    """Every put that returned before SIGKILL is on disk; the file is not corrupt."""
    path = tmp_path / "o.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    assert proc.stdout is not None
    confirmed = -1
    for line in proc.stdout:
        confirmed = int(line)
        if confirmed >= 300:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    with Outbox(path) as box:
        payloads = [r.payload for r in box.peek(limit=1_000_000)]
        assert box._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    numbers = [int(p) for p in payloads]
    # Nothing confirmed is lost, nothing is duplicated, order is kept (one more put may have
    # committed between the last print and the kill).
    assert numbers[: confirmed + 1] == list(range(confirmed + 1))
    assert numbers == list(range(len(numbers)))


def test_outbox_rejects_bad_bounds(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="positive"):
        Outbox(tmp_path / "o.db", max_rows=0)


def test_outbox_is_plain_sqlite(tmp_path: Path) -> None:
    """Operators can inspect a stuck outbox with the sqlite3 shell."""
    path = tmp_path / "o.db"
    with Outbox(path) as box:
        box.put([item(1)])
    db = sqlite3.connect(path)
    assert db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 1
    db.close()


_OLD_SCHEMA = """
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, grp INTEGER NOT NULL, topic TEXT NOT NULL,
    payload BLOB NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL,
    priority INTEGER NOT NULL, kind TEXT NOT NULL, msg_id TEXT, created_at REAL NOT NULL
);
CREATE INDEX outbox_drop_order ON outbox (priority, seq);
"""


def test_outbox_file_from_before_end_to_end_acks_is_upgraded_in_place(tmp_path: Path) -> None:
    """A node updated with rows still queued keeps them, and snapshots become ackable by id."""
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(_OLD_SCHEMA)
    db.executemany(
        "INSERT INTO outbox (grp, topic, payload, qos, retain, priority, kind, msg_id,"
        " created_at) VALUES (1, ?, ?, 1, 0, 1, ?, ?, 0)",
        [
            ("guanjia/v1/s1/d1/snapshot/snap-000001", b"\xff\xd8jpeg\xff\xd9", "snapshot", None),
            ("guanjia/v1/s1/d1/event", b"{}", "event", "msg-00000001"),
        ],
    )
    db.commit()
    db.close()
    with Outbox(path) as box:
        rows = box.peek()
        assert [(r.kind, r.snapshot_id, r.msg_id) for r in rows] == [
            ("snapshot", "snap-000001", None),
            ("event", None, "msg-00000001"),
        ]
        assert box.delete_acked(msg_ids=[], snapshot_ids=["snap-000001"]) == [rows[0].seq]
        assert box.stats().depth == 1
    with Outbox(path) as box:  # opening an upgraded file again changes nothing
        assert [r.msg_id for r in box.peek()] == ["msg-00000001"]
        indexes = {r[1] for r in box._db.execute("PRAGMA index_list(outbox)")}
        assert {"outbox_msg_id", "outbox_snapshot_id"} <= indexes


def test_outbox_delete_acked_removes_only_named_rows(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as box:
        snap = OutboxItem(
            topic="t/snap",
            payload=b"jpeg",
            qos=1,
            retain=False,
            priority=Priority.NORMAL,
            kind="snapshot",
            snapshot_id="snap-000002",
        )
        seqs = box.put([snap, item(2)]) + box.put([item(3)])
        assert box.delete_acked(msg_ids=["msg-00000003", "msg-unknown1"], snapshot_ids=[]) == [
            seqs[2]
        ]
        assert box.delete_acked(msg_ids=[], snapshot_ids=["snap-000002"]) == [seqs[0]]
        assert [r.seq for r in box.peek()] == [seqs[1]]
        assert box.stats().depth == 1
        assert [r.seq for r in box.get([seqs[0], seqs[1]])] == [seqs[1]]
