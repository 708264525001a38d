"""Fused CPU kernels (private; call them through `Preprocessor`, which checks every argument).

One pass per output pixel: sample the source bilinearly (cv2 INTER_LINEAR geometry: half-pixel
centres, coordinates clamped at the border), convert to RGB, normalise, write CHW. Sources are
a flat uint8 buffer plus a row step, so row padding costs nothing and one compiled signature
serves every image. The kernels release the GIL, so detector workers preprocess concurrently.

Every index, offset and size is unsigned (uint64 scalars and tables; `Preprocessor` converts
them): with a signed index Numba emits a negative-index wraparound test on every load, which
keeps LLVM from vectorising the loops and about doubles the kernel's time. Mixing uint64 with a
signed integer makes a float64 in Numba, hence the `_U*` constants.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

__all__ = ["sample_table", "letterbox_packed", "letterbox_yuv422"]

# OpenCV's fixed-point ITU-R BT.601 (limited range) YUV → RGB, bit-exact with cv2.cvtColor.
_CY, _CUB, _CUG, _CVG, _CVR, _SHIFT = 1220542, 2116026, -409993, -852492, 1673527, 20
_U1, _U2 = np.uint64(1), np.uint64(2)


@njit(cache=True, inline="always")
def _yuv_rgb(y: int, u: int, v: int) -> tuple[float, float, float]:
    """One pixel as cv2.cvtColor computes it; the saturation is done on float32 values (exact
    for these small integers, and much faster than integer min/max here)."""
    yy = max(y - 16, 0) * _CY + (1 << (_SHIFT - 1))
    uu, vv = u - 128, v - 128
    lo, hi = np.float32(0.0), np.float32(255.0)
    r = min(max(np.float32((yy + _CVR * vv) >> _SHIFT), lo), hi)
    g = min(max(np.float32((yy + _CVG * vv + _CUG * uu) >> _SHIFT), lo), hi)
    b = min(max(np.float32((yy + _CUB * uu) >> _SHIFT), lo), hi)
    return r, g, b


def sample_table(dst: int, pad: int, new: int, src: int, stride: int = 1
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per output coordinate (dst of them, the image at [pad, pad + new)): the two source
    indices (times `stride`, uint64) and the weight of the second, as cv2.resize INTER_LINEAR
    computes them (half-pixel centres, clamped at the border). Padding entries are valid, never
    used."""
    s = (np.arange(dst, dtype=np.float64) - pad + 0.5) * (src / new) - 0.5
    s = np.clip(s, 0.0, src - 1.0)
    i0 = np.floor(s).astype(np.uint64)
    i1 = np.minimum(i0 + 1, src - 1).astype(np.uint64)
    return i0 * np.uint64(stride), i1 * np.uint64(stride), (s - i0).astype(np.float32)


@njit(parallel=True, cache=True, nogil=True)
def letterbox_packed(src: np.ndarray, step: int, row_bytes: int, ci_r: int, ci_g: int,
                     ci_b: int, out: np.ndarray, pad_x: int, pad_y: int, new_w: int, new_h: int,
                     x0s: np.ndarray, x1s: np.ndarray, wxs: np.ndarray, y0s: np.ndarray,
                     y1s: np.ndarray, wys: np.ndarray, pad: float, a: np.ndarray, b: np.ndarray,
                     scratch: np.ndarray) -> None:
    """bgr8/rgb8/bgra8/rgba8/mono8 → out (3, H, W). x0s/x1s are byte offsets of the pixels
    within a row, R, G, B sit at byte offsets ci_* within a pixel.

    Per output row, the two source rows are blended vertically into this thread's row of
    `scratch` (float32, at least row_bytes long; a contiguous loop the compiler vectorises),
    then every output pixel blends two pixels of it horizontally: the same bilinear weights as
    a 4-tap sample, in about half the time."""
    out_h, out_w = np.uint64(out.shape[1]), np.uint64(out.shape[2])
    a0, a1, a2, b0, b1, b2 = a[0], a[1], a[2], b[0], b[1], b[2]
    pr, pg, pb = pad * a0 + b0, pad * a1 + b1, pad * a2 + b2
    for y in prange(out_h):
        o0, o1, o2 = out[0, y], out[1, y], out[2, y]
        inside = pad_y <= y < pad_y + new_h
        x_end = pad_x + new_w if inside else out_w
        for x in range(out_w if not inside else pad_x):
            o0[x], o1[x], o2[x] = pr, pg, pb
        for x in range(x_end, out_w):
            o0[x], o1[x], o2[x] = pr, pg, pb
        if not inside:
            continue
        tmp = scratch[numba.get_thread_id()]
        r0, r1 = y0s[y] * step, y1s[y] * step
        s0 = src[r0: r0 + row_bytes]
        s1 = src[r1: r1 + row_bytes]
        wy1 = wys[y]
        wy0 = np.float32(1.0) - wy1
        for i in range(row_bytes):
            tmp[i] = wy0 * s0[i] + wy1 * s1[i]
        for x in range(pad_x, x_end):
            wx1 = wxs[x]
            wx0 = np.float32(1.0) - wx1
            p0, p1 = x0s[x], x1s[x]
            o0[x] = (wx0 * tmp[p0 + ci_r] + wx1 * tmp[p1 + ci_r]) * a0 + b0
            o1[x] = (wx0 * tmp[p0 + ci_g] + wx1 * tmp[p1 + ci_g]) * a1 + b1
            o2[x] = (wx0 * tmp[p0 + ci_b] + wx1 * tmp[p1 + ci_b]) * a2 + b2


