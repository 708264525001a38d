"""Car → server → YOLO dataset: uploads through the real ingest server, then
`edge-perception dataset-from-ingest`, read back with the trainer's own data reader."""

from __future__ import annotations

import csv
import subprocess
import sys
import time

import cv2
import numpy as np

from edge_perception.learn.crashtest import server_sample_counts
from edge_perception.learn.ingest_server import IngestConfig, IngestServer
from edge_perception.learn.privacy import encode_jpeg
from edge_perception.learn.sample import Reason, Sample, SampleDetection
from edge_perception.learn.store import SampleStore
from edge_perception.learn.transport import HttpTransport
from edge_perception.learn.uploader import Uploader, UploaderConfig
from edge_perception.train.data import label_path, read_data_yaml, read_labels

TOKEN = "dataset-test-token-0123456789"


def frame(i: int) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """A road-like 448x256 frame with a dark elliptical 'pothole' at a known place."""
    rng = np.random.default_rng(i)
    img = np.clip(rng.normal(95, 10, (256, 448, 3)), 0, 255).astype(np.uint8)
    cx, cy = 80 + 25 * i, 150 + 4 * i
    cv2.ellipse(img, (cx, cy), (40, 14), 0, 0, 360, (35, 35, 40), -1)
    return img, (cx - 40.0, cy - 14.0, cx + 40.0, cy + 14.0)


def test_ingest_to_yolo_dataset(tmp_path):
    boxes = {}
    with SampleStore(tmp_path / "car") as store, \
            IngestServer(IngestConfig(root=tmp_path / "cloud", tokens={TOKEN: "car1"})) as srv:
        for i in range(12):
            img, box = frame(i)
            dets = (SampleDetection(0, "pothole", 0.55, box),
                    SampleDetection(1, "speed_bump", 0.1, (0, 0, 50, 20)))  # below min-score
            uid = store.put(Sample(encode_jpeg(img), dets, "det@3", {"width": 448},
                                   float(i), Reason.HARD_EXAMPLE, 1, uid=f"{i:032x}"))
            boxes[uid] = box
        up = Uploader(store, HttpTransport(srv.url, TOKEN),
                      UploaderConfig("car1", batch_max_count=5, batch_max_age_s=0,
                                     poll_interval_s=0.02))
        up.start()
        deadline = 200
        while store.stats().samples and deadline:
            time.sleep(0.05)
            deadline -= 1
        up.stop()
    assert len(server_sample_counts(tmp_path / "cloud")) == 12

    out = tmp_path / "dataset"
    cmd = [sys.executable, "-m", "edge_perception.cli", "dataset-from-ingest", "--ingest",
           str(tmp_path / "cloud"), "--out", str(out), "--val-percent", "30"]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert '"new": 12' in res.stdout and '"labels": 12' in res.stdout

    spec = read_data_yaml(out / "data.yaml")
    assert spec.names == {0: "pothole", 1: "speed_bump"}
    images = spec.images("train") + spec.images("val")
    assert len(images) == 12 and spec.images("val") and spec.images("train")
    for p in images:
        labels = read_labels(label_path(p), 448, 256)
        assert labels.shape == (1, 5) and labels[0, 0] == 0
        np.testing.assert_allclose(labels[0, 1:], boxes[p.stem], atol=0.01)
    with open(out / "review.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12 and {r["needs_review"] for r in rows} == {"1"}
    assert {r["reason"] for r in rows} == {"hard_example"} and rows[0]["model_version"] == "det@3"

    again = subprocess.run(cmd, capture_output=True, text=True, check=True)  # idempotent
    assert '"new": 0' in again.stdout and '"skipped": 12' in again.stdout
