"""Replay regression on real images: a bag of dataset val frames → the REAL detector_node over
a real DDS graph (deterministic player: every frame answered) → hazards scored against the
frames' labels, with floors from the shipped model's measured val metrics.

The bag is generated at test time (nothing copied into the repo): 32 val images of
../shared/datasets/road_hazards, a fixed subset (16 with potholes, 16 with speed bumps, every
k-th in name order), at 10 Hz; labels written as 000000.txt ... in frame order.

Floors: precision >= 0.6 x and recall >= 0.6 x the INT8 model's precision / recall on the
val split in models/metrics.json (scripts/model_report.py), at its score_threshold. Why 0.6:
the subset has 60 labelled boxes, so its recall has a sampling spread of about +-0.06 around
the val value (binomial, p ~ 0.6-0.8); a 40 % relative margin is 4-5 of those, so a healthy
model and pipeline pass run after run, while the regressions this guards against (wrong
colour order or letterbox, boxes not mapped back to the original pixels, a wrong or
untrained model file, frames dropped or mismatched to their stamps) take precision and
recall to near zero. Skipped (with the reason) when the dataset or the shipped model files
are absent; EDGE_PERCEPTION_TEST_MODELS=DIR points the test at another folder holding
hazard_int8.ts and metrics.json."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_perception import cli
from edge_perception.detect.detector import default_model_path
from edge_perception.detect.metrics import coco_metrics
from edge_perception.replay.eval_cli import frame_labels
from edge_perception.replay.images import write_image_bag

TOPIC = "/camera/image_raw"
PER_CLASS = 16
FLOOR_FACTOR = 0.6
NAMES = {0: "pothole", 1: "speed_bump"}


def shipped_model() -> tuple[Path, dict[str, Any]]:
    """(INT8 model file, its measured val metrics) or skip."""
    override = os.environ.get("EDGE_PERCEPTION_TEST_MODELS")
    model = Path(override) / "hazard_int8.ts" if override else default_model_path("int8")
    metrics = model.parent / "metrics.json"
    if not model.is_file() or not metrics.is_file():
        pytest.skip(f"shipped model not present ({model}, {metrics.name})")
    int8 = json.loads(metrics.read_text())["int8"]
    # scripts/model_report.py writes {"int8": {"score_threshold", "val": {precision, ...}}}
    val = {"score_threshold": int8.get("score_threshold"), **int8.get("val", int8)}
    for key in ("precision", "recall", "score_threshold"):
        assert isinstance(val.get(key), int | float), f"metrics.json int8 val {key} missing"
    return model, val


def val_subset(data: Path) -> list[Path]:
    """16 val images with potholes (no speed bump) and 16 with speed bumps, every k-th."""
    with open(data / "manifest.csv", newline="") as f:
        rows = sorted((r for r in csv.DictReader(f) if r["split"] == "val"),
                      key=lambda r: r["image"])
    bumps = [r for r in rows if int(r["speed_bumps"]) > 0]
    holes = [r for r in rows if int(r["potholes"]) > 0 and int(r["speed_bumps"]) == 0]
    pick = []
    for group in (holes, bumps):
        assert len(group) >= PER_CLASS, "val split too small for the subset"
        pick += group[:: len(group) // PER_CLASS][:PER_CLASS]
    return [data / r["image"] for r in pick]


@pytest.fixture(scope="module")
def model() -> tuple[Path, dict[str, Any]]:
    return shipped_model()


@pytest.fixture(scope="module")
def frames_bag(tmp_path_factory: pytest.TempPathFactory, model) -> tuple[Path, Path, int]:
    from conftest import SHARED_DATA

    if not (SHARED_DATA / "data.yaml").exists():
        pytest.skip("../shared/datasets/road_hazards is not present")
    images = val_subset(SHARED_DATA)
    root = tmp_path_factory.mktemp("regression")
    labels = root / "labels"
    labels.mkdir()
    for i, img in enumerate(images):
        src = SHARED_DATA / "labels" / "val" / (img.stem + ".txt")
        (labels / f"{i:06d}.txt").write_text(src.read_text() if src.exists() else "")
    bag = write_image_bag(images, root / "val_frames", rate_hz=10.0, topic=TOPIC)
    return bag, labels, len(images)


def _replay(bag: Path, model_path: Path, threshold: float) -> list[Any]:
    import rclpy
    from rclpy.context import Context

    from edge_perception.nodes.detector_replay import replay_through_detector

    ctx = Context()
    rclpy.init(args=[], context=ctx)
    try:
        stats = replay_through_detector(bag, TOPIC, {
            "model_path": str(model_path), "device": "cpu", "score_threshold": threshold,
            "inference_threads": 1}, ctx)
    finally:
        rclpy.try_shutdown(context=ctx)
    assert stats.matched and not stats.unacknowledged, stats
    return stats.answers


def _key(msg: Any) -> list[tuple]:
    return [(h.class_id, h.x_min, h.y_min, h.x_max, h.y_max, h.score) for h in msg.hazards]


def test_replay_through_detector_node_meets_floors_and_is_deterministic(
        frames_bag, model, capsys, record_property) -> None:
    from edge_perception.nodes.detector_replay import hazards_to_rows

    bag, labels, n = frames_bag
    model_path, val = model
    thr = float(val["score_threshold"])
    first = _replay(bag, model_path, thr)
    assert len(first) == n and all(m is not None for m in first)
    # answers are in frame order: stamps strictly increasing, 100 ms apart (10 Hz)
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in first]
    assert np.all(np.diff(stamps) == 100_000_000)

    gts = []
    for i, m in enumerate(first):
        gts.append(frame_labels(labels, i, m.image_width, m.image_height))
    got = coco_metrics(gts, [hazards_to_rows(m) for m in first], NAMES, thr)
    floors = {"precision": FLOOR_FACTOR * val["precision"],
              "recall": FLOOR_FACTOR * val["recall"]}
    found = sum(len(m.hazards) for m in first)
    summary = {"frames": n, "ground_truth": got.ground_truth, "hazards": found,
               "precision": got.precision, "recall": got.recall,
               "map50_thresholded": got.map50, "floors": floors,
               "val_int8": {k: val[k] for k in ("precision", "recall", "score_threshold")}}
    record_property("replay_regression", json.dumps(summary))
    with capsys.disabled():
        print(f"\nreplay regression: {json.dumps(summary)}")
    assert got.ground_truth >= 40 and found > 0
    assert got.precision >= floors["precision"], summary
    assert got.recall >= floors["recall"], summary

    # a second replay (fresh node, fresh graph) gives exactly the same hazards
    second = _replay(bag, model_path, thr)
    assert [_key(m) for m in second] == [_key(m) for m in first]

    # `edge-perception bag eval` on the same bag agrees with the node graph
    capsys.readouterr()
    rc = cli.main(["bag", "eval", str(bag), "--labels", str(labels), "--json", "--model",
                   str(model_path), "--device", "cpu", "--score-threshold", str(thr)])
    out = capsys.readouterr().out.strip().splitlines()
    assert rc == 0 and len(out) == 1
    ev = json.loads(out[0])
    assert ev["frames"] == n and ev["ground_truth"] == got.ground_truth
    assert ev["precision"] == pytest.approx(got.precision, abs=1e-6)
    assert ev["recall"] == pytest.approx(got.recall, abs=1e-6)
    assert 0.0 <= ev["map50"] <= 1.0 and ev["map50"] >= got.map50 - 1e-6