@njit(cache=True, inline="always")
def _yuv_tap(src: np.ndarray, row: int, x: int, oy: int, ou: int, ov: int
             ) -> tuple[float, float, float]:
    pair = row + ((x >> _U1) << _U2)
    return _yuv_rgb(int(src[row + x + x + oy]), int(src[pair + ou]), int(src[pair + ov]))


@njit(parallel=True, cache=True, nogil=True)
def letterbox_yuv422(src: np.ndarray, step: int, oy: int, ou: int, ov: int, out: np.ndarray,
                     pad_x: int, pad_y: int, new_w: int, new_h: int, x0s: np.ndarray,
                     x1s: np.ndarray, wxs: np.ndarray, y0s: np.ndarray, y1s: np.ndarray,
                     wys: np.ndarray, pad: float, a: np.ndarray, b: np.ndarray) -> None:
    """YUV 4:2:2 (Y at byte oy of each pixel, U/V at ou/ov of each pixel pair) → out (3, H, W).

    Each tap is converted to RGB exactly as cv2.cvtColor does, then blended."""
    out_h, out_w = np.uint64(out.shape[1]), np.uint64(out.shape[2])
    pr, pg, pb = pad * a[0] + b[0], pad * a[1] + b[1], pad * a[2] + b[2]
    for y in prange(out_h):
        inside = pad_y <= y < pad_y + new_h
        x_end = pad_x + new_w if inside else out_w
        for x in range(out_w if not inside else pad_x):
            out[0, y, x], out[1, y, x], out[2, y, x] = pr, pg, pb
        for x in range(x_end, out_w):
            out[0, y, x], out[1, y, x], out[2, y, x] = pr, pg, pb
        if not inside:
            continue
        row0, row1 = y0s[y] * step, y1s[y] * step
        wy1 = wys[y]
        wy0 = np.float32(1.0) - wy1
        for x in range(pad_x, x_end):
            wx1 = wxs[x]
            wx0 = np.float32(1.0) - wx1
            x0, x1 = x0s[x], x1s[x]
            r00, g00, b00 = _yuv_tap(src, row0, x0, oy, ou, ov)
            r01, g01, b01 = _yuv_tap(src, row0, x1, oy, ou, ov)
            r10, g10, b10 = _yuv_tap(src, row1, x0, oy, ou, ov)
            r11, g11, b11 = _yuv_tap(src, row1, x1, oy, ou, ov)
            w00, w01, w10, w11 = wy0 * wx0, wy0 * wx1, wy1 * wx0, wy1 * wx1
            out[0, y, x] = (w00 * r00 + w01 * r01 + w10 * r10 + w11 * r11) * a[0] + b[0]
            out[1, y, x] = (w00 * g00 + w01 * g01 + w10 * g10 + w11 * g11) * a[1] + b[1]
            out[2, y, x] = (w00 * b00 + w01 * b01 + w10 * b10 + w11 * b11) * a[2] + b[2]
