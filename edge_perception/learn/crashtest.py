"""kill -9 at random moments: an uploader process is killed and restarted over and over while it
stores and uploads; afterwards every sample it acknowledged must be at the server exactly once.

`run_kill_loop(trials, workdir)` drives it (test/test_learn_killloop.py runs >= 20 trials,
scripts/kill_loop.py runs as many as you like). The child side is `python -m
edge_perception.learn.crashtest child ...`; it imports only the store/uploader modules so it
starts fast.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from edge_perception.learn.sample import Reason, Sample, SampleDetection
from edge_perception.learn.store import SampleStore
from edge_perception.learn.transport import HttpTransport
from edge_perception.learn.uploader import Uploader, UploaderConfig

__all__ = ["run_kill_loop", "server_sample_counts"]

TOKEN = "crash-test-token-0123456789"
VEHICLE = "crashcar"


def _child(args: argparse.Namespace) -> int:
    store = SampleStore(args.store, quota_bytes=1 << 30)
    uploader = Uploader(store, HttpTransport(args.url, TOKEN, timeout_s=2.0), UploaderConfig(
        VEHICLE, batch_max_count=3, batch_max_age_s=0.0, poll_interval_s=0.01,
        backoff_base_s=0.01, backoff_max_s=0.1))
    uploader.start()
    print("READY", flush=True)
    rng = random.Random(args.start)
    for i in range(args.start, args.start + args.count):
        uid = f"{i:032x}"
        store.put(Sample(jpeg=os.urandom(rng.randint(500, 20000)),
                         detections=(SampleDetection(0, "pothole", 0.5, (1, 2, 30, 40)),),
                         model_version="crash@0", camera_info={"width": 448, "height": 256},
                         stamp=float(i), reason=Reason.RANDOM, uid=uid))
        print(f"PUT {uid}", flush=True)
        time.sleep(rng.uniform(0, 0.03))
    while store.pending()[0] > 0:
        time.sleep(0.01)
    uploader.stop()
    store.close()
    print("DONE", flush=True)
    return 0


def server_sample_counts(root: Path) -> Counter[str]:
    """How many times each sample uid is held by the ingest server under `root`."""
    counts: Counter[str] = Counter()
    for manifest in root.glob("batches/*/*/manifest.json"):
        counts.update(json.loads(manifest.read_text())["samples"])
    return counts


def _spawn(store: Path, url: str, start: int, count: int) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "edge_perception.learn.crashtest", "child", "--store",
           str(store), "--url", url, "--start", str(start), "--count", str(count)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


def run_kill_loop(trials: int, workdir: Path, seed: int = 0, per_trial: int = 6,
                  max_delay_s: float = 0.35, lossy: bool = True) -> dict[str, Any]:
    """Kill -9 the uploader `trials` times, then drain; returns the accounting."""
    from edge_perception.learn.chaos import FaultProxy
    from edge_perception.learn.ingest_server import IngestConfig, IngestServer

    rng = random.Random(seed)
    store, cloud = workdir / "car", workdir / "cloud"
    acked: set[str] = set()
    attempted: set[str] = set()
    plan = ["drop_after" if i % 5 == 1 else rng.choice(["pass"] * 5 + ["503", "drop_before"])
            for i in range(trials * per_trial)] if lossy else []  # a lost response early on
    kill_delays = []
    with IngestServer(IngestConfig(root=cloud, tokens={TOKEN: VEHICLE})) as server, \
            FaultProxy(server.url, plan) as proxy:
        for t in range(trials):
            start = t * per_trial
            attempted.update(f"{i:032x}" for i in range(start, start + per_trial))
            child = _spawn(store, proxy.url, start, per_trial)
            assert child.stdout is not None
            first = child.stdout.readline().strip()
            if first != "READY":
                child.kill()
                raise RuntimeError(f"child did not start: {first!r}")
            delay = rng.uniform(0, max_delay_s)
            kill_delays.append(delay)
            time.sleep(delay)
            child.kill()  # SIGKILL
            out = child.communicate()[0]
            acked.update(line[4:] for line in out.splitlines() if line.startswith("PUT "))
        child = _spawn(store, server.url, trials * per_trial, 0)  # drain, no faults
        out = child.communicate(timeout=60)[0]
        if "DONE" not in out:
            raise RuntimeError("the final drain did not finish")
        counts = server_sample_counts(cloud)
        counters = server.counters
    at_server = set(counts)
    return {
        "trials": trials,
        "attempted": len(attempted),
        "acked": len(acked),
        "at_server": len(at_server),
        "lost": sorted(acked - at_server),
        "duplicated": sorted(u for u, n in counts.items() if n > 1),
        "unexpected": sorted(at_server - attempted),
        "server": counters,
        "faults": Counter(proxy.log),
        "kill_delay_s": [min(kill_delays), max(kill_delays)],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="child side of the kill -9 loop")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("child")
    c.add_argument("--store", required=True)
    c.add_argument("--url", required=True)
    c.add_argument("--start", type=int, required=True)
    c.add_argument("--count", type=int, required=True)
    args = p.parse_args(argv)
    return _child(args)


if __name__ == "__main__":
    sys.exit(main())
