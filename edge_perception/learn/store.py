"""The durable sample queue on the car: SQLite (WAL) for the index, one file per JPEG.

Order of a `put`: the JPEG goes to its final name atomically (temp, fsync, rename, fsync dir),
then one SQLite transaction evicts what the quota needs and inserts the row (synchronous=FULL).
When `put` returns, the sample survives kill -9 and power loss. A crash in between leaves an
orphan file that the next open deletes. `ack` deletes rows first and files after, for the same
reason.

Batches are persisted: `lease(n)` assigns samples to a batch id in one transaction and returns
that same batch (same id, same samples minus any evicted since) until it is acknowledged, also
after a restart. A sample therefore belongs to exactly one batch id for its whole life, and a
server that de-duplicates by batch id stores it exactly once.

One process owns a store at a time (an flock on `<root>/lock`; a second opener fails early).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_perception.learn.fsutil import write_atomic
from edge_perception.learn.sample import Sample

__all__ = ["SampleStore", "StoredSample", "StoreStats", "StoreFull", "StoreLocked"]

_UID = re.compile(r"^[0-9a-f]{8,64}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS samples(
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    uid TEXT UNIQUE NOT NULL,
    priority INTEGER NOT NULL,
    created REAL NOT NULL,
    size INTEGER NOT NULL,
    meta TEXT NOT NULL,
    batch_id TEXT
);
CREATE INDEX IF NOT EXISTS samples_evict ON samples(priority, seq);
CREATE INDEX IF NOT EXISTS samples_batch ON samples(batch_id);
CREATE TABLE IF NOT EXISTS batches(
    batch_id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

_COUNTERS = ("stored", "evicted", "evicted_bytes", "rejected_full", "acked", "dead_batches",
             "missing_files")


class StoreFull(Exception):
    """The sample does not fit: everything that could be evicted has a higher priority."""


class StoreLocked(Exception):
    """Another process owns this store."""


@dataclass(frozen=True)
class StoredSample:
    uid: str
    priority: int
    created: float
    size: int
    meta: dict[str, Any]
    jpeg: bytes
    batch_id: str


@dataclass(frozen=True)
class StoreStats:
    samples: int
    bytes_used: int
    quota_bytes: int
    pending_batches: int
    counters: dict[str, int]


class SampleStore:
    """`put(sample) -> uid`, `lease(n) -> [StoredSample]`, `ack(uids)`; thread-safe."""

    def __init__(self, root: str | os.PathLike[str], quota_bytes: int = 1 << 30) -> None:
        if quota_bytes <= 0:
            raise ValueError(f"quota_bytes must be positive, got {quota_bytes}")
        self.root = Path(root)
        self.blobs = self.root / "blobs"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.quota_bytes = int(quota_bytes)
        self._lock_fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise StoreLocked(f"{self.root} is in use by another process") from None
        self._mutex = threading.RLock()
        self._db = sqlite3.connect(self.root / "index.sqlite3", isolation_level=None,
                                   check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._recover()
        self._bytes = int(self._db.execute("SELECT COALESCE(SUM(size),0) FROM samples")
                          .fetchone()[0])

    # -- life cycle ------------------------------------------------------------------------
    def close(self) -> None:
        with self._mutex:
            if self._lock_fd < 0:
                return
            self._db.close()
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> SampleStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _recover(self) -> None:
        """Delete temp and orphan files; drop rows whose file vanished (should never happen)."""
        rows = {uid for (uid,) in self._db.execute("SELECT uid FROM samples")}
        on_disk = set()
        for p in self.blobs.iterdir():
            uid = p.name[:-4] if p.name.endswith(".jpg") else None
            if uid is None or uid not in rows:
                p.unlink()
            else:
                on_disk.add(uid)
        missing = rows - on_disk
        if missing:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("DELETE FROM samples WHERE uid=?", [(u,) for u in missing])
            self._bump("missing_files", len(missing))
            self._db.execute("COMMIT")

    # -- helpers ---------------------------------------------------------------------------
    def _path(self, uid: str) -> Path:
        return self.blobs / f"{uid}.jpg"

    def _bump(self, name: str, n: int = 1) -> None:
        self._db.execute("INSERT INTO counters(name, value) VALUES(?, ?) ON CONFLICT(name) "
                         "DO UPDATE SET value = value + excluded.value", (name, n))

    # -- the queue ---------------------------------------------------------------------------
    def put(self, sample: Sample) -> str:
        """Store durably; returns the uid. Evicts lower/equal-priority, oldest samples first."""
        if not _UID.match(sample.uid):
            raise ValueError(f"sample uid must be 8-64 lowercase hex digits, got {sample.uid!r}")
        meta = json.dumps(sample.meta(), sort_keys=True, separators=(",", ":"))
        size = len(sample.jpeg) + len(meta)
        with self._mutex:
            if size > self.quota_bytes:
                self._count_full()
                raise StoreFull(f"sample of {size} B exceeds the quota of {self.quota_bytes} B")
            if self._db.execute("SELECT 1 FROM samples WHERE uid=?", (sample.uid,)).fetchone():
                raise ValueError(f"sample {sample.uid} is already stored")
            path = self._path(sample.uid)
            write_atomic(path, sample.jpeg)
            victims: list[tuple[str, int]] = []
            try:
                self._db.execute("BEGIN IMMEDIATE")
                need = self._bytes + size - self.quota_bytes
                if need > 0:
                    freed = 0
                    cur = self._db.execute(
                        "SELECT uid, size FROM samples WHERE priority <= ? "
                        "ORDER BY priority ASC, seq ASC", (sample.priority,))
                    for uid, vsize in cur:
                        victims.append((uid, vsize))
                        freed += vsize
                        if freed >= need:
                            break
                    if freed < need:
                        raise StoreFull(f"no room for {size} B: quota {self.quota_bytes} B "
                                        "held by higher-priority samples")
                    self._db.executemany("DELETE FROM samples WHERE uid=?",
                                         [(u,) for u, _ in victims])
                    self._bump("evicted", len(victims))
                    self._bump("evicted_bytes", freed)
                self._db.execute(
                    "INSERT INTO samples(uid, priority, created, size, meta) VALUES(?,?,?,?,?)",
                    (sample.uid, sample.priority, time.time(), size, meta))
                self._bump("stored")
                self._db.execute("COMMIT")
            except BaseException as exc:
                self._db.execute("ROLLBACK")
                path.unlink(missing_ok=True)
                if isinstance(exc, StoreFull):
                    self._count_full()
                raise
            self._bytes += size - sum(s for _, s in victims)
            for uid, _ in victims:
                self._path(uid).unlink(missing_ok=True)
            return sample.uid

    def _count_full(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        self._bump("rejected_full")
        self._db.execute("COMMIT")

    def pending(self) -> tuple[int, int, float | None]:
        """(count, bytes, creation time of the oldest) of samples waiting to be uploaded."""
        with self._mutex:
            n, b, oldest = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(s.size),0), MIN(s.created) FROM samples s "
                "LEFT JOIN batches b ON s.batch_id = b.batch_id "
                "WHERE s.batch_id IS NULL OR b.state = 'pending'").fetchone()
            return int(n), int(b), oldest

    def lease(self, n: int, max_bytes: int | None = None,
              form_new: bool = True) -> list[StoredSample]:
        """The batch to upload next: an unacknowledged one if any, else (when `form_new`) a new
        one of at most `n` samples / `max_bytes` (at least one sample), highest priority first.
        Every sample returned carries the batch id in `batch_id`."""
        with self._mutex:
            while True:
                row = self._db.execute("SELECT batch_id FROM batches WHERE state='pending' "
                                       "ORDER BY created, batch_id LIMIT 1").fetchone()
                if row is None:
                    break
                rows = self._db.execute(
                    "SELECT uid, priority, created, size, meta, batch_id FROM samples "
                    "WHERE batch_id=? ORDER BY seq", (row[0],)).fetchall()
                if rows:
                    return self._load(rows)
                self._db.execute("BEGIN IMMEDIATE")  # every sample was evicted
                self._db.execute("DELETE FROM batches WHERE batch_id=?", (row[0],))
                self._db.execute("COMMIT")
            if not form_new:
                return []
            cur = self._db.execute(
                "SELECT uid, size FROM samples WHERE batch_id IS NULL "
                "ORDER BY priority DESC, seq ASC LIMIT ?", (int(n),))
            chosen: list[str] = []
            total = 0
            for uid, size in cur:
                if chosen and max_bytes is not None and total + size > max_bytes:
                    break
                chosen.append(uid)
                total += size
            if not chosen:
                return []
            batch_id = hashlib.sha256("\n".join(sorted(chosen)).encode()).hexdigest()
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT INTO batches(batch_id, created, state) VALUES(?,?,?)",
                             (batch_id, time.time(), "pending"))
            self._db.executemany("UPDATE samples SET batch_id=? WHERE uid=?",
                                 [(batch_id, u) for u in chosen])
            self._db.execute("COMMIT")
            rows = self._db.execute(
                "SELECT uid, priority, created, size, meta, batch_id FROM samples "
                "WHERE batch_id=? ORDER BY seq", (batch_id,)).fetchall()
            return self._load(rows)

    def _load(self, rows: list[tuple[Any, ...]]) -> list[StoredSample]:
        return [StoredSample(uid=u, priority=p, created=c, size=s, meta=json.loads(m),
                             jpeg=self._path(u).read_bytes(), batch_id=b)
                for u, p, c, s, m, b in rows]

    def ack(self, uids: list[str]) -> None:
        """The server has these: forget them (rows first, then files)."""
        if not uids:
            return
        with self._mutex:
            self._db.execute("BEGIN IMMEDIATE")
            sizes = self._db.execute(
                f"SELECT COALESCE(SUM(size),0), COUNT(*) FROM samples WHERE uid IN "
                f"({','.join('?' * len(uids))})", list(uids)).fetchone()
            self._db.executemany("DELETE FROM samples WHERE uid=?", [(u,) for u in uids])
            self._db.execute("DELETE FROM batches WHERE batch_id NOT IN "
                             "(SELECT DISTINCT batch_id FROM samples WHERE batch_id IS NOT NULL)")
            self._bump("acked", int(sizes[1]))
            self._db.execute("COMMIT")
            self._bytes -= int(sizes[0])
            for u in uids:
                self._path(u).unlink(missing_ok=True)

    def reject(self, batch_id: str) -> None:
        """The server refused this batch for good: park it (kept on disk, never re-sent,
        evicted like any other sample when room is needed)."""
        with self._mutex:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("UPDATE batches SET state='dead' WHERE batch_id=?", (batch_id,))
            self._bump("dead_batches")
            self._db.execute("COMMIT")

    def stats(self) -> StoreStats:
        with self._mutex:
            counters = dict.fromkeys(_COUNTERS, 0)
            counters.update(dict(self._db.execute("SELECT name, value FROM counters")))
            n = self._db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
            nb = self._db.execute("SELECT COUNT(*) FROM batches WHERE state='pending'"
                                  ).fetchone()[0]
            return StoreStats(samples=int(n), bytes_used=self._bytes,
                              quota_bytes=self.quota_bytes, pending_batches=int(nb),
                              counters=counters)
