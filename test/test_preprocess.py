"""Fused preprocessing against the OpenCV reference, image views, compressed images, letterbox."""

from __future__ import annotations

import array
import subprocess
import sys

import cv2
import numpy as np
import pytest

from edge_perception.detect.spec import ModelSpec
from edge_perception.preprocess import (
    ENCODINGS,
    ImageFormatError,
    Letterbox,
    Preprocessor,
    decode_compressed,
    image_array,
)
from edge_perception.preprocess.reference import preprocess_cv2

SPEC = ModelSpec()
MEAN = np.asarray(SPEC.mean, np.float64)[:, None, None]
STD = np.asarray(SPEC.std, np.float64)[:, None, None]

# (width, height): odd sizes, up- and down-scaling, tall and wide, identity, degenerate.
SIZES = [(37, 23), (1001, 333), (640, 480), (97, 301), (448, 256), (896, 512), (3, 1)]


@pytest.fixture(scope="module")
def pre() -> Preprocessor:
    p = Preprocessor(SPEC)
    p.warmup()
    return p


def unit_scale(x: np.ndarray) -> np.ndarray:
    """Model input (1, 3, H, W) back on the [0, 1] scale, where 1/255 is one grey level."""
    return np.asarray(x, np.float64)[0] * STD + MEAN


def raw_image(rng: np.random.Generator, width: int, height: int, encoding: str, row_pad: int
              ) -> tuple[bytes, int]:
    """Random Image.data with `row_pad` garbage bytes after every row; returns (data, step)."""
    step = width * ENCODINGS[encoding].bytes_per_pixel + row_pad
    return rng.integers(0, 256, step * height, np.uint8).tobytes(), step


@pytest.mark.parametrize("encoding", list(ENCODINGS))
@pytest.mark.parametrize("width,height", SIZES)
def test_matches_opencv_reference(pre: Preprocessor, encoding: str, width: int,
                                  height: int) -> None:
    if ENCODINGS[encoding].kind == "yuv422":
        width += width % 2
    rng = np.random.default_rng(width * 1000 + height)
    data, step = raw_image(rng, width, height, encoding, row_pad=7)
    img = image_array(height, width, step, encoding, data)
    out, lb = pre(img, encoding)
    ref = preprocess_cv2(np.ascontiguousarray(img), encoding, SPEC.input_width,
                         SPEC.input_height, SPEC.pad, SPEC.mean, SPEC.std)
    assert out.shape == ref.shape == (1, 3, SPEC.input_height, SPEC.input_width)
    assert out.dtype == np.float32
    err = np.abs(unit_scale(out) - unit_scale(ref)).max()
    assert err <= 1 / 255, f"max error {err * 255:.3f} grey levels"
    # The padding is exactly `pad` grey.
    pad_level = unit_scale(out)[:, :, : lb.pad_x] if lb.pad_x else unit_scale(out)[:, : lb.pad_y]
    if pad_level.size:
        np.testing.assert_allclose(pad_level, SPEC.pad / 255, atol=1e-6)


def test_output_buffer_is_reused(pre: Preprocessor) -> None:
    a = np.full((20, 30, 3), 10, np.uint8)
    b = np.full((20, 30, 3), 200, np.uint8)
    out_a, _ = pre(a, "bgr8")
    first = out_a.copy()
    out_b, _ = pre(b, "bgr8")
    assert out_a is out_b is pre.output
    assert not np.allclose(first, out_b)  # the next call overwrote the first result


def test_single_thread_gives_the_same_result(pre: Preprocessor) -> None:
    import numba

    one = Preprocessor(SPEC, threads=1)
    img = np.random.default_rng(5).integers(0, 256, (720, 1280, 4), np.uint8)
    threads = numba.get_num_threads()
    for encoding, src in (("bgra8", img), ("yuyv", img[:, :, :2])):
        np.testing.assert_array_equal(one(src, encoding)[0], pre(src, encoding)[0])
    assert numba.get_num_threads() == threads  # the caller's setting is restored


