"""YOLO-format road-hazard data: reading a data.yaml, caching decoded images, road-scene augmentation.

Training canvases have the model's 16:9 input shape.  Source photos are square, so a canvas holds
either one photo or two side by side (each in its own half), at a random scale and offset; then
colour jitter, occasional blur and a horizontal flip (never vertical: the road is at the bottom).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

__all__ = ["DataSpec", "read_data_yaml", "read_labels", "ImageCache", "Augmenter",
           "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass(frozen=True)
class DataSpec:
    root: Path
    splits: dict[str, Path]
    names: dict[int, str]

    def images(self, split: str) -> list[Path]:
        if split not in self.splits:
            raise KeyError(f"split {split!r} not in data.yaml (has {sorted(self.splits)})")
        folder = self.splits[split]
        return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def read_data_yaml(path: str | os.PathLike[str]) -> DataSpec:
    """Parse a YOLO data.yaml; split paths are relative to `path:` which is relative to the yaml."""
    path = Path(path)
    with open(path) as f:
        raw = yaml.safe_load(f)
    if not isinstance(raw, dict) or "names" not in raw:
        raise ValueError(f"{path}: not a YOLO data.yaml (needs 'names' and split paths)")
    root = (path.parent / str(raw.get("path", "."))).resolve()
    names = raw["names"]
    if isinstance(names, list):
        names = dict(enumerate(names))
    splits = {}
    for key in ("train", "val", "test"):
        if raw.get(key):
            p = Path(raw[key])
            splits[key] = p if p.is_absolute() else root / p
    return DataSpec(root=root, splits=splits, names={int(k): str(v) for k, v in names.items()})


def label_path(image: Path) -> Path:
    """YOLO convention: .../images/<split>/x.jpg → .../labels/<split>/x.txt (or beside it)."""
    parts = list(image.parts)
    if "images" in parts:
        i = len(parts) - 1 - parts[::-1].index("images")
        parts[i] = "labels"
        return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


def read_labels(path: Path, width: int, height: int) -> np.ndarray:
    """Rows of (class, x1, y1, x2, y2) in pixels; empty (0,5) if the file is missing or empty."""
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            vals = line.split()
            if len(vals) != 5:
                continue
            c, cx, cy, w, h = (float(v) for v in vals)
            rows.append((c, (cx - w / 2) * width, (cy - h / 2) * height,
                         (cx + w / 2) * width, (cy + h / 2) * height))
    out = np.array(rows, dtype=np.float32).reshape(-1, 5)
    out[:, 1:] = np.clip(out[:, 1:], 0, [width, height, width, height])
    return out


class ImageCache:
    """Every image of a split decoded once, resized to `side`x`side` RGB, kept in a memmap file.

    Boxes are scaled to the cached size.  The cache lives outside the dataset folder (which may be
    read-only) and is keyed by the file list and size.
    """

    def __init__(self, images: list[Path], side: int, cache_dir: Path) -> None:
        key = hashlib.sha1(("|".join(map(str, images)) + f"@{side}").encode()).hexdigest()[:16]
        cache_dir.mkdir(parents=True, exist_ok=True)
        arr_path = cache_dir / f"images-{key}.u8"
        box_path = cache_dir / f"boxes-{key}.npz"
        self.side = side
        n = len(images)
        if not (arr_path.exists() and box_path.exists()):
            from tqdm import tqdm

            tmp = arr_path.with_suffix(".tmp")
            arr = np.lib.format.open_memmap(tmp, "w+", np.uint8, (n, side, side, 3))
            boxes = []
            for i, p in enumerate(tqdm(images, desc=f"caching {n} images", unit="img")):
                img = cv2.imread(str(p), cv2.IMREAD_COLOR)
                if img is None:
                    raise ValueError(f"cannot decode {p}")
                h, w = img.shape[:2]
                arr[i] = cv2.cvtColor(cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA),
                                      cv2.COLOR_BGR2RGB)
                b = read_labels(label_path(p), w, h)
                b[:, 1:] *= [side / w, side / h, side / w, side / h]
                boxes.append(b)
            arr.flush()
            del arr
            np.savez(box_path, *boxes)
            os.replace(tmp, arr_path)
        self.images = np.load(arr_path, mmap_mode="r")
        with np.load(box_path) as z:
            self.boxes = [z[f"arr_{i}"] for i in range(n)]

    def __len__(self) -> int:
        return len(self.boxes)


class Augmenter:
    """Builds one training canvas (H, W, 3 RGB uint8) and its boxes (M, 5) from an ImageCache."""

    def __init__(self, cache: ImageCache, width: int, height: int, pad: int = 114,
                 pair_prob: float = 0.5, scale: tuple[float, float] = (0.6, 1.5),
                 min_visible: float = 0.35) -> None:
        self.cache, self.w, self.h, self.pad = cache, width, height, pad
        self.pair_prob, self.scale, self.min_visible = pair_prob, scale, min_visible

    def __call__(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        canvas = np.full((self.h, self.w, 3), self.pad, np.uint8)
        if rng.random() < self.pair_prob:
            other = int(rng.integers(len(self.cache)))
            half = self.w // 2
            regions = [(index, 0, half), (other, half, self.w - half)]
        else:
            regions = [(index, 0, self.w)]
        out = [self._paste(canvas, i, x0, rw, rng) for i, x0, rw in regions]
        boxes = np.concatenate(out) if out else np.zeros((0, 5), np.float32)
        canvas = self._colour(canvas, rng)
        if rng.random() < 0.5:
            canvas = canvas[:, ::-1].copy()
            boxes[:, [1, 3]] = self.w - boxes[:, [3, 1]]
        return canvas, boxes

    def _paste(self, canvas: np.ndarray, i: int, x0: int, rw: int,
               rng: np.random.Generator) -> np.ndarray:
        src = self.cache.images[i]
        side = max(16, int(round(self.h * rng.uniform(*self.scale))))
        img = cv2.resize(np.asarray(src), (side, side), interpolation=cv2.INTER_LINEAR)
        # Offset of the image within the region; negative offsets crop it.
        ox = int(rng.integers(min(0, rw - side), max(0, rw - side) + 1))
        oy = int(rng.integers(min(0, self.h - side), max(0, self.h - side) + 1))
        sx0, sy0 = max(0, -ox), max(0, -oy)
        dx0, dy0 = x0 + max(0, ox), max(0, oy)
        cw, ch = min(side - sx0, rw - max(0, ox)), min(side - sy0, self.h - dy0)
        canvas[dy0:dy0 + ch, dx0:dx0 + cw] = img[sy0:sy0 + ch, sx0:sx0 + cw]
        b = self.cache.boxes[i].copy()
        k = side / self.cache.side
        b[:, 1:] *= k
        b[:, [1, 3]] += x0 + ox
        b[:, [2, 4]] += oy
        area = (b[:, 3] - b[:, 1]) * (b[:, 4] - b[:, 2])
        b[:, [1, 3]] = b[:, [1, 3]].clip(dx0, dx0 + cw)
        b[:, [2, 4]] = b[:, [2, 4]].clip(dy0, dy0 + ch)
        vis = (b[:, 3] - b[:, 1]) * (b[:, 4] - b[:, 2])
        keep = (vis >= self.min_visible * np.maximum(area, 1e-6)) & (b[:, 3] - b[:, 1] >= 2) \
            & (b[:, 4] - b[:, 2] >= 2)
        return b[keep]

    @staticmethod
    def _colour(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        gains = rng.uniform(-1, 1, 3) * (0.015, 0.6, 0.4) + 1
        hue, sat, val = cv2.split(cv2.cvtColor(img, cv2.COLOR_RGB2HSV))
        x = np.arange(256, dtype=np.float32)
        lut_h = ((x * gains[0]) % 180).astype(np.uint8)
        lut_s = np.clip(x * gains[1], 0, 255).astype(np.uint8)
        lut_v = np.clip(x * gains[2], 0, 255).astype(np.uint8)
        hsv = cv2.merge((cv2.LUT(hue, lut_h), cv2.LUT(sat, lut_s), cv2.LUT(val, lut_v)))
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        r = rng.random()
        if r < 0.1:
            k = int(rng.choice([3, 5]))
            img = cv2.GaussianBlur(img, (k, k), 0)
        elif r < 0.15:  # horizontal motion blur, as from a moving car
            k = int(rng.choice([5, 7, 9]))
            kern = np.zeros((k, k), np.float32)
            kern[k // 2] = 1.0 / k
            img = cv2.filter2D(img, -1, kern)
        return img
