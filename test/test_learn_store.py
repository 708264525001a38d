"""The durable sample store: put / lease / ack, persistence across reopen, quota, recovery."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_perception.learn.sample import Reason, Sample, SampleDetection
from edge_perception.learn.store import SampleStore, StoreFull, StoreLocked


def make_sample(i: int, size: int = 1000, priority: int = 0) -> Sample:
    return Sample(jpeg=bytes([i % 256]) * size,
                  detections=(SampleDetection(1, "speed_bump", 0.42, (10, 20, 110, 60)),),
                  model_version="det@1", camera_info={"width": 448, "height": 256,
                                                      "k": [1.0] * 9},
                  stamp=100.0 + i, reason=Reason.HARD_EXAMPLE, priority=priority,
                  position=(48.1, 11.5, 520.0), uid=f"{i:032x}")


def test_put_lease_ack_roundtrip(tmp_path):
    with SampleStore(tmp_path, quota_bytes=1 << 20) as store:
        uids = [store.put(make_sample(i)) for i in range(5)]
        assert store.pending()[0] == 5
        batch = store.lease(3)
        assert [s.uid for s in batch] == uids[:3]
        assert len({s.batch_id for s in batch}) == 1
        assert batch[0].jpeg == make_sample(0).jpeg
        assert Sample.from_meta(batch[0].meta, batch[0].jpeg) == make_sample(0)
        # The same batch comes back until it is acknowledged.
        assert [s.uid for s in store.lease(3)] == uids[:3]
        store.ack([s.uid for s in batch])
        rest = store.lease(10)
        assert [s.uid for s in rest] == uids[3:]
        assert rest[0].batch_id != batch[0].batch_id
        store.ack([s.uid for s in rest])
        stats = store.stats()
        assert stats.samples == 0 and stats.bytes_used == 0
        assert stats.counters["acked"] == 5 and stats.counters["stored"] == 5
        assert list((tmp_path / "blobs").iterdir()) == []


def test_batch_survives_reopen(tmp_path):
    with SampleStore(tmp_path) as store:
        for i in range(4):
            store.put(make_sample(i))
        first = store.lease(2)
    with SampleStore(tmp_path) as store:
        again = store.lease(10)  # the unacknowledged batch, same id, same samples
        assert [(s.uid, s.batch_id) for s in again] == [(s.uid, s.batch_id) for s in first]
        assert store.lease(10, form_new=False) == again


def test_higher_priority_uploads_first(tmp_path):
    with SampleStore(tmp_path) as store:
        store.put(make_sample(0, priority=0))
        store.put(make_sample(1, priority=5))
        assert [s.uid for s in store.lease(1)] == [f"{1:032x}"]


def test_quota_evicts_lowest_priority_oldest_first(tmp_path):
    one = len(make_sample(0).jpeg) + len(make_sample(0).meta_json())
    with SampleStore(tmp_path, quota_bytes=4 * one + 10) as store:
        store.put(make_sample(0, priority=1))
        store.put(make_sample(1, priority=0))
        store.put(make_sample(2, priority=0))
        store.put(make_sample(3, priority=2))
        store.put(make_sample(4, priority=1))  # evicts 1 (priority 0, oldest)
        left = {s.uid for s in store.lease(10)}
        assert left == {f"{i:032x}" for i in (0, 2, 3, 4)}
        stats = store.stats()
        assert stats.counters["evicted"] == 1 and stats.bytes_used <= stats.quota_bytes
        for i in range(5, 30):
            store.put(make_sample(i, priority=1))
            assert store.stats().bytes_used <= store.quota_bytes
        assert len(list((tmp_path / "blobs").iterdir())) == store.stats().samples == 4
        # the priority-2 sample outlives every priority-1 put
        assert f"{3:032x}" in {s.uid for s in store.lease(10)}


def test_store_full_when_only_higher_priority_held(tmp_path):
    one = len(make_sample(0).jpeg) + len(make_sample(0).meta_json())
    with SampleStore(tmp_path, quota_bytes=2 * one) as store:
        store.put(make_sample(0, priority=3))
        store.put(make_sample(1, priority=3))
        with pytest.raises(StoreFull):
            store.put(make_sample(2, priority=1))
        with pytest.raises(StoreFull):
            store.put(make_sample(3, size=10 * one))
        assert store.stats().counters["rejected_full"] == 2
        assert not (tmp_path / "blobs" / f"{2:032x}.jpg").exists()


def test_recovery_removes_orphans_and_temp_files(tmp_path):
    with SampleStore(tmp_path) as store:
        store.put(make_sample(0))
    (tmp_path / "blobs" / f"{7:032x}.jpg").write_bytes(b"orphan: crash before the commit")
    (tmp_path / "blobs" / f".{8:032x}.jpg.tmp").write_bytes(b"half")
    with SampleStore(tmp_path) as store:
        assert sorted(p.name for p in (tmp_path / "blobs").iterdir()) == [f"{0:032x}.jpg"]
        assert store.stats().samples == 1


def test_second_owner_fails_early(tmp_path):
    with SampleStore(tmp_path):
        with pytest.raises(StoreLocked):
            SampleStore(tmp_path)


def test_second_put_of_a_uid_is_refused_and_harmless(tmp_path):
    with SampleStore(tmp_path) as store:
        store.put(make_sample(0))
        with pytest.raises(ValueError, match="already stored"):
            store.put(make_sample(0))
        assert store.lease(5)[0].jpeg == make_sample(0).jpeg  # the file is still there


def test_rejects_bad_uid(tmp_path):
    with SampleStore(tmp_path) as store, pytest.raises(ValueError):
        store.put(Sample(b"x", (), "m", {}, 0.0, Reason.RANDOM, uid="../../etc/passwd"))


def test_library_does_not_import_rclpy():
    code = ("import sys, importlib, pkgutil, edge_perception.learn as L\n"
            "mods = [m.name for m in pkgutil.iter_modules(L.__path__)]\n"
            "assert {'store', 'uploader', 'ingest_server'} <= set(mods), mods\n"
            "for m in mods:\n"
            "    importlib.import_module('edge_perception.learn.' + m)\n"
            "bad = [m for m in sys.modules if m == 'rclpy' or m.endswith('_msgs')]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.tuples(st.sampled_from(["put", "lease", "ack", "reopen"]),
                              st.integers(0, 3), st.integers(200, 3000)),
                    min_size=1, max_size=40))
def test_store_invariants_under_random_operations(tmp_path_factory, ops):
    """Random put/lease/ack/reopen sequences: the quota holds, the incremental byte count
    matches the rows, files match rows, a sample never changes batch, acked never return."""
    root = tmp_path_factory.mktemp("store")
    quota = 12_000
    store = SampleStore(root, quota_bytes=quota)
    batch_of: dict[str, str] = {}
    acked: set[str] = set()
    leased: list = []
    try:
        for n, (op, prio, size) in enumerate(ops):
            if op == "put":
                try:
                    store.put(make_sample(n, size=size, priority=prio))
                except StoreFull:
                    pass
            elif op == "lease":
                leased = store.lease(3, max_bytes=5000)
                for s in leased:
                    assert batch_of.setdefault(s.uid, s.batch_id) == s.batch_id
                    assert s.uid not in acked
            elif op == "ack" and leased:
                store.ack([s.uid for s in leased])
                acked.update(s.uid for s in leased)
                leased = []
            elif op == "reopen":
                before = store.stats().bytes_used  # kept incrementally
                store.close()
                store = SampleStore(root, quota_bytes=quota)
                assert store.stats().bytes_used == before  # recomputed from the rows
            stats = store.stats()
            files = {p.name[:-4] for p in (root / "blobs").iterdir()}
            assert stats.bytes_used <= quota
            assert len(files) == stats.samples
            assert not files & acked
    finally:
        store.close()
