"""Which frames are worth uploading: hard examples, lost hazards, a random sample, on demand.

`Selector.update(stamp, detections)` is called once per frame with the model's detections and
returns a `Decision` (reason, priority) or None:

* on demand: `request_capture()` keeps the next frame, whatever it holds (priority 3);
* lost track: a hazard tracked for `min_hits` frames (greedy IoU matching of same-class boxes)
  vanishes while its last box was not at the bottom/side edges of the image, where hazards
  leave the view as the car drives over them (priority 2);
* hard example: a detection's score lies inside the uncertainty band (priority 1);
* random: a small class-balanced sample: the frame counts as its rarest class (or "empty")
  and is kept with probability `random_rate * frames / (classes * frames of that class)`, so
  every class expects the same number of kept frames; seeded (priority 0).

Except for on-demand captures, kept frames are at least `min_interval_s` apart.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from edge_perception.learn.sample import Reason, SampleDetection

__all__ = ["SelectionConfig", "Decision", "Selector", "iou", "PRIORITY"]

PRIORITY = {Reason.ON_DEMAND: 3, Reason.LOST_TRACK: 2, Reason.HARD_EXAMPLE: 1, Reason.RANDOM: 0}


@dataclass(frozen=True)
class SelectionConfig:
    band: tuple[float, float] = (0.3, 0.6)
    iou_match: float = 0.3
    min_hits: int = 3
    edge_margin: float = 0.05  # fraction of the image; a box within it may just leave the view
    random_rate: float = 0.01
    min_interval_s: float = 1.0
    seed: int = 0


@dataclass(frozen=True)
class Decision:
    reason: Reason
    priority: int


@dataclass
class _Track:
    det: SampleDetection
    hits: int = 1


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Selector:
    config: SelectionConfig = field(default_factory=SelectionConfig)
    image_size: tuple[int, int] | None = None  # (width, height) for the edge rule

    def __post_init__(self) -> None:
        self._rng = random.Random(self.config.seed)
        self._tracks: list[_Track] = []
        self._capture = False
        self._last_kept: float | None = None
        self.kept_by_class: dict[int, int] = {}
        self.seen_by_class: dict[int, int] = {}
        self.counts = {r.value: 0 for r in Reason}

    def request_capture(self) -> None:
        self._capture = True

    def _near_edge(self, box: tuple[float, float, float, float]) -> bool:
        if self.image_size is None:
            return False
        w, h = self.image_size
        m = self.config.edge_margin
        return box[3] >= h * (1 - m) or box[0] <= w * m or box[2] >= w * (1 - m)

    def _track(self, dets: Sequence[SampleDetection]) -> bool:
        """Advance the tracks; True when a confirmed track was lost in this frame."""
        pairs = sorted(((iou(t.det.box, d.box), ti, di) for ti, t in enumerate(self._tracks)
                        for di, d in enumerate(dets) if t.det.class_id == d.class_id),
                       reverse=True)
        used_t: set[int] = set()
        used_d: set[int] = set()
        new: list[_Track] = []
        for v, ti, di in pairs:
            if v < self.config.iou_match:
                break
            if ti in used_t or di in used_d:
                continue
            used_t.add(ti)
            used_d.add(di)
            new.append(_Track(dets[di], self._tracks[ti].hits + 1))
        lost = any(t.hits >= self.config.min_hits and not self._near_edge(t.det.box)
                   for ti, t in enumerate(self._tracks) if ti not in used_t)
        new += [_Track(d) for di, d in enumerate(dets) if di not in used_d]
        self._tracks = new
        return lost

    def _random(self, dets: Sequence[SampleDetection]) -> bool:
        classes = {d.class_id for d in dets} or {-1}
        seen = self.seen_by_class
        cls = min(classes, key=lambda c: seen.get(c, 0))  # the frame counts as its rarest class
        seen[cls] = seen.get(cls, 0) + 1
        # inverse-frequency: every class expects the same number of kept frames
        p = min(1.0, self.config.random_rate * sum(seen.values()) / (len(seen) * seen[cls]))
        if self._rng.random() < p:
            self.kept_by_class[cls] = self.kept_by_class.get(cls, 0) + 1
            return True
        return False

    def update(self, stamp: float, detections: Sequence[SampleDetection]) -> Decision | None:
        lost = self._track(detections)
        lo, hi = self.config.band
        reason: Reason | None = None
        if self._capture:
            self._capture = False
            reason = Reason.ON_DEMAND
        elif self._last_kept is not None and stamp - self._last_kept < self.config.min_interval_s:
            return None
        elif lost:
            reason = Reason.LOST_TRACK
        elif any(lo <= d.score <= hi for d in detections):
            reason = Reason.HARD_EXAMPLE
        elif self._random(detections):
            reason = Reason.RANDOM
        if reason is None:
            return None
        self._last_kept = stamp
        self.counts[reason.value] += 1
        return Decision(reason, PRIORITY[reason])
