"""Group commit in the outbox: concurrent puts share a transaction, none returns before it.

`GroupCommit` is driven with a write function the test holds open, so which requests share a
batch is deterministic; the outbox tests then check the guarantee that matters on a real file:
a put that returned is committed (visible to another connection), and a kill -9 with several
threads putting loses nothing any of them was told is stored.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from edge.outbox import Outbox, OutboxItem, Priority
from edge.outbox.group_commit import GroupCommit

REPO = Path(__file__).resolve().parents[3]


def _item(thread: int, n: int) -> OutboxItem:
    return OutboxItem(
        topic=f"t/{thread}",
        payload=b"%02d:%06d" % (thread, n),
        qos=1,
        retain=False,
        priority=Priority.NORMAL,
        kind="event",
        msg_id=f"m-{thread:02d}-{n:06d}",
    )


class _HeldWrite:
    """A write function that blocks until released, recording each batch it got."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.entered = threading.Semaphore(0)
        self.release = threading.Semaphore(0)
        self.fail = False

    def __call__(self, requests: Sequence[str]) -> list[str]:
        self.batches.append(list(requests))
        self.entered.release()
        self.release.acquire()
        if self.fail:
            raise OSError("disk full")
        return [r.upper() for r in requests]


def _submit_in_thread(commit: GroupCommit[str, str], request: str, out: dict[str, object]) -> None:
    def run() -> None:
        try:
            out[request] = commit.submit(request)
        except OSError as exc:
            out[request] = exc

    thread = threading.Thread(target=run)
    thread.start()
    out[f"thread-{request}"] = thread


def _wait_queued(commit: GroupCommit[str, str], n: int) -> None:
    deadline = time.monotonic() + 5
    while commit.pending() < n:
        assert time.monotonic() < deadline, f"{commit.pending()} of {n} requests queued"
        time.sleep(0.001)


def test_group_commit_requests_queued_behind_a_commit_share_the_next_one() -> None:
    write = _HeldWrite()
    commit: GroupCommit[str, str] = GroupCommit(write)
    out: dict[str, object] = {}
    _submit_in_thread(commit, "a", out)
    assert write.entered.acquire(timeout=5)  # "a" leads and is writing
    for name in ("b", "c", "d"):
        _submit_in_thread(commit, name, out)
    _wait_queued(commit, 3)
    assert "b" not in out  # nobody returns while its batch is not written
    write.release.release()  # "a" commits
    assert write.entered.acquire(timeout=5)  # the next leader writes b, c, d at once
    assert "b" not in out
    write.release.release()
    for name in "abcd":
        thread = out[f"thread-{name}"]
        assert isinstance(thread, threading.Thread)
        thread.join(5)
    assert write.batches == [["a"], ["b", "c", "d"]]
    assert [out[n] for n in "abcd"] == ["A", "B", "C", "D"]


def test_group_commit_next_leader_waits_for_the_last_batchs_callers() -> None:
    """After a batch of three, the first caller back waits for the other two (not alone)."""
    write = _HeldWrite()
    commit: GroupCommit[str, str] = GroupCommit(write, max_wait_s=5.0)
    out: dict[str, object] = {}
    _submit_in_thread(commit, "a", out)
    assert write.entered.acquire(timeout=5)
    for name in ("b", "c", "d"):
        _submit_in_thread(commit, name, out)
    _wait_queued(commit, 3)
    write.release.release()
    assert write.entered.acquire(timeout=5)  # writing [b, c, d]
    time.sleep(0.5)  # this write "took" 0.5 s: the next leader may wait that long
    write.release.release()
    for name in "efg":
        _submit_in_thread(commit, name, out)
    assert write.entered.acquire(timeout=5)
    write.release.release()
    for name in "abcdefg":
        thread = out[f"thread-{name}"]
        assert isinstance(thread, threading.Thread)
        thread.join(5)
    assert write.batches == [["a"], ["b", "c", "d"], ["e", "f", "g"]]


