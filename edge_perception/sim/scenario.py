"""A drive down a straight road with hazards: vehicle at x = start_x + speed * t, frames on a
fixed clock, ground truth in the vehicle frame for every frame."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from edge_perception.geometry import CameraIntrinsics, CameraMount
from edge_perception.sim.hazards import Hazard
from edge_perception.sim.render import RenderedFrame, RoadRenderer

__all__ = ["DEFAULT_HAZARDS", "DriveFrame", "Scenario"]

DEFAULT_HAZARDS: tuple[Hazard, ...] = (
    Hazard("pothole", x=25.0, y=0.4, length_m=0.9, width_m=1.1, seed=1),
    Hazard("speed_bump", x=45.0, y=0.0, length_m=0.5, width_m=3.5, height_m=0.08),
    Hazard("pothole", x=62.0, y=-0.8, length_m=0.6, width_m=0.8, seed=2),
    Hazard("speed_bump", x=85.0, y=1.75, length_m=0.6, width_m=7.0, height_m=0.1,
           style="white_chevron"),
    Hazard("pothole", x=100.0, y=1.2, length_m=1.2, width_m=1.4, seed=3),
    Hazard("pothole", x=118.0, y=-0.3, length_m=0.7, width_m=0.9, seed=4),
    Hazard("speed_bump", x=140.0, y=0.0, length_m=0.5, width_m=3.5, height_m=0.08),
)


@dataclass(frozen=True, eq=False)
class DriveFrame:
    index: int
    t: float  # seconds since the start of the drive
    frame: RenderedFrame


@dataclass(frozen=True)
class Scenario:
    """Hazards along a straight road and a vehicle driving through them at `speed_mps`."""

    hazards: tuple[Hazard, ...] = DEFAULT_HAZARDS
    speed_mps: float = 10.0
    start_x: float = 0.0
    fps: float = 30.0

    def __post_init__(self) -> None:
        if self.speed_mps < 0 or self.fps <= 0:
            raise ValueError("speed_mps must be >= 0 and fps > 0")

    def vehicle_x(self, t: float) -> float:
        return self.start_x + self.speed_mps * t

    @property
    def duration_s(self) -> float:
        """Until the vehicle has passed the last hazard."""
        if self.speed_mps == 0 or not self.hazards:
            return 0.0
        last = max(h.x + h.length_m for h in self.hazards)
        return max(0.0, (last - self.start_x) / self.speed_mps)

    def renderer(self, intrinsics: CameraIntrinsics, mount: CameraMount, *, seed: int = 0,
                 noise: bool = True) -> RoadRenderer:
        return RoadRenderer(intrinsics, mount, seed=seed, noise=noise)

    def frame(self, renderer: RoadRenderer, t: float, index: int = 0) -> DriveFrame:
        return DriveFrame(index=index, t=t, frame=renderer.render(self.hazards, self.vehicle_x(t)))

    def frames(self, renderer: RoadRenderer, n: int | None = None) -> Iterator[DriveFrame]:
        """Frames at t = i / fps, i = 0 .. n - 1 (n defaults to the whole drive)."""
        count = int(self.duration_s * self.fps) + 1 if n is None else n
        for i in range(count):
            yield self.frame(renderer, i / self.fps, i)
