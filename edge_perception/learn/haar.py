"""A Haar-cascade detector in numpy, for OpenCV's cascade XML files (stump-based, upright).

OpenCV 5 dropped `cv2.CascadeClassifier` and its bundled cascades from the main modules; this
reads both the current (`<cascade>`) and the legacy (`type_id="opencv-haar-classifier"`) XML
formats and evaluates them the way OpenCV's detectMultiScale does: an image pyramid, a fixed
window, each window's feature sums divided by (window area x pixel std-dev), stage by stage
with early rejection, then `group_rectangles` (OpenCV's groupRectangles) of the hits.

Limits: stumps only and no tilted features (the cascades we ship have neither); slower than
OpenCV's C++ (a 640-pixel frame takes a fraction of a second), fine for the few frames that
are kept for upload, not for every frame.
"""

from __future__ import annotations

import gzip
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = ["HaarCascade", "group_rectangles"]


@dataclass(frozen=True)
class _Stage:
    threshold: float
    rects: np.ndarray  # (K, 3, 5) x, y, w, h, weight (unused slots have weight 0)
    thresholds: np.ndarray  # (K,)
    left: np.ndarray  # (K,)
    right: np.ndarray  # (K,)


def _floats(text: str | None) -> list[float]:
    return [float(v) for v in (text or "").split()]


def _pack(weak: list[tuple[list[list[float]], float, float, float]], stage_thr: float) -> _Stage:
    k = len(weak)
    rects = np.zeros((k, 3, 5), np.float64)
    for i, (rs, _, _, _) in enumerate(weak):
        if len(rs) > 3:
            raise ValueError("features with more than 3 rectangles are not supported")
        rects[i, :len(rs)] = rs
    return _Stage(stage_thr, rects, np.array([w[1] for w in weak]),
                  np.array([w[2] for w in weak]), np.array([w[3] for w in weak]))


def _parse(root: ET.Element) -> tuple[tuple[int, int], list[_Stage]]:
    casc = root.find("cascade")
    stages: list[_Stage] = []
    if casc is not None:  # current format
        if casc.findtext("featureType", "").strip() != "HAAR":
            raise ValueError("only HAAR cascades are supported")
        size = (int(casc.findtext("width", "0")), int(casc.findtext("height", "0")))
        feats = []
        for f in casc.find("features") or []:
            if f.findtext("tilted", "0").strip() != "0":
                raise ValueError("tilted Haar features are not supported")
            feats.append([_floats(r.text) for r in f.find("rects") or []])
        for st in casc.find("stages") or []:
            weak = []
            for w in st.find("weakClassifiers") or []:
                nodes = _floats(w.findtext("internalNodes"))
                leaves = _floats(w.findtext("leafValues"))
                if len(nodes) != 4 or len(leaves) != 2:
                    raise ValueError("only stump (depth-1) cascades are supported")
                weak.append((feats[int(nodes[2])], nodes[3], leaves[0], leaves[1]))
            stages.append(_pack(weak, float(st.findtext("stageThreshold", "0"))))
        return size, stages
    casc = root[0]  # legacy format
    w, h = (int(v) for v in (casc.findtext("size") or "").split())
    for st in casc.find("stages") or []:
        weak = []
        for tree in st.find("trees") or []:
            if len(tree) != 1:
                raise ValueError("only stump (depth-1) cascades are supported")
            node = tree[0]
            feat = node.find("feature")
            if feat is None or feat.findtext("tilted", "0").strip() != "0":
                raise ValueError("tilted Haar features are not supported")
            rs = [_floats(r.text) for r in feat.find("rects") or []]
            weak.append((rs, float(node.findtext("threshold", "0")),
                         float(node.findtext("left_val", "0")),
                         float(node.findtext("right_val", "0"))))
        stages.append(_pack(weak, float(st.findtext("stage_threshold", "0"))))
    return (w, h), stages


