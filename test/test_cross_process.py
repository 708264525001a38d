"""On a car the camera driver is another process: a camera publisher in a subprocess sends
1280x720 bgr8 frames at 30 Hz (reliable publisher, like camera_node) through the FastDDS
profile of config/fastdds.xml to detector_node's best-effort subscription in this process.
Most frames must arrive and hazards must come out. This is `bench pipeline` for 4 s."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from detector_helpers import make_model

from edge_perception.bench.pipeline import (
    get_args_parser,
    main,
    node_threads,
    pick_model,
    run_once,
)

REPO = Path(__file__).resolve().parents[1]


def test_camera_process_to_detector_1280x720_30hz(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASTDDS_DEFAULT_PROFILES_FILE", str(REPO / "config" / "fastdds.xml"))
    model = make_model(tmp_path / "random.pt")
    t0 = time.monotonic()
    run = run_once(30.0, 4.0, str(model), threads=1, params={"score_threshold": 0.5})
    print(f"cross-process: {run} ({time.monotonic() - t0:.1f} s)")
    # FastDDS defaults deliver ~0-3 fps of these frames to a best-effort reader in another
    # process; with the profile most cross. 1/3 is the floor on 2 cores shared with training
    # and other test runs under `nice` (measured 10-21 fps there; the detector process got
    # ~20-30 % of one core).
    assert run["input_fps"] >= 30 / 3, run
    assert run["processed_fps"] > 0 and run["latency_p50_ms"] is not None
    assert 0 < run["time_to_first_hazard_s"] < 120
    assert run["frames_published_total"] > 100
    assert os.environ["FASTDDS_DEFAULT_PROFILES_FILE"].endswith("fastdds.xml")


def test_bench_arguments() -> None:
    args = get_args_parser().parse_args(["--json"])
    assert args.seconds == 30.0 and args.rates == "30,120" and (args.width, args.height) == (
        1280, 720)
    assert callable(main)
    assert args.threads is None and args.workers is None  # from the params file
    assert Path(args.config) == REPO / "config" / "params.yaml"


def test_bench_takes_thread_counts_from_the_params_file(tmp_path: Path) -> None:
    assert node_threads(REPO / "config" / "params.yaml") == (2, 1)  # what the vehicle runs
    cfg = tmp_path / "p.yaml"
    cfg.write_text("detector_node:\n  ros__parameters:\n    worker_threads: 3\n")
    assert node_threads(cfg) == (0, 3)  # inference_threads: the node's own default


def test_bench_runs_the_model_the_node_picks_on_a_cpu() -> None:
    from edge_perception.detect.loading import load_frame_detector

    path, note = pick_model()
    assert Path(path) == load_frame_detector("", "cpu").model.path
    assert Path(path).name == "hazard_int8.onnx" and "onnxruntime" in note
    assert pick_model("x.ts") == ("x.ts", "given")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_bench_camera_process_stops_cleanly_on_signal(sig: signal.Signals) -> None:
    """The bench ends its camera process with SIGTERM: it must stop publishing, report what it
    sent and exit 0 (with rclpy's own handlers, the signal shut the context down under the
    publishing loop: "publisher's context is invalid", a traceback, exit status 1 for SIGTERM)."""
    proc = subprocess.Popen([sys.executable, "-m", "edge_perception.bench.pipeline",
                             "--publisher", "--rate", "30", "--seconds", "60", "--width", "320",
                             "--height", "240"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=REPO)  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(0.5)
        proc.send_signal(sig)
        out = proc.communicate(timeout=15)[0]
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    # the last line: what it sent (FastDDS may log a transport warning before it)
    assert "Traceback" not in out and re.fullmatch(r"sent \d+", out.strip().splitlines()[-1]), out