def test_group_commit_failure_reaches_every_caller_of_the_batch_only() -> None:
    write = _HeldWrite()
    commit: GroupCommit[str, str] = GroupCommit(write)
    out: dict[str, object] = {}
    _submit_in_thread(commit, "a", out)
    assert write.entered.acquire(timeout=5)
    _submit_in_thread(commit, "b", out)
    _submit_in_thread(commit, "c", out)
    _wait_queued(commit, 2)
    write.release.release()  # "a" succeeds
    assert write.entered.acquire(timeout=5)
    write.fail = True
    write.release.release()  # "b" and "c" fail together
    for name in "abc":
        thread = out[f"thread-{name}"]
        assert isinstance(thread, threading.Thread)
        thread.join(5)
    assert out["a"] == "A"
    assert isinstance(out["b"], OSError)
    assert isinstance(out["c"], OSError)
    write.fail = False
    write.release.release()  # the next caller leads again
    assert commit.submit("e") == "E"
    assert write.batches[-1] == ["e"]


def test_outbox_concurrent_puts_share_commits_and_each_returns_committed(tmp_path: Path) -> None:
    """Eight camera threads: every put, when it returns, is visible to another connection."""
    path = tmp_path / "o.db"
    threads, per_thread = 8, 40
    invisible: list[str] = []
    with Outbox(path) as box:

        def camera(t: int) -> None:
            reader = sqlite3.connect(path)
            try:
                for n in range(per_thread):
                    item = _item(t, n)
                    box.put([item])
                    found = reader.execute(
                        "SELECT COUNT(*) FROM outbox WHERE msg_id = ?", (item.msg_id,)
                    ).fetchone()[0]
                    if found != 1:
                        invisible.append(str(item.msg_id))
            finally:
                reader.close()

        workers = [threading.Thread(target=camera, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(60)
        stats = box.commit_stats()
        rows = box.peek(limit=10_000)
    assert invisible == []
    assert stats.groups == threads * per_thread
    # Each thread's own rows keep its order; with eight threads waiting on fsyncs, puts share.
    for t in range(threads):
        mine = [r.payload for r in rows if r.topic == f"t/{t}"]
        assert mine == [_item(t, n).payload for n in range(per_thread)]
    assert stats.commits < stats.groups


_THREADED_WRITER = textwrap.dedent(
    """
    import sys, threading
    from pathlib import Path
    from edge.outbox import Outbox, OutboxItem, Priority
    box = Outbox(Path(sys.argv[1]))
    lock = threading.Lock()
    pad = b"." * 131072  # a snapshot-sized row: each commit takes long enough to be killed in
    def camera(t):
        n = 0
        while True:
            box.put([OutboxItem(topic="t/%d" % t, payload=b"%02d:%06d:" % (t, n) + pad, qos=1,
                                retain=False, priority=Priority.NORMAL, kind="event",
                                msg_id="m-%02d-%06d" % (t, n))])
            with lock:
                print(t, n, flush=True)
            n += 1
    for t in range(6):
        threading.Thread(target=camera, args=(t,), daemon=True).start()
    threading.Event().wait()
    """
)


# Killing right after a confirmation catches a put that returned before its commit only
# when the kill lands inside that commit; big rows make commits long and five rounds make
# a miss unlikely (the visibility test above catches the same fault deterministically).
@pytest.mark.parametrize("round_", range(5))
def test_outbox_group_commit_survives_kill_9(tmp_path: Path, round_: int) -> None:
    """Six threads putting; SIGKILL: every put that returned is on disk, in per-thread order."""
    path = tmp_path / "o.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", _THREADED_WRITER, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert proc.stdout is not None
    confirmed: dict[int, int] = {}
    for count, line in enumerate(proc.stdout):
        t, n = (int(x) for x in line.split())
        confirmed[t] = n
        if count >= 60 + 20 * round_:
            break
    proc.send_signal(signal.SIGKILL)  # right after a confirmation: the next commit is running
    proc.wait()
    proc.stdout.close()
    with Outbox(path) as box:
        rows = box.peek(limit=1_000_000)
        assert box._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored: dict[int, list[int]] = {}
    for row in rows:
        t, n = (int(x) for x in row.payload.split(b":")[:2])
        stored.setdefault(t, []).append(n)
    for t, last in confirmed.items():
        mine = stored.get(t, [])
        assert mine[: last + 1] == list(range(last + 1)), f"thread {t} lost a confirmed put"
        assert mine == list(range(len(mine)))