def test_kernels_are_compiled_for_unsigned_indices_only(pre: Preprocessor) -> None:
    """Signed indices cost a wraparound test per load and about double the kernel time (see
    preprocess/_cpu.py); every signature the Preprocessor compiles must be index-unsigned."""
    from numba.core import types

    from edge_perception.preprocess import _cpu

    pre.warmup()
    pre(np.zeros((7, 9, 3), np.uint8)[:, 1:], "bgr8")  # a strided source as well
    for kernel in (_cpu.letterbox_packed, _cpu.letterbox_yuv422):
        assert kernel.signatures
        for signature in kernel.signatures:
            ints = [t.dtype if isinstance(t, types.Array) else t for t in signature]
            ints = [t for t in ints if isinstance(t, types.Integer)]
            assert ints and all(not t.signed for t in ints), signature


def test_strided_and_cropped_sources(pre: Preprocessor) -> None:
    rng = np.random.default_rng(3)
    big = rng.integers(0, 256, (300, 500, 3), np.uint8)
    for view in (big[10:250, 33:401], big[:, ::2], big[::-1]):  # zero-copy crop; copied ones
        out, _ = pre(view, "bgr8")
        ref = preprocess_cv2(np.ascontiguousarray(view), "bgr8", SPEC.input_width,
                             SPEC.input_height, SPEC.pad, SPEC.mean, SPEC.std)
        assert np.abs(unit_scale(out) - unit_scale(ref)).max() <= 1 / 255


def test_extreme_aspect_ratios(pre: Preprocessor) -> None:
    for h, w in ((5000, 1), (1, 5000), (1, 1)):
        img = np.random.default_rng(h).integers(0, 256, (h, w, 3), np.uint8)
        out, lb = pre(img, "rgb8")
        assert np.isfinite(out).all() and lb.new_width >= 1 and lb.new_height >= 1
        inside = unit_scale(out)[:, lb.pad_y:lb.pad_y + lb.new_height,
                                 lb.pad_x:lb.pad_x + lb.new_width]
        assert inside.min() >= img.min() / 255 - 1e-6 and inside.max() <= img.max() / 255 + 1e-6


def test_batch(pre: Preprocessor) -> None:
    rng = np.random.default_rng(6)
    frames = [(rng.integers(0, 256, (90, 160, 3), np.uint8), "bgr8"),
              (rng.integers(0, 256, (300, 200, 2), np.uint8), "yuyv")]
    out, boxes = pre.batch(frames)
    assert out.shape == (2, 3, SPEC.input_height, SPEC.input_width)
    for i, (img, encoding) in enumerate(frames):
        single, lb = pre(img, encoding)
        np.testing.assert_array_equal(out[i], single[0])
        assert boxes[i] == lb


def test_mono8_two_dimensional(pre: Preprocessor) -> None:
    img = np.random.default_rng(4).integers(0, 256, (50, 80), np.uint8)
    out2 = pre(img, "mono8")[0].copy()
    out3 = pre(img[:, :, None], "mono8")[0]
    np.testing.assert_array_equal(out2, out3)


def test_yuv_byte_orders() -> None:
    """ROS yuv422 is UYVY, yuv422_yuy2/yuyv are YUYV: the same red pixel pair in both orders."""
    p = Preprocessor(ModelSpec(input_width=2, input_height=1))
    y, u, v = 81, 90, 240  # BT.601 limited-range pure red
    for encoding, pair in (("yuv422", [u, y, v, y]), ("uyvy", [u, y, v, y]),
                           ("yuv422_yuy2", [y, u, y, v]), ("yuyv", [y, u, y, v])):
        img = image_array(1, 2, 4, encoding, bytes(pair))
        rgb = unit_scale(p(img, encoding)[0])[:, 0, 0] * 255
        np.testing.assert_allclose(rgb, [255, 0, 0], atol=1.5, err_msg=encoding)