class HaarCascade:
    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        self.window, self.stages = _parse(ET.fromstring(data))
        if not self.stages or min(self.window) < 3:
            raise ValueError(f"{path}: no stages or bad window size")

    def _scan(self, gray: np.ndarray, step: int) -> np.ndarray:
        """(N, 2) top-left corners (x, y) of windows that pass every stage."""
        W, H = self.window
        h, w = gray.shape
        if h < H or w < W:
            return np.zeros((0, 2), np.int64)
        g = gray.astype(np.float64)
        s = np.zeros((h + 1, w + 1))
        s[1:, 1:] = g.cumsum(0).cumsum(1)
        q = np.zeros((h + 1, w + 1))
        q[1:, 1:] = (g * g).cumsum(0).cumsum(1)
        stride = w + 1
        ys, xs = np.mgrid[0:h - H + 1:step, 0:w - W + 1:step]
        x, y = xs.ravel(), ys.ravel()
        base = y * stride + x  # flat index of each window's top-left corner
        sf, qf = s.ravel(), q.ravel()

        def corners(rx: np.ndarray | int, ry: np.ndarray | int, rw: np.ndarray | int,
                    rh: np.ndarray | int) -> tuple[np.ndarray | int, ...]:
            tl = ry * stride + rx
            return tl, tl + rw, tl + rh * stride, tl + rh * stride + rw

        def box(t: np.ndarray, b: np.ndarray, c: tuple[np.ndarray | int, ...]) -> np.ndarray:
            a, bb, cc, d = (np.take(t, b + off) for off in c)
            return d - bb - cc + a

        area = (W - 2) * (H - 2)
        norm = corners(1, 1, W - 2, H - 2)
        vs = box(sf, base, norm)
        vq = box(qf, base, norm)
        nf = area * vq - vs * vs
        nf = np.where(nf > 0, np.sqrt(np.maximum(nf, 0)), 1.0)
        for st in self.stages:
            r = st.rects.astype(np.int64)
            value = np.zeros((base.size, len(st.thresholds)))
            for j in range(3):
                wgt = st.rects[:, j, 4]
                if not wgt.any():
                    continue
                c = corners(r[:, j, 0], r[:, j, 1], r[:, j, 2], r[:, j, 3])
                value += wgt * box(sf, base[:, None], c)
            leaf = np.where(value < st.thresholds * nf[:, None], st.left, st.right)
            keep = leaf.sum(1) >= st.threshold
            base, x, y, nf = base[keep], x[keep], y[keep], nf[keep]
            if x.size == 0:
                break
        return np.stack([x, y], 1)

    def detect(self, gray: np.ndarray, scale_factor: float = 1.1, min_neighbors: int = 3,
               min_size: int = 0, max_side: int = 640) -> list[tuple[int, int, int, int]]:
        """Boxes (x, y, w, h) in `gray`'s pixels, like cv2.CascadeClassifier.detectMultiScale."""
        if gray.ndim != 2 or gray.dtype != np.uint8:
            raise ValueError("expected a 2-D uint8 grayscale image")
        pre = min(1.0, max_side / max(gray.shape))  # work on at most max_side pixels
        img = cv2.resize(gray, None, fx=pre, fy=pre, interpolation=cv2.INTER_AREA) \
            if pre < 1.0 else gray
        W, H = self.window
        hits: list[tuple[int, int, int, int]] = []
        factor = 1.0
        while True:
            sw, sh = round(img.shape[1] / factor), round(img.shape[0] / factor)
            if sw < W or sh < H:
                break
            if W * factor / pre >= min_size:
                scaled = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_LINEAR) \
                    if factor != 1.0 else img
                for x, y in self._scan(scaled, 2 if factor <= 2 else 1):
                    hits.append((round(x * factor / pre), round(y * factor / pre),
                                 round(W * factor / pre), round(H * factor / pre)))
            factor *= scale_factor
        return group_rectangles(hits, min_neighbors)


def group_rectangles(rects: list[tuple[int, int, int, int]], group_threshold: int,
                     eps: float = 0.2) -> list[tuple[int, int, int, int]]:
    """OpenCV's groupRectangles: cluster similar boxes, keep clusters of > threshold."""
    n = len(rects)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            a, b = rects[i], rects[j]
            d = eps * (min(a[2], b[2]) + min(a[3], b[3])) * 0.5
            if (abs(a[0] - b[0]) <= d and abs(a[1] - b[1]) <= d
                    and abs(a[0] + a[2] - b[0] - b[2]) <= d
                    and abs(a[1] + a[3] - b[1] - b[3]) <= d):
                parent[find(i)] = find(j)
    groups: dict[int, list[tuple[int, int, int, int]]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(rects[i])
    avg = [(tuple(round(v) for v in np.mean(g, 0)), len(g)) for g in groups.values()
           if len(g) > group_threshold]
    out = []
    for i, (r1, n1) in enumerate(avg):
        inside = False
        for j, (r2, n2) in enumerate(avg):
            dx, dy = round(r2[2] * eps), round(r2[3] * eps)
            if (i != j and r1[0] >= r2[0] - dx and r1[1] >= r2[1] - dy
                    and r1[0] + r1[2] <= r2[0] + r2[2] + dx
                    and r1[1] + r1[3] <= r2[1] + r2[3] + dy and (n2 > max(3, n1) or n1 < 3)):
                inside = True
                break
        if not inside:
            out.append(r1)
    return out  # type: ignore[return-value]
