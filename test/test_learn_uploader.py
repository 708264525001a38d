"""The uploader against a real ingest server on 127.0.0.1, with real faults in between."""

from __future__ import annotations

import os
import random
import socket
import threading
import time

import pytest

from edge_perception.learn.chaos import FaultProxy
from edge_perception.learn.crashtest import server_sample_counts
from edge_perception.learn.ingest_server import IngestConfig, IngestServer
from edge_perception.learn.sample import Reason, Sample, SampleDetection
from edge_perception.learn.store import SampleStore
from edge_perception.learn.transport import HttpTransport, TokenBucket
from edge_perception.learn.uploader import Uploader, UploaderConfig, backoff_delay
from edge_perception.learn.writer import BACKGROUND_NICE, SampleWriter

TOKEN = "uploader-test-token-0123456789"
FAST = dict(batch_max_age_s=0.0, poll_interval_s=0.02, backoff_base_s=0.02, backoff_max_s=0.2)


def sample(i: int, size: int = 3000, priority: int = 0) -> Sample:
    rng = random.Random(i)
    return Sample(jpeg=rng.randbytes(size),
                  detections=(SampleDetection(0, "pothole", 0.45, (5, 6, 70, 80)),),
                  model_version="det@2", camera_info={"width": 448, "height": 256},
                  stamp=float(i), reason=Reason.RANDOM, priority=priority, uid=f"{i:032x}")