@pytest.mark.parametrize("width,height", [(320, 180), (640, 360), (1920, 1080)])
def test_known_box_maps_back(pre: Preprocessor, width: int, height: int) -> None:
    """A bright box is found in the model input (thresholded half-way, so each edge is within
    half an input pixel) and mapped back: within 1 px where an input pixel is at most two
    original pixels, within half an input pixel always."""
    img = np.full((height, width, 3), 40, np.uint8)
    box = np.array([width * 0.31, height * 0.37, width * 0.67, height * 0.9]).round()
    x1, y1, x2, y2 = box.astype(int)
    img[y1:y2, x1:x2] = 250
    out, lb = pre(img, "bgr8")
    bright = unit_scale(out)[0] > 145 / 255  # half-way between the two grey levels
    ys, xs = np.nonzero(bright)
    found = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
    err = np.abs(lb.to_original(found)[0] - box).max()
    assert err <= 0.5 / min(lb.scale_x, lb.scale_y) + 1e-3
    if lb.scale >= 0.5:
        assert err <= 1.0
    np.testing.assert_allclose(lb.to_original(lb.to_input(box[None]))[0], box, atol=1e-6)


def test_letterbox_geometry_and_clipping() -> None:
    lb = Letterbox.fit(1920, 1080, 448, 256)
    assert (lb.new_width, lb.new_height, lb.pad_x, lb.pad_y) == (448, 252, 0, 2)
    assert lb.scale == pytest.approx(448 / 1920)
    lb = Letterbox.fit(100, 300, 448, 256)
    assert (lb.new_width, lb.new_height) == (85, 256)
    assert lb.pad_x == (448 - 85) // 2 and lb.pad_y == 0
    outside = np.array([[-50.0, -10.0, 448.0, 300.0]], np.float32)
    np.testing.assert_allclose(lb.to_original(outside), [[0, 0, 100, 300]])
    assert lb.to_original(np.zeros((0, 4))).shape == (0, 4)
    with pytest.raises(ValueError):
        lb.to_original(np.zeros((3, 5)))
    with pytest.raises(ValueError):
        Letterbox.fit(0, 10, 448, 256)


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview", "array", "ndarray"])
def test_image_array_is_a_zero_copy_view(kind: str) -> None:
    h, w, step = 3, 4, 14  # 12 pixel bytes + 2 padding bytes per row
    raw = np.arange(step * h, dtype=np.uint8)
    data = {"bytes": raw.tobytes(), "bytearray": bytearray(raw.tobytes()),
            "memoryview": memoryview(raw.tobytes()), "array": array.array("B", raw.tobytes()),
            "ndarray": raw}[kind]
    img = image_array(h, w, step, "bgr8", data)
    assert img.shape == (h, w, 3) and img.dtype == np.uint8 and not img.flags.writeable
    np.testing.assert_array_equal(img[2, 3], raw[2 * step + 9: 2 * step + 12])
    if kind in ("bytearray", "ndarray", "array"):
        data[step + 1] = 99  # type: ignore[index]
        assert img[1, 0, 1] == 99  # a view, not a copy


