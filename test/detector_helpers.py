"""Shared by the detector tests: a real model file with random weights (built and saved with
the real code path, small input so CPU inference is quick on a busy 2-core box) and a
simulated road camera."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from edge_perception.detect.model_io import save_fp32
from edge_perception.detect.network import HazardNet
from edge_perception.detect.spec import ModelSpec
from edge_perception.geometry import CameraIntrinsics, CameraMount

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
SPEC = ModelSpec(input_width=224, input_height=128)
MOUNT = CameraMount(z=1.4, pitch=math.radians(6.0))


def make_model(path: Path, seed: int = 0) -> Path:
    """Random HazardNet whose class logits are lifted so that it does report boxes."""
    torch.manual_seed(seed)
    net = HazardNet().eval()
    with torch.no_grad():
        for head in net.heads:
            head.cls.bias.fill_(-0.5)  # sigmoid ~ 0.38: many candidates, NMS keeps the best
            head.cls.weight.normal_(0.0, 0.5)
    save_fp32(path, net, SPEC, {"name": "random-test", "version": "0"})
    return path


def sample_data_yaml(tmp_path: Path) -> Path:
    """A YOLO data.yaml over the bundled sample frames with train = val (for testing code paths
    that train or calibrate, not for measuring a model)."""
    y = tmp_path / "data.yaml"
    y.write_text(f"path: {SAMPLE}\ntrain: images\nval: images\nnames:\n  0: pothole\n"
                 "  1: speed_bump\n")
    return y


def sim_intrinsics(width: int = 640, height: int = 360) -> CameraIntrinsics:
    return CameraIntrinsics.from_hfov(width, height, math.radians(90.0))
