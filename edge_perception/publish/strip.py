"""A PNG contact strip of annotated frames: the ones with the most hazards, in time order."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

__all__ = ["pick_frames", "tile"]


def pick_frames(counts: Sequence[int], k: int) -> list[int]:
    """Indices of up to `k` frames with the most hazards (ties: earlier first), in order."""
    order = sorted(range(len(counts)), key=lambda i: (-counts[i], i))
    return sorted(i for i in order[:k] if counts[i] > 0) or sorted(order[:k])


def tile(frames: Sequence[np.ndarray], columns: int = 3, width: int = 480) -> np.ndarray:
    """Frames (bgr8, any sizes) resized to `width` and laid out in a grid, black padding."""
    if not frames:
        raise ValueError("no frames to tile")
    cells = [cv2.resize(f, (width, max(1, round(f.shape[0] * width / f.shape[1]))),
                        interpolation=cv2.INTER_AREA) for f in frames]
    cell_h = max(c.shape[0] for c in cells)
    columns = min(columns, len(cells))
    rows = -(-len(cells) // columns)
    out = np.zeros((rows * cell_h, columns * width, 3), np.uint8)
    for i, c in enumerate(cells):
        r, q = divmod(i, columns)
        out[r * cell_h:r * cell_h + c.shape[0], q * width:(q + 1) * width] = c
    return out