MALFORMED = {
    "unknown encoding": (4, 4, 12, "bgr16", bytes(48)),
    "encoding not a string": (4, 4, 12, None, bytes(48)),
    "zero height": (0, 4, 12, "bgr8", bytes(48)),
    "zero width": (4, 0, 12, "bgr8", bytes(48)),
    "negative height": (-1, 4, 12, "bgr8", bytes(48)),
    "step shorter than a row": (4, 4, 11, "bgr8", bytes(48)),
    "data one byte short": (4, 4, 12, "bgr8", bytes(47)),
    "padded rows, data short": (4, 4, 16, "bgra8", bytes(60)),
    "empty data": (4, 4, 12, "bgr8", b""),
    "odd yuv width": (2, 3, 6, "yuv422", bytes(12)),
    "float height": (4.0, 4, 12, "bgr8", bytes(48)),
    "data is None": (4, 4, 12, "bgr8", None),
    "data is a str": (4, 4, 12, "bgr8", "x" * 48),
    "data is float array": (4, 4, 12, "bgr8", np.zeros(48, np.float32)),
    "data not contiguous": (4, 4, 12, "bgr8", np.zeros(96, np.uint8)[::2]),
    "memoryview not contiguous": (4, 4, 12, "bgr8", memoryview(bytes(96))[::2]),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_buffers_raise(case: str) -> None:
    with pytest.raises(ImageFormatError):
        image_array(*MALFORMED[case])


def test_preprocessor_rejects_bad_arrays(pre: Preprocessor) -> None:
    for img, encoding in ((np.zeros((4, 4, 3), np.float32), "bgr8"),
                          (np.zeros((4, 4, 4), np.uint8), "bgr8"),
                          (np.zeros((4, 4), np.uint8), "rgb8"),
                          (np.zeros((4, 3, 2), np.uint8), "yuyv"),
                          (np.zeros((0, 4, 3), np.uint8), "bgr8"),
                          (np.zeros((4, 4, 3), np.uint8), "jpeg")):
        with pytest.raises(ImageFormatError):
            pre(img, encoding)
    with pytest.raises(ValueError):
        Preprocessor(SPEC, device="tpu")
    with pytest.raises(ValueError):
        Preprocessor(SPEC, dtype=np.float16)  # float16 is for the GPU only
    with pytest.raises(ValueError):
        Preprocessor(SPEC, threads=0)


def smooth_image(width: int, height: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([xx * 255 // width, yy * 255 // height, (xx + yy) % 256], -1).astype(np.uint8)


def test_compressed_round_trip(pre: Preprocessor) -> None:
    img = smooth_image(160, 90)
    ok, png = cv2.imencode(".png", img)
    assert ok
    np.testing.assert_array_equal(decode_compressed("png", png.tobytes()), img)
    ok, jpg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    decoded = decode_compressed("bgr8; jpeg compressed bgr8", array.array("B", jpg.tobytes()))
    assert decoded.shape == img.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - img).mean() < 3
    out, lb = pre(decoded, "bgr8")
    assert (lb.src_width, lb.src_height) == (160, 90) and np.isfinite(out).all()


def test_corrupt_compressed_raises() -> None:
    ok, jpg = cv2.imencode(".jpg", smooth_image(64, 48))
    assert ok
    garbled = bytearray(jpg.tobytes())
    garbled[2:200] = bytes(198)  # the JPEG headers are gone
    for fmt, data in (("jpeg", bytes(garbled)), ("jpeg", b""), ("png", b"\x89PNG\r\n\x1a\n"),
                      ("jpeg", np.random.default_rng(0).bytes(5000)),
                      ("16UC1; compressedDepth png", jpg.tobytes())):
        with pytest.raises(ImageFormatError):
            decode_compressed(fmt, data)


def test_library_does_not_import_ros() -> None:
    code = ("import sys, edge_perception.preprocess, edge_perception.preprocess.reference; "
            "bad = [m for m in sys.modules if m == 'rclpy' or m.endswith('_msgs')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_real_sensor_msgs_image(pre: Preprocessor) -> None:
    """The buffer type rclpy really gives (array.array) is viewed without a copy."""
    msgs = pytest.importorskip("sensor_msgs.msg")
    rng = np.random.default_rng(8)
    data, step = raw_image(rng, 64, 48, "yuv422", row_pad=4)
    msg = msgs.Image(height=48, width=64, step=step, encoding="yuv422", data=data)
    img = image_array(msg.height, msg.width, msg.step, msg.encoding, msg.data)
    assert np.shares_memory(img, np.frombuffer(msg.data, np.uint8))
    out, _ = pre(img, msg.encoding)
    ref = preprocess_cv2(np.ascontiguousarray(img), "yuv422", SPEC.input_width,
                         SPEC.input_height, SPEC.pad, SPEC.mean, SPEC.std)
    assert np.abs(unit_scale(out) - unit_scale(ref)).max() <= 1 / 255
