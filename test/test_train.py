"""Training: augmentation keeps boxes on their pixels, and a killed run resumes exactly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from edge_perception.train.data import Augmenter, ImageCache, read_data_yaml

from detector_helpers import sample_data_yaml


def test_augmenter_keeps_boxes_on_the_object(tmp_path):
    spec = read_data_yaml(sample_data_yaml(tmp_path))
    images = spec.images("train")[:6]
    cache = ImageCache(images, 160, tmp_path / "cache")
    # Paint each cached image's first box pure white, so a box that follows its pixels can be
    # checked in the augmented canvas.
    arr = np.array(cache.images)
    for i, b in enumerate(cache.boxes):
        if len(b):
            x1, y1, x2, y2 = b[0, 1:].astype(int)
            arr[i, y1:y2, x1:x2] = 255
            cache.boxes[i] = b[:1]
    cache.images = arr
    aug = Augmenter(cache, 224, 128, min_visible=0.9)
    aug._colour = lambda img, rng: img  # type: ignore[method-assign]  # geometry only
    rng = np.random.default_rng(0)
    checked = 0
    for k in range(40):
        img, boxes = aug(k % len(cache), rng)
        assert img.shape == (128, 224, 3)
        for c, x1, y1, x2, y2 in boxes:
            inner = img[int(y1) + 2:int(y2) - 2, int(x1) + 2:int(x2) - 2]
            if inner.size:
                assert inner.mean() > 240, "box no longer covers its (white) object"
                checked += 1
    assert checked > 10


def test_worker_processes_build_the_same_batches(tmp_path):
    """A GPU run builds batches in DataLoader workers: same canvases, same order as in-process."""
    from edge_perception.detect.spec import ModelSpec
    from edge_perception.train.engine import batches

    spec = ModelSpec(input_width=128, input_height=96)
    cache = ImageCache(read_data_yaml(sample_data_yaml(tmp_path)).images("train")[:8], 96,
                       tmp_path / "cache")
    aug = Augmenter(cache, spec.input_width, spec.input_height, spec.pad)
    inline = list(batches(aug, len(cache), 2, 3, 1, spec, skip=1))
    pooled = list(batches(aug, len(cache), 2, 3, 1, spec, skip=1, workers=2))
    assert len(inline) == len(pooled) == 3
    for (xa, ta), (xb, tb) in zip(inline, pooled):
        assert xa.shape == (2, 3, 96, 128) and xa.dtype == torch.float32
        assert torch.equal(xa, xb)
        assert all(torch.equal(a, b) for a, b in zip(ta, tb))
    assert not torch.equal(inline[0][0], inline[1][0])


def _train(tmp_path: Path, out: str, epochs: int, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "edge_perception.cli", "train", "--data",
           str(sample_data_yaml(tmp_path)), "--output-dir", str(tmp_path / out), "--epochs",
           str(epochs),
           "--batch-size", "2", "--limit", "8", "--input-width", "128", "--input-height", "96",
           "--cache-side", "128", "--cache-dir", str(tmp_path / "cache"), "--val-limit", "4",
           "--eval-every", "100", "--save-every", "1", "--threads", "1", "--warmup-steps", "2",
           *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _ema(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["ema"]


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights(tmp_path):
    ref = _train(tmp_path, "ref", 2)
    assert ref.wait(timeout=600) == 0, ref.stdout.read()[-3000:]

    run = _train(tmp_path, "run", 2)
    last = tmp_path / "run" / "last.pt"
    deadline = time.time() + 600
    while time.time() < deadline and run.poll() is None:
        if last.exists():
            step = torch.load(last, weights_only=True)["step_in_epoch"]
            if step >= 2:
                break
        time.sleep(0.2)
    assert run.poll() is None, "run ended before it could be killed"
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    resumed = _train(tmp_path, "run", 2, "--resume")
    log = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, log[-3000:]
    m = re.search(r"resumed from .*: epoch (\d+), step (\d+)", log)
    assert m and (int(m.group(1)), int(m.group(2))) >= (0, 2), "resume restarted from scratch"
    a, b = _ema(tmp_path / "ref" / "last.pt"), _ema(last)
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=f"{k} differs after resume")
