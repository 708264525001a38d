"""`edge-perception bag eval`: frames of a bag matched by order to 000000.txt, 000001.txt, ...

The bag holds rendered road frames of two sizes with the renderer's truth boxes as YOLO labels
(no shared data needed). Perfect detections score 1 (so labels are denormalised with each
frame's own size and matched in order); the CLI's JSON equals metrics computed here from
`Detector.detect` on the same frames; `--graph` (a real detector_node over DDS, every frame
answered) gives the same precision/recall. The model is a real file with random weights
(detector_helpers.make_model): this is about the plumbing; model quality is the regression
test's job (test_regression_replay.py)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from detector_helpers import make_model

from edge_perception import cli
from edge_perception.detect.detector import DetectorConfig, load_detector
from edge_perception.detect.metrics import coco_metrics
from edge_perception.geometry import CameraIntrinsics, CameraMount
from edge_perception.replay.eval_cli import evaluate_frames, frame_labels
from edge_perception.replay.images import iter_images, write_image_bag
from edge_perception.sim import Scenario

NAMES = {0: "pothole", 1: "speed_bump"}
THRESHOLD = 0.2


def _yolo(box: np.ndarray, cls: int, w: int, h: int) -> str:
    x1, y1, x2, y2 = (float(v) for v in box)
    return f"{cls} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} " \
           f"{(y2 - y1) / h:.6f}"


@pytest.fixture(scope="module")
def bag(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[np.ndarray]]:
    """6 frames (3 at 480x270, 3 at 320x240) and their labels; returns (bag, labels, truth
    rows (cls, x1, y1, x2, y2) per frame in pixels)."""
    root = tmp_path_factory.mktemp("bag_eval")
    labels = root / "labels"
    labels.mkdir()
    mount = CameraMount(x=1.9, z=1.4, pitch=math.radians(5.0))
    images, truths = [], []
    for w, h, xs in ((480, 270, (12.0, 20.0, 35.0)), (320, 240, (16.0, 30.0, 50.0))):
        intrinsics = CameraIntrinsics.from_hfov(w, h, math.radians(70))
        renderer = Scenario().renderer(intrinsics, mount, seed=1)
        for x in xs:
            frame = renderer.render(Scenario().hazards, x)
            rows = [(t.class_id, *t.box) for t in frame.truths
                    if t.box[2] - t.box[0] >= 3 and t.box[3] - t.box[1] >= 1]
            images.append(frame.image)
            truths.append(np.array(rows, np.float32).reshape(-1, 5))
    for i, rows in enumerate(truths):
        h, w = images[i].shape[:2]
        text = "\n".join(_yolo(r[1:], int(r[0]), w, h) for r in rows)
        (labels / f"{i:06d}.txt").write_text(text + "\n" if text else "")
    assert sum(len(r) for r in truths) >= 8
    return write_image_bag(images, root / "frames", rate_hz=10.0), labels, truths


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model(tmp_path_factory.mktemp("model") / "random.pt")


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`edge-perception bag eval ARGS` in this process (the real CLI dispatch; a subprocess
    would spend most of the test importing torch on a busy box)."""
    capsys.readouterr()
    rc = cli.main(["bag", "eval", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_labels_are_read_per_frame_size_and_in_order(bag) -> None:
    path, labels, truths = bag
    frames = list(iter_images(path))
    assert [f.index for f in frames] == list(range(6))
    assert {f.image.shape[:2] for f in frames} == {(270, 480), (240, 320)}
    for f in frames:
        h, w = f.image.shape[:2]
        np.testing.assert_allclose(frame_labels(labels, f.index, w, h), truths[f.index],
                                   atol=1e-2)

    def perfect(f) -> np.ndarray:
        t = truths[f.index]
        return np.concatenate([t[:, 1:], np.ones((len(t), 1)), t[:, :1]], axis=1)

    m = evaluate_frames(iter_images(path), labels, perfect, NAMES, THRESHOLD)
    assert (m.precision, m.recall, m.images) == (1.0, 1.0, 6)
    assert m.map50 == pytest.approx(1.0)
    assert m.ground_truth == sum(len(t) for t in truths)

    # the same boxes handed to the wrong frames (off by one) no longer match
    shifted = evaluate_frames(iter_images(path), labels,
                              lambda f: perfect(replace(f, index=(f.index + 1) % 6)),
                              NAMES, THRESHOLD)
    assert shifted.recall < 0.5


def test_cli_json_equals_direct_metrics(bag, model: Path, capsys) -> None:
    path, labels, _ = bag
    rc, stdout, stderr = _cli(capsys, str(path), "--labels", str(labels), "--json", "--model",
                              str(model), "--score-threshold", str(THRESHOLD), "--device", "cpu")
    assert rc == 0, stderr[-2000:]
    lines = stdout.strip().splitlines()
    assert len(lines) == 1, stdout
    out = json.loads(lines[0])
    assert {"precision", "recall", "map50"} <= out.keys()
    assert out["frames"] == 6 and out["topic"] == "/camera/image_raw"
    assert out["path"] == "library" and out["unused_label_files"] == 0

    # independently: Detector.detect on each frame, labels read here, coco_metrics
    det = load_detector(model, "cpu", DetectorConfig(score_threshold=0.001))
    gts, dets = [], []
    for f in iter_images(path):
        h, w = f.image.shape[:2]
        found = det.detect(f.image, f.encoding)
        dets.append(np.array([(*d.box, d.score, d.class_id) for d in found],
                             np.float32).reshape(-1, 6))
        gts.append(frame_labels(labels, f.index, w, h))
    m = coco_metrics(gts, dets, NAMES, THRESHOLD)
    assert out["ground_truth"] == m.ground_truth
    assert out["precision"] == pytest.approx(m.precision, abs=1e-9)
    assert out["recall"] == pytest.approx(m.recall, abs=1e-9)
    assert out["map50"] == pytest.approx(m.map50, abs=1e-9)
    assert sum(len(d[d[:, 4] >= THRESHOLD]) for d in dets) > 0, "random model found nothing"

    # --graph: the same frames through a real detector_node, every frame answered
    rc, stdout, stderr = _cli(capsys, str(path), "--labels", str(labels), "--json", "--model",
                              str(model), "--score-threshold", str(THRESHOLD), "--device",
                              "cpu", "--graph")
    assert rc == 0, stderr[-2000:]
    graph = json.loads(stdout.strip().splitlines()[-1])
    assert graph["path"] == "graph" and graph["frames"] == 6
    assert graph["precision"] == pytest.approx(m.precision, abs=1e-6)
    assert graph["recall"] == pytest.approx(m.recall, abs=1e-6)


def test_cli_refuses_missing_labels_and_unknown_model(bag, tmp_path: Path, capsys) -> None:
    path, labels, _ = bag
    rc, _, err = _cli(capsys, str(path), "--labels", str(tmp_path / "none"), "--json")
    assert rc == 2 and "no label files" in err
    rc, _, err = _cli(capsys, str(path), "--labels", str(labels), "--model",
                      str(tmp_path / "x.pt"))
    assert rc == 2 and "model file not found" in err
