"""The numba.cuda kernel against the CPU kernel (and the OpenCV reference on a real GPU).

Each check runs this file as a script in a subprocess: under NUMBA_ENABLE_CUDASIM=1 on tiny
images everywhere (the simulator runs every GPU thread in Python), and without the simulator on
full-size frames when a CUDA GPU is present.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest


def _compare(mode: str) -> dict[str, Any]:
    import numpy as np

    from edge_perception.detect.spec import ModelSpec
    from edge_perception.preprocess import ENCODINGS, Preprocessor, image_array
    from edge_perception.preprocess.reference import preprocess_cv2

    real = mode == "gpu"
    spec = ModelSpec() if real else ModelSpec(input_width=16, input_height=8)
    sizes = [(1920, 1080), (1001, 333), (37, 23), (97, 301)] if real else [(10, 7)]
    std = np.asarray(spec.std, np.float64)[:, None, None]
    cpu = Preprocessor(spec)
    gpu = {np.float32: Preprocessor(spec, device="cuda"),
           np.float16: Preprocessor(spec, device="cuda", dtype=np.float16)}
    rng = np.random.default_rng(0)
    cases = []
    for encoding, enc in ENCODINGS.items():
        for w, h in sizes + ([(40, 6), (6, 13)] if encoding in ("bgr8", "yuyv") else []):
            w += w % 2 if enc.kind == "yuv422" else 0
            step = w * enc.bytes_per_pixel + 3
            data = rng.integers(0, 256, step * h, np.uint8)
            img = image_array(h, w, step, encoding, data)
            want, lb_cpu = cpu(img, encoding)
            ref = preprocess_cv2(np.ascontiguousarray(img), encoding, spec.input_width,
                                 spec.input_height, spec.pad, spec.mean, spec.std)
            dtypes = (np.float32, np.float16) if encoding in ("bgr8", "yuyv") else (np.float32,)
            for dtype in dtypes:
                dev, lb = gpu[dtype](img, encoding)
                got = dev.copy_to_host().astype(np.float64)
                cases.append({
                    "case": f"{encoding} {w}x{h} {np.dtype(dtype).name}",
                    "same_letterbox": lb == lb_cpu,
                    "shape": list(got.shape),
                    "vs_cpu": float(np.abs((got - want)[0] * std).max()),
                    "vs_reference": float(np.abs((got - ref)[0] * std).max()),
                })
    result: dict[str, Any] = {"cases": cases}
    frames = [(rng.integers(0, 256, (7, 10, 3), np.uint8), "bgr8"),
              (rng.integers(0, 256, (9, 4, 2), np.uint8), "yuyv")]
    batch, _ = gpu[np.float32].batch(frames)
    result["batch_vs_cpu"] = float(np.abs(batch.copy_to_host() - cpu.batch(frames)[0]).max())
    if real:
        import torch

        out = gpu[np.float32].output
        tensor = torch.as_tensor(out, device="cuda")
        result["torch_zero_copy"] = (
            tensor.data_ptr() == out.__cuda_array_interface__["data"][0]
            and bool(torch.equal(tensor.cpu(), torch.from_numpy(out.copy_to_host()))))
    return result


def _run(mode: str) -> dict[str, Any]:
    env = dict(os.environ)
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    if mode == "sim":
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    proc = subprocess.run([sys.executable, __file__, mode], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _has_gpu() -> bool:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    proc = subprocess.run([sys.executable, "-c", "from numba import cuda; "
                           "print(cuda.is_available())"], env=env, capture_output=True,
                          text=True, timeout=120)
    return proc.stdout.strip().endswith("True")


def _check(result: dict[str, Any], vs_cpu_f32: float) -> None:
    assert result["cases"]
    for c in result["cases"]:
        assert c["same_letterbox"], c
        assert c["shape"][:2] == [1, 3], c
        f16 = c["case"].endswith("float16")
        # float16 keeps ~11 significant bits: ≤ 0.5 grey level on the [0, 1] scale.
        assert c["vs_cpu"] <= (0.5 / 255 if f16 else vs_cpu_f32), c
        assert c["vs_reference"] <= (1.5 / 255 if f16 else 1 / 255), c


def test_cuda_kernel_matches_cpu_in_simulator() -> None:
    result = _run("sim")
    _check(result, vs_cpu_f32=1e-5)
    assert result["batch_vs_cpu"] <= 1e-5


def test_cuda_kernel_on_real_gpu() -> None:
    if not _has_gpu():
        pytest.skip("no CUDA GPU (the simulator test covers the kernel)")
    result = _run("gpu")
    # fused multiply-adds on the GPU round differently from the CPU: allow a hair more.
    _check(result, vs_cpu_f32=1e-4)
    assert result["torch_zero_copy"]


if __name__ == "__main__":
    print(json.dumps(_compare(sys.argv[1])))
