"""RViz marker geometry for hazards as plain data (one flat disc per valid hazard, sized by
its width, plus a text label with class and range)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edge_perception.detect.types import Detection
from edge_perception.geometry import GroundEstimates

__all__ = ["MarkerData", "hazard_markers"]

_RGBA = ((1.0, 0.1, 0.1, 0.8), (1.0, 0.8, 0.0, 0.8), (0.0, 0.5, 1.0, 0.8))


@dataclass(frozen=True)
class MarkerData:
    """One marker: `kind` is "cylinder" or "text"; position and scale in metres."""

    id: int
    kind: str
    position: tuple[float, float, float]
    scale: tuple[float, float, float]
    rgba: tuple[float, float, float, float]
    text: str = ""


def hazard_markers(detections: Sequence[Detection], ground: GroundEstimates,
                   min_width_m: float = 0.2) -> list[MarkerData]:
    out: list[MarkerData] = []
    for i, d in enumerate(detections):
        if not ground.valid[i]:
            continue
        x, y, z = (float(v) for v in ground.xyz[i])
        w = max(min_width_m, float(ground.width_m[i]))
        rgba = _RGBA[d.class_id % len(_RGBA)]
        out.append(MarkerData(2 * i, "cylinder", (x, y, z + 0.01), (w, w, 0.02), rgba))
        out.append(MarkerData(2 * i + 1, "text", (x, y, z + 0.5), (0.0, 0.0, 0.4),
                              (1.0, 1.0, 1.0, 1.0),
                              f"{d.class_name} {d.score:.2f} {ground.range_m[i]:.1f} m"))
    return out
