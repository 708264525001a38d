"""Fused numba.cuda kernels (private; use `Preprocessor(spec, device="cuda")`).

The same maths as `_cpu`: one thread per output pixel samples the source bilinearly (cv2
INTER_LINEAR geometry), converts to RGB (OpenCV's fixed-point BT.601 for YUV 4:2:2), normalises
and writes the three CHW planes of a float32 or float16 device array. Imported only when a CUDA
preprocessor is built; runs under NUMBA_ENABLE_CUDASIM=1 too.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

__all__: list[str] = ["BLOCK"]

BLOCK = (32, 8)
_CY, _CUB, _CUG, _CVG, _CVR, _SHIFT = 1220542, 2116026, -409993, -852492, 1673527, 20


@cuda.jit(device=True, inline=True)
def _sat(v):  # type: ignore[no-untyped-def]
    return np.float32(min(255, max(0, v)))


@cuda.jit(device=True, inline=True)
def _yuv_tap(src, row, x, oy, ou, ov):  # type: ignore[no-untyped-def]
    pair = row + (x >> 1) * 4
    yy = max(0, int(src[row + 2 * x + oy]) - 16) * _CY
    uu, vv = int(src[pair + ou]) - 128, int(src[pair + ov]) - 128
    half = 1 << (_SHIFT - 1)
    return (_sat((yy + half + _CVR * vv) >> _SHIFT),
            _sat((yy + half + _CVG * vv + _CUG * uu) >> _SHIFT),
            _sat((yy + half + _CUB * uu) >> _SHIFT))


@cuda.jit(device=True, inline=True)
def _coord(d, pad, inv_scale, n):  # type: ignore[no-untyped-def]
    s = (d - pad + 0.5) * inv_scale - 0.5
    s = min(max(s, 0.0), n - 1.0)
    i0 = int(math.floor(s))
    return i0, min(i0 + 1, n - 1), s - i0


@cuda.jit
def letterbox(src, step, src_h, src_w, bpp, yuv, c0, c1, c2, out,  # type: ignore[no-untyped-def]
              pad_x, pad_y, new_w, new_h, pad, a, b):
    """Any supported encoding → out (3, H, W). Packed (yuv == 0): R, G, B at byte offsets c0,
    c1, c2 of each pixel. YUV 4:2:2 (yuv == 1): Y at c0 of each pixel, U/V at c1/c2 of each
    pixel pair."""
    x, y = cuda.grid(2)
    out_h, out_w = out.shape[1], out.shape[2]
    if x >= out_w or y >= out_h:
        return
    if y < pad_y or y >= pad_y + new_h or x < pad_x or x >= pad_x + new_w:
        r = g = bl = np.float32(pad)
    else:
        y0, y1, fy = _coord(y, pad_y, src_h / new_h, src_h)
        x0, x1, fx = _coord(x, pad_x, src_w / new_w, src_w)
        row0, row1 = y0 * step, y1 * step
        wy1, wx1 = np.float32(fy), np.float32(fx)
        wy0, wx0 = np.float32(1.0) - wy1, np.float32(1.0) - wx1
        w00, w01, w10, w11 = wy0 * wx0, wy0 * wx1, wy1 * wx0, wy1 * wx1
        if yuv:
            r00, g00, b00 = _yuv_tap(src, row0, x0, c0, c1, c2)
            r01, g01, b01 = _yuv_tap(src, row0, x1, c0, c1, c2)
            r10, g10, b10 = _yuv_tap(src, row1, x0, c0, c1, c2)
            r11, g11, b11 = _yuv_tap(src, row1, x1, c0, c1, c2)
        else:
            p00, p01 = row0 + x0 * bpp, row0 + x1 * bpp
            p10, p11 = row1 + x0 * bpp, row1 + x1 * bpp
            r00, r01, r10, r11 = (np.float32(src[p00 + c0]), np.float32(src[p01 + c0]),
                                  np.float32(src[p10 + c0]), np.float32(src[p11 + c0]))
            g00, g01, g10, g11 = (np.float32(src[p00 + c1]), np.float32(src[p01 + c1]),
                                  np.float32(src[p10 + c1]), np.float32(src[p11 + c1]))
            b00, b01, b10, b11 = (np.float32(src[p00 + c2]), np.float32(src[p01 + c2]),
                                  np.float32(src[p10 + c2]), np.float32(src[p11 + c2]))
        r = w00 * r00 + w01 * r01 + w10 * r10 + w11 * r11
        g = w00 * g00 + w01 * g01 + w10 * g10 + w11 * g11
        bl = w00 * b00 + w01 * b01 + w10 * b10 + w11 * b11
    out[0, y, x] = r * a[0] + b[0]
    out[1, y, x] = g * a[1] + b[1]
    out[2, y, x] = bl * a[2] + b[2]
