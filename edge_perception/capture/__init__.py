"""Camera capture without ROS: frame sources, reconnect/backoff, calibration files."""

from .backoff import Backoff
from .calibration import CalibrationError, CameraCalibration, load_calibration, parse_calibration
from .sources import (
                      SOURCE_TYPES,
                      FrameSource,
                      ImageFolderSource,
                      OpenCVSource,
                      SourceError,
                      SourceSpec,
                      open_source,
                      parse_source,
)
from .worker import CaptureStats, CaptureWorker

__all__ = [
    "Backoff", "CalibrationError", "CameraCalibration", "CaptureStats", "CaptureWorker",
    "FrameSource", "ImageFolderSource", "OpenCVSource", "SOURCE_TYPES", "SourceError",
    "SourceSpec", "load_calibration", "open_source", "parse_calibration", "parse_source",
]
