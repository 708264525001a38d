"""Ground-plane geometry: from image boxes to positions on the road (pure numpy + OpenCV)."""

from edge_perception.geometry.camera import (
    DISTORTION_MODELS,
    OPTICAL_TO_BODY,
    CameraIntrinsics,
    CameraMount,
    rotation_from_quaternion,
    rotation_rpy,
)
from edge_perception.geometry.ground import GroundEstimates, GroundProjector

__all__ = [
    "DISTORTION_MODELS",
    "OPTICAL_TO_BODY",
    "CameraIntrinsics",
    "CameraMount",
    "GroundEstimates",
    "GroundProjector",
    "rotation_from_quaternion",
    "rotation_rpy",
]
