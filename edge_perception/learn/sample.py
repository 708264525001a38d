"""One kept frame: a JPEG (already privacy-blurred) plus what the car knew about it."""

from __future__ import annotations

import enum
import json
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Reason", "SampleDetection", "Sample", "FORMAT_VERSION"]

FORMAT_VERSION = 1


class Reason(str, enum.Enum):
    """Why a frame was kept."""

    HARD_EXAMPLE = "hard_example"  # a detection with a score inside the uncertainty band
    LOST_TRACK = "lost_track"  # a hazard seen in earlier frames that the model lost
    RANDOM = "random"  # the small class-balanced random sample
    ON_DEMAND = "on_demand"  # somebody asked for this frame


@dataclass(frozen=True)
class SampleDetection:
    """The model's output for one object, box in original-image pixels."""

    class_id: int
    class_name: str
    score: float
    box: tuple[float, float, float, float]  # x_min, y_min, x_max, y_max

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SampleDetection:
        x0, y0, x1, y1 = (float(v) for v in d["box"])
        return cls(int(d["class_id"]), str(d["class_name"]), float(d["score"]), (x0, y0, x1, y1))


@dataclass(frozen=True)
class Sample:
    """A frame worth learning from. `jpeg` must already be blurred (see privacy.py)."""

    jpeg: bytes
    detections: tuple[SampleDetection, ...]
    model_version: str
    camera_info: dict[str, Any]  # CameraInfo as plain data (width, height, k, d, frame_id ...)
    stamp: float  # seconds, the source image's stamp
    reason: Reason
    priority: int = 0  # higher survives eviction longer
    position: tuple[float, float, float] | None = None  # e.g. latitude, longitude, altitude
    uid: str = field(default_factory=lambda: uuid.uuid4().hex)

    def meta(self) -> dict[str, Any]:
        """Everything but the JPEG, as JSON-ready data."""
        return {
            "uid": self.uid,
            "detections": [asdict(d) for d in self.detections],
            "model_version": self.model_version,
            "camera_info": self.camera_info,
            "stamp": self.stamp,
            "reason": self.reason.value,
            "priority": self.priority,
            "position": list(self.position) if self.position is not None else None,
        }

    def meta_json(self) -> bytes:
        return json.dumps(self.meta(), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_meta(cls, meta: dict[str, Any], jpeg: bytes) -> Sample:
        pos = meta.get("position")
        return cls(
            jpeg=jpeg,
            detections=tuple(SampleDetection.from_dict(d) for d in meta.get("detections", [])),
            model_version=str(meta.get("model_version", "")),
            camera_info=dict(meta.get("camera_info") or {}),
            stamp=float(meta["stamp"]),
            reason=Reason(meta["reason"]),
            priority=int(meta.get("priority", 0)),
            position=tuple(float(v) for v in pos) if pos is not None else None,  # type: ignore
            uid=str(meta["uid"]),
        )
