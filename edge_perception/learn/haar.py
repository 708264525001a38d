"""A Haar-cascade detector in numpy, for OpenCV's cascade XML files (stump-based, upright).

OpenCV 5 dropped `cv2.CascadeClassifier` and its bundled cascades from the main modules; this
reads both the current (`<cascade>`) and the legacy (`type_id="opencv-haar-classifier"`) XML
formats and evaluates them the way OpenCV's detectMultiScale does: an image pyramid, a fixed
window, each window's feature sums divided by (window area x pixel std-dev), stage by stage
with early rejection, then `group_rectangles` (OpenCV's groupRectangles) of the hits.

The window scan is compiled with Numba and rejects each window at its first failing stage, as
OpenCV's C++ does (a vectorised NumPy version that ran every stage over all surviving windows
took 3-4x longer).

Limits: stumps only and no tilted features (the cascades we ship have neither); still slower
than OpenCV's C++ (both cascades on a 1280x720 frame, scanned at 640 pixels: a few hundred
ms), fine for the few frames that are kept for upload, not for every frame.
"""

from __future__ import annotations

import gzip
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import cv2
import numba
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


@numba.njit(cache=True, nogil=True)
def _scan_windows(s: np.ndarray, q: np.ndarray, W: int, H: int, step: int,
                  first: np.ndarray, stage_thr: np.ndarray, rects: np.ndarray,
                  thr: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Every window of the integral images `s` (sum) and `q` (sum of squares), stage by
    stage with early rejection, as OpenCV evaluates a cascade: a weak classifier compares its
    rectangle sum with threshold x window area x pixel std-dev (over the window less a 1-pixel
    border) and adds its left or right leaf; a stage passes when the leaves reach its
    threshold. Returns the (x, y) corners of windows that pass every stage."""
    h, w = s.shape[0] - 1, s.shape[1] - 1
    stride = w + 1
    sf, qf = s.ravel(), q.ravel()
    nrect = rects.shape[0]
    off = np.empty((nrect, 3, 4), np.int64)  # each rectangle's corners, relative to a window
    for f in range(nrect):
        for j in range(3):
            tl = int(rects[f, j, 1]) * stride + int(rects[f, j, 0])
            off[f, j, 0] = tl
            off[f, j, 1] = tl + int(rects[f, j, 2])
            off[f, j, 2] = tl + int(rects[f, j, 3]) * stride
            off[f, j, 3] = tl + int(rects[f, j, 3]) * stride + int(rects[f, j, 2])
    area = (W - 2) * (H - 2)
    n0, n1, n2, n3 = stride + 1, stride + W - 1, (H - 1) * stride + 1, (H - 1) * stride + W - 1
    out = np.empty(((h - H) // step + 1) * ((w - W) // step + 1) * 2, np.int64)
    n = 0
    for y in range(0, h - H + 1, step):
        for x in range(0, w - W + 1, step):
            base = y * stride + x
            vs = sf[base + n3] - sf[base + n1] - sf[base + n2] + sf[base + n0]
            vq = qf[base + n3] - qf[base + n1] - qf[base + n2] + qf[base + n0]
            nf = area * vq - vs * vs
            nf = np.sqrt(nf) if nf > 0 else 1.0
            passed = True
            for k in range(stage_thr.size):
                total = 0.0
                for f in range(first[k], first[k + 1]):
                    value = 0.0
                    for j in range(3):
                        wgt = rects[f, j, 4]
                        if wgt != 0.0:
                            value += wgt * (sf[base + off[f, j, 3]] - sf[base + off[f, j, 1]]
                                            - sf[base + off[f, j, 2]] + sf[base + off[f, j, 0]])
                    total += left[f] if value < thr[f] * nf else right[f]
                if total < stage_thr[k]:
                    passed = False
                    break
            if passed:
                out[2 * n] = x
                out[2 * n + 1] = y
                n += 1
    return out[:2 * n].reshape(n, 2)


class HaarCascade:
    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        self.window, self.stages = _parse(ET.fromstring(data))
        if not self.stages or min(self.window) < 3:
            raise ValueError(f"{path}: no stages or bad window size")
        counts = np.array([len(st.thresholds) for st in self.stages], np.int64)
        self._flat = (np.concatenate([[0], np.cumsum(counts)]),
                      np.array([st.threshold for st in self.stages]),
                      np.ascontiguousarray(np.concatenate([st.rects for st in self.stages])),
                      np.concatenate([st.thresholds for st in self.stages]),
                      np.concatenate([st.left for st in self.stages]),
                      np.concatenate([st.right for st in self.stages]))

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
        return _scan_windows(s, q, W, H, step, *self._flat)

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
