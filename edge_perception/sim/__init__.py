"""Synthetic road frames with ground truth: renderer, hazards and drive scenario."""

from edge_perception.sim.hazards import CLASS_IDS, Hazard, HazardTruth, hazard_truth
from edge_perception.sim.render import RenderedFrame, RoadLayout, RoadRenderer
from edge_perception.sim.scenario import DEFAULT_HAZARDS, DriveFrame, Scenario

__all__ = [
    "CLASS_IDS",
    "DEFAULT_HAZARDS",
    "DriveFrame",
    "Hazard",
    "HazardTruth",
    "RenderedFrame",
    "RoadLayout",
    "RoadRenderer",
    "Scenario",
    "hazard_truth",
]
