"""The shipped models: manifest, size, INT8 vs FP32, and the main job on the bundled sample."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edge_perception.detect.detector import DetectorConfig, default_model_path, load_detector
from edge_perception.detect.eval_cli import evaluate
from edge_perception.train.data import read_data_yaml

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"
CLI = REPO / ".venv" / "bin" / "edge-perception"


def _metrics() -> dict:
    return json.loads((MODELS / "metrics.json").read_text())


def test_manifest_lists_every_model_with_its_sha256_and_size_limit():
    rows = [line.split() for line in (MODELS / "SHA256SUMS").read_text().splitlines() if line]
    names = {name for _, name in rows}
    assert {"hazard_int8.ts", "hazard_int8.onnx", "hazard_fp32.pt", "hazard_fp32.onnx",
            "hazard_int8_qdq.onnx"} <= names
    for digest, name in rows:
        data = (MODELS / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest, f"{name} changed after the manifest"
        assert len(data) <= 20 * 2**20, f"{name} is over 20 MB"


def test_default_model_is_the_shipped_int8_on_cpu():
    assert default_model_path("int8") == MODELS / "hazard_int8.ts"
    det = load_detector(None, "cpu")
    assert det.model.kind == "int8" and det.model.path == MODELS / "hazard_int8.ts"


def test_recorded_int8_metrics_hold_the_measured_gap_to_fp32():
    """The shipped INT8 model (v2.1: v2's FP32 weights, post-training quantized on 600 training
    images with the observers in front of each ReLU6 recording its output range) loses 0.7
    points mAP@0.5 against FP32 on val (issue 4 asks for at most 1; v2 lost 2.8). A
    re-quantized model that loses a point or more, or one below 0.635, fails here."""
    m = _metrics()
    assert m["int8"]["val"]["images"] >= 700
    assert m["int8"]["quantization"]["method"] in ("ptq", "qat")
    assert m["int8"]["val"]["map50"] > m["fp32"]["val"]["map50"] - 0.01
    assert m["int8"]["val"]["map50"] >= 0.635


def test_shipped_int8_reproduces_its_recorded_metrics_on_the_sample():
    """A change in preprocessing, decoding or the model file shows up here."""
    rec = _metrics()["int8"]["sample"]
    spec = read_data_yaml(REPO / "data/sample/data.yaml")
    det = load_detector(MODELS / "hazard_int8.ts", "cpu", DetectorConfig(score_threshold=0.001))
    m = evaluate(det, spec.images("val"), spec.names, rec["score_threshold"], progress=False)
    assert m.map50 == pytest.approx(rec["map50"], abs=0.02)
    assert m.recall == pytest.approx(rec["recall"], abs=0.05)
    assert m.precision == pytest.approx(rec["precision"], abs=0.05)


def test_bench_model_prints_fp32_and_int8_latency_of_the_shipped_models():
    r = subprocess.run([str(CLI), "bench", "model", "--json", "--iterations", "3",
                        "--warmup", "1"], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr[-3000:]
    rec = json.loads(r.stdout.strip().splitlines()[-1])
    assert rec["bench"] == "model" and rec["input"] == "448x256" and rec["iterations"] == 3
    assert rec["fp32_ms_median"] > 0 and rec["int8_ms_median"] > 0
    assert rec["ratio_fp32_over_int8"] == pytest.approx(
        rec["fp32_ms_median"] / rec["int8_ms_median"], rel=0.02)
    # the same INT8 model exported to ONNX and run by onnxruntime, alone in a process
    assert rec["int8_ort_ms_median"] > 0 and rec["ratio_int8_over_int8_ort"] > 0
    assert rec["int8_ort_max_abs_diff"] < 0.5  # logits and log-distances: a few output steps
    assert 0 < rec["int8_ort_alone_peak_rss_mb"] < 300


def test_onnx_int8_scores_like_the_torchscript_model(tmp_path):
    """hazard_int8.onnx is hazard_int8.ts exported with its own scales: onnxruntime scores the
    bundled sample like the recorded TorchScript metrics (full val, measured once: 0.642
    both)."""
    det = load_detector(MODELS / "hazard_int8.onnx", "cpu", DetectorConfig(score_threshold=0.001))
    assert det.device == "cpu (onnxruntime)" and det.model.kind == "int8"
    assert det.model.meta["exported_from"] == "hazard_int8.ts"
    rec = _metrics()["int8"]["sample"]
    data = read_data_yaml(REPO / "data/sample/data.yaml")
    m = evaluate(det, data.images("val"), data.names, rec["score_threshold"], progress=False)
    assert m.map50 == pytest.approx(rec["map50"], abs=0.02)
    assert m.recall == pytest.approx(rec["recall"], abs=0.05)
    # two cameras' frames of different sizes in one batch: as if run one by one
    import cv2

    a, b = (cv2.imread(str(p)) for p in data.images("val")[:2])
    b = cv2.resize(b, (b.shape[1] // 2, b.shape[0] // 2))
    together = det.detect_batch([(a, "bgr8"), (b, "bgr8")])
    for one, alone in zip(together, (det.detect(a), det.detect(b))):
        assert [d.class_id for d in one] == [d.class_id for d in alone] and len(one) > 0
        np.testing.assert_allclose([d.box for d in one], [d.box for d in alone], atol=0.05)


def test_node_loader_picks_the_onnx_model_on_a_cpu():
    from edge_perception.detect.loading import cuda_present, load_frame_detector

    det = load_frame_detector("", "cpu")
    assert det.model.path == MODELS / "hazard_int8.onnx" and det.device == "cpu (onnxruntime)"
    if not cuda_present():  # auto on a machine without CUDA: the same
        assert load_frame_detector("", "auto").model.path.name == "hazard_int8.onnx"
    ts = load_frame_detector(str(MODELS / "hazard_int8.ts"), "cpu")
    assert ts.model.kind == "int8" and str(ts.device) == "cpu"
    with pytest.raises(ValueError, match="runs on the CPU"):
        load_frame_detector(str(MODELS / "hazard_int8.onnx"), "cuda")


def test_onnx_detector_process_never_imports_torch():
    """The node module plus the onnxruntime detector on a real frame: no torch, no
    torchvision, and a fraction of the memory (the torch detector process: ~900 MB)."""
    code = (
        "import sys, cv2\n"
        "import edge_perception.nodes.detector_node\n"
        "from edge_perception.detect.loading import load_frame_detector\n"
        "d = load_frame_detector(sys.argv[1], 'auto', threads=1)\n"
        "d.warmup()\n"
        "found = d.detect(cv2.imread(sys.argv[2]))\n"
        "hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM:')][0]\n"
        "print(len(found), 'torch' in sys.modules, 'torchvision' in sys.modules,\n"
        "      int(hwm.split()[1]) // 1024)\n")
    image = sorted((REPO / "data/sample/images").iterdir())[0]
    r = subprocess.run([str(REPO / ".venv/bin/python"), "-c", code,
                        str(MODELS / "hazard_int8.onnx"), str(image)],
                       capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr[-3000:]
    n, torch_in, tv_in, rss_mb = r.stdout.split()
    assert torch_in == "False" and tv_in == "False"
    assert int(n) >= 0 and int(rss_mb) < 450


def test_make_run_main_job_prints_hazards_and_writes_the_strip(tmp_path):
    strip = tmp_path / "hazards.png"
    r = subprocess.run([str(CLI), "run", "--config", "config/params.yaml", "--nodes",
                        "camera_node", "detector_node", "--duration", "15", "--strip",
                        str(strip)], capture_output=True, text=True, timeout=240, cwd=REPO)
    assert r.returncode == 0, r.stderr[-3000:]
    hazards = [ln for ln in r.stdout.splitlines() if ln.strip().startswith("hazard ")]
    assert hazards, r.stdout[-3000:]
    assert any(re.search(r"hazard pothole +score 0\.\d\d +\d+\.\d m ahead", h) for h in hazards)
    assert strip.is_file() and strip.stat().st_size > 10_000
    assert "Traceback" not in r.stderr
