"""`edge-perception bench upload --json` runs end to end (tiny sizes) and reports its numbers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from edge_perception.detect.types import file_sha256

REPO = Path(__file__).resolve().parents[1]


def test_bench_upload_json(tmp_path):
    res = subprocess.run([sys.executable, "-m", "edge_perception.cli", "bench", "upload",
                          "--json", "--samples", "10", "--enqueue-iters", "50",
                          "--rounds", "2", "--block", "4", "--keep-rate", "5",
                          "--node-backlog", "5", "--node-startup-s", "4",
                          "--workdir", str(tmp_path)],
                         capture_output=True, text=True, timeout=300, check=True)
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1
    r = json.loads(lines[0])
    assert r["bench"] == "upload"
    assert r["enqueue"]["submit_us_p99"] > 0 and r["enqueue"]["put_ms_p50"] > 0
    assert r["throughput"]["samples"] == 10 and r["throughput"]["samples_per_s"] > 0
    i = r["interference"]
    assert i["iters_per_mode"] == 8 and i["p99_ms_off"] > 0
    # measured with the model the node runs on a CPU (onnxruntime), not the TorchScript file
    assert i["detector"].endswith(file_sha256(REPO / "models" / "hazard_int8.onnx")[:12])
    for mode in ("upload", "upload+blur", "node"):
        lo, hi = i[f"p99_increase_ci95_{mode}"]
        assert lo <= i[f"p99_increase_pct_{mode}"] <= hi
    assert i["acked_during_run"] > 0
    # the real sample_uploader_node ran in its own process: it uploaded its backlog to the
    # loopback server
    assert i["node_acked"] > 0
