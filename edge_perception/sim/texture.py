"""Procedural ground textures (asphalt, verge) as tiling BGR images with blurred levels."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

__all__ = ["TEXEL_M", "TILE", "N_LEVELS", "asphalt_levels", "verge_levels"]

TILE = 1024  # texels per side (power of two: wrap with a bit mask)
TEXEL_M = 0.01  # metres per texel → a 10.24 m tile
N_LEVELS = 4  # blurred copies for pixels that cover more ground (poor man's mip-mapping)
_LEVEL_SIGMA = (0.0, 2.0, 6.0, 18.0)


def _gain(sigma: float) -> np.ndarray:
    f = np.fft.fftfreq(TILE)
    g = f[:, None] ** 2 + np.fft.rfftfreq(TILE)[None, :] ** 2
    return np.exp(-2.0 * (math.pi * sigma) ** 2 * g)


def _wrap_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a tiling (TILE, TILE) image that stays tiling (OpenCV filters cannot
    wrap): multiply the spectrum by the Gaussian's transfer function."""
    return np.fft.irfft2(np.fft.rfft2(img) * _gain(sigma), s=(TILE, TILE)).astype(np.float32)


def _noise(rng: np.random.Generator, octaves: tuple[tuple[float, float], ...]) -> np.ndarray:
    """Sum of wrap-around blurred white noise: ((sigma in texels, weight), ...)."""
    out = np.zeros((TILE, TILE), np.float32)
    for sigma, weight in octaves:
        n = rng.standard_normal((TILE, TILE), dtype=np.float32)
        if sigma > 0:
            n = _wrap_blur(n, sigma)
        out += weight * n / max(float(n.std()), 1e-6)
    return out


def _levels(lum: np.ndarray, tint: tuple[float, float, float]) -> np.ndarray:
    """(N_LEVELS, TILE, TILE, 3) uint8: blurred copies of a tiling luminance, tinted BGR."""
    spec = np.fft.rfft2(lum)
    levels = []
    for s in _LEVEL_SIGMA:
        img = lum if s == 0 else np.fft.irfft2(spec * _gain(s), s=(TILE, TILE))
        bgr = img[..., None] * np.asarray(tint, np.float32)
        levels.append(np.clip(bgr, 0, 255).astype(np.uint8))
    return np.stack(levels)


@lru_cache(maxsize=4)
def asphalt_levels(seed: int = 0) -> np.ndarray:
    """Grey asphalt: fine aggregate speckle, medium wear patches, a few dark tar seams."""
    rng = np.random.default_rng(seed)
    lum = 92.0 + 14.0 * _noise(rng, ((0.0, 0.6), (1.2, 0.6), (25.0, 0.35), (120.0, 0.3)))
    stones = rng.random((TILE, TILE)) < 0.01
    lum[stones] += rng.uniform(20, 60, int(stones.sum())).astype(np.float32)
    seam = np.abs(_noise(rng, ((60.0, 1.0),))) < 0.03
    lum[seam] *= 0.7
    return _levels(lum, (1.03, 1.0, 0.97))


@lru_cache(maxsize=4)
def verge_levels(seed: int = 1) -> np.ndarray:
    """Grass and gravel beside the road."""
    rng = np.random.default_rng(seed)
    g = 95.0 + 25.0 * _noise(rng, ((0.0, 0.5), (2.0, 0.6), (40.0, 0.5)))
    return _levels(g, (0.45, 1.0, 0.75))