def wait_for(cond, timeout: float = 20.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_every_batch_exactly_once_through_faults(tmp_path):
    """503s, connections dropped before and after the server stored the batch (lost
    responses), and responses slower than the client's timeout: each sample lands once."""
    plan = ["503", "drop_after", "pass", "delay:0.8", "drop_before", "500", "drop_after",
            "pass", "429", "drop_after"]
    with SampleStore(tmp_path / "car") as store, \
            IngestServer(IngestConfig(root=tmp_path / "cloud", tokens={TOKEN: "car"})) as srv, \
            FaultProxy(srv.url, plan) as proxy:
        up = Uploader(store, HttpTransport(proxy.url, TOKEN, timeout_s=0.5),
                      UploaderConfig("car", batch_max_count=4, **FAST), random.Random(0))
        up.start()
        for i in range(40):
            store.put(sample(i))
        assert wait_for(lambda: store.stats().samples == 0)
        up.stop()
        stats = up.stats()
        time.sleep(0.9)  # let the delayed request reach the server before counting
        counts = server_sample_counts(tmp_path / "cloud")
    assert sorted(counts) == [f"{i:032x}" for i in range(40)]
    assert set(counts.values()) == {1}
    assert srv.counters["duplicate"] >= 3  # the lost responses were re-sent and recognised
    assert stats["failures"] >= len(plan) - 2 and stats["samples_sent"] == 40
    assert {"503", "500", "429", "connection"} <= set(stats["failures_by_status"])


def test_server_down_samples_wait_then_go(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with SampleStore(tmp_path / "car") as store:
        up = Uploader(store, HttpTransport(url, TOKEN, timeout_s=0.5),
                      UploaderConfig("car", batch_max_count=5, **FAST))
        up.start()
        for i in range(12):
            store.put(sample(i))
        time.sleep(1.0)
        assert store.stats().samples == 12  # still on disk
        assert up.stats()["probes"] >= 2 and not up.stats()["online"]
        cfg = IngestConfig(root=tmp_path / "cloud", tokens={TOKEN: "car"})
        with IngestServer(cfg, port=port):
            assert wait_for(lambda: store.stats().samples == 0)
            up.stop()
    counts = server_sample_counts(tmp_path / "cloud")
    assert len(counts) == 12 and set(counts.values()) == {1}


def test_permanent_refusal_parks_the_batch(tmp_path):
    with SampleStore(tmp_path / "car") as store, \
            IngestServer(IngestConfig(root=tmp_path / "cloud", tokens={TOKEN: "car"},
                                      max_body_bytes=10_000)) as srv:
        up = Uploader(store, HttpTransport(srv.url, TOKEN),
                      UploaderConfig("car", batch_max_count=1, **FAST))
        store.put(sample(0, size=50_000))  # over the server's body limit: 413
        store.put(sample(1, size=1000))
        up.start()
        assert wait_for(lambda: up.stats()["uploads"] == 1)
        up.stop()
        assert up.stats()["rejected_batches"] == 1
        assert store.stats().counters["dead_batches"] == 1 and store.stats().samples == 1
    assert list(server_sample_counts(tmp_path / "cloud")) == [f"{1:032x}"]


def test_batches_by_count_and_age(tmp_path):
    with SampleStore(tmp_path / "car") as store, \
            IngestServer(IngestConfig(root=tmp_path / "cloud", tokens={TOKEN: "car"})) as srv:
        cfg = UploaderConfig("car", batch_max_count=5, batch_max_age_s=0.6,
                             poll_interval_s=0.02)
        up = Uploader(store, HttpTransport(srv.url, TOKEN), cfg)
        up.start()
        for i in range(3):
            store.put(sample(i))
        time.sleep(0.3)
        assert srv.counters["stored"] == 0  # 3 < 5 and younger than 0.6 s: waits
        assert wait_for(lambda: srv.counters["stored"] == 1, 10.0)  # age rule fires
        for i in range(3, 8):
            store.put(sample(i))
        assert wait_for(lambda: store.stats().samples == 0, 10.0)
        up.stop()
    assert len(server_sample_counts(tmp_path / "cloud")) == 8


def test_bandwidth_cap(tmp_path):
    with SampleStore(tmp_path / "car") as store, \
            IngestServer(IngestConfig(root=tmp_path / "cloud", tokens={TOKEN: "car"})) as srv:
        for i in range(4):
            store.put(sample(i, size=100_000))  # random bytes: gzip cannot shrink them
        batch = store.lease(4)
        from edge_perception.learn.batch import build_batch

        body = build_batch(batch[0].batch_id, "car", batch)
        t0 = time.monotonic()
        HttpTransport(srv.url, TOKEN, bucket=TokenBucket(200_000, 50_000)).send(
            batch[0].batch_id, body)
        took = time.monotonic() - t0
    assert len(body) > 400_000
    assert took >= (len(body) - 50_000) / 200_000 * 0.95, took
    assert took < 20.0


def test_backoff_grows_with_jitter_and_cap():
    rng = random.Random(1)
    delays = [backoff_delay(a, 0.5, 8.0, rng) for a in range(10)]
    for a, d in enumerate(delays):
        full = min(8.0, 0.5 * 2 ** a)
        assert full / 2 <= d <= full
    assert len({round(d, 6) for d in delays[5:]}) > 1  # jittered, not lock-step


def test_quota_holds_while_offline(tmp_path):
    one = len(sample(0).jpeg) + len(sample(0).meta_json())
    with SampleStore(tmp_path / "car", quota_bytes=10 * one + 100) as store:
        up = Uploader(store, HttpTransport(f"http://127.0.0.1:{free_port()}", TOKEN,
                                           timeout_s=0.2), UploaderConfig("car", **FAST))
        up.start()
        for i in range(60):
            store.put(sample(i, priority=1 if i % 10 == 0 else 0))
            assert store.stats().bytes_used <= store.quota_bytes
        up.stop()
        stats = store.stats()
        on_disk = sum(p.stat().st_size for p in (tmp_path / "car" / "blobs").iterdir())
        kept = {int(s.uid, 16) for s in store.lease(100)}
    assert stats.samples == 10 and stats.counters["evicted"] == 50
    assert on_disk <= stats.quota_bytes
    # the six priority-1 samples are all kept; the rest are the newest priority-0 ones
    assert kept == {0, 10, 20, 30, 40, 50, 56, 57, 58, 59}


def test_writer_never_blocks_the_producer(tmp_path):
    gate = threading.Event()

    def slow(i: int) -> Sample:
        gate.wait(5)
        return sample(i)

    with SampleStore(tmp_path / "car") as store:
        writer = SampleWriter(store, slow, maxsize=4)
        writer.start()
        t0 = time.perf_counter()
        accepted = [writer.submit(i) for i in range(50)]
        took = time.perf_counter() - t0
        gate.set()
        assert wait_for(lambda: writer.counters["stored"] == sum(accepted))
        writer.stop()
    assert took < 0.5, took  # 50 hand-offs while the worker is stuck: no waiting
    assert writer.counters["dropped_full"] == 50 - sum(accepted) >= 40


def _policy(tid: int) -> tuple[int, int]:
    return os.sched_getscheduler(tid), os.getpriority(os.PRIO_PROCESS, tid)


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux scheduling policies")
def test_writer_and_upload_threads_are_background_work(tmp_path):
    """Blur, JPEG, store and upload must take only CPU time the detector leaves: their
    threads run SCHED_IDLE (and niced), the caller's thread is left alone."""
    seen: dict[str, tuple[int, int]] = {}

    def process(i: int) -> Sample:
        seen["writer"] = _policy(threading.get_native_id())
        return sample(i)

    caller = _policy(threading.get_native_id())
    with SampleStore(tmp_path / "car") as store:
        writer = SampleWriter(store, process)
        writer.start()
        writer.submit(1)
        assert wait_for(lambda: writer.counters["stored"] == 1)
        writer.stop()
        up = Uploader(store, HttpTransport(f"http://127.0.0.1:{free_port()}", TOKEN),
                      UploaderConfig("car", **FAST))
        up.start()  # the thread lowers itself first thing; the server is down meanwhile
        tid = up._thread.native_id if up._thread is not None else None
        assert tid is not None
        wait_for(lambda: _policy(tid)[0] == os.SCHED_IDLE, 5.0)
        seen["upload"] = _policy(tid)
        up.stop()
    for name in ("writer", "upload"):
        policy, nice = seen[name]
        assert policy == os.SCHED_IDLE, name
        assert nice >= min(19, caller[1] + BACKGROUND_NICE), name
    assert _policy(threading.get_native_id()) == caller
