"""Camera calibration in the camera_info_manager YAML format, as plain numpy arrays.

The file format is the one written by ROS `camera_calibration` / read by camera_info_manager:
`image_width`, `image_height`, `camera_name`, `camera_matrix`, `distortion_model`,
`distortion_coefficients`, `rectification_matrix`, `projection_matrix`, each matrix a mapping
`{rows, cols, data}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

__all__ = ["CalibrationError", "CameraCalibration", "load_calibration", "parse_calibration"]


class CalibrationError(ValueError):
    """A calibration file is missing, unreadable or malformed (the message says which field)."""


@dataclass(frozen=True, eq=False)
class CameraCalibration:
    """Intrinsics of one camera at one image size (arrays are read-only float64)."""

    width: int
    height: int
    camera_name: str
    distortion_model: str
    K: np.ndarray  # 3x3
    D: np.ndarray  # (n,)
    R: np.ndarray  # 3x3
    P: np.ndarray  # 3x4

    @classmethod
    def uncalibrated(cls, width: int, height: int, camera_name: str = "") -> CameraCalibration:
        """All-zero K and P (what camera_info_manager publishes for an uncalibrated camera)."""
        return cls(width, height, camera_name, "plumb_bob", _ro(np.zeros((3, 3))),
                   _ro(np.zeros(5)), _ro(np.eye(3)), _ro(np.zeros((3, 4))))

    @property
    def is_calibrated(self) -> bool:
        return bool(self.K[2, 2] != 0.0)

    def scaled_to(self, width: int, height: int) -> CameraCalibration:
        """The same camera seen through a pure resize to `width` x `height`.

        fx, cx (and the P equivalents) scale with width, fy, cy with height; D and R do not
        change. Valid only if the frames are a resize of the calibrated image, not a crop.
        """
        if (width, height) == (self.width, self.height):
            return self
        if width <= 0 or height <= 0 or self.width <= 0 or self.height <= 0:
            raise CalibrationError(f"cannot scale calibration to {width}x{height}")
        s = np.diag([width / self.width, height / self.height, 1.0])
        return replace(self, width=width, height=height,
                       K=_ro(s @ self.K), P=_ro(s @ self.P))


def _ro(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64)
    a.setflags(write=False)
    return a


def _matrix(doc: Mapping[str, Any], key: str, shape: tuple[int, ...] | None) -> np.ndarray:
    node = doc.get(key)
    if not isinstance(node, Mapping):
        raise CalibrationError(f"'{key}' must be a mapping with rows, cols and data")
    try:
        rows, cols = int(node["rows"]), int(node["cols"])
        data = np.asarray(node["data"], dtype=np.float64)
    except KeyError as e:
        raise CalibrationError(f"'{key}' lacks '{e.args[0]}'") from None
    except (TypeError, ValueError) as e:
        raise CalibrationError(f"'{key}' has non-numeric rows/cols/data ({e})") from None
    if data.ndim != 1 or data.size != rows * cols:
        raise CalibrationError(
            f"'{key}' says {rows}x{cols} but has {data.size} values")
    if not np.all(np.isfinite(data)):
        raise CalibrationError(f"'{key}' contains NaN or infinity")
    if shape is not None and (rows, cols) != shape:
        raise CalibrationError(f"'{key}' must be {shape[0]}x{shape[1]}, got {rows}x{cols}")
    return _ro(data if shape is None else data.reshape(rows, cols))


def parse_calibration(doc: Any, *, source: str = "calibration") -> CameraCalibration:
    """Validate a parsed camera_info_manager document; raise `CalibrationError` if wrong."""
    if not isinstance(doc, Mapping):
        raise CalibrationError(f"{source}: expected a YAML mapping, got {type(doc).__name__}")
    try:
        width, height = int(doc["image_width"]), int(doc["image_height"])
    except KeyError as e:
        raise CalibrationError(f"{source}: missing '{e.args[0]}'") from None
    except (TypeError, ValueError):
        raise CalibrationError(f"{source}: image_width/image_height must be integers") from None
    if width <= 0 or height <= 0:
        raise CalibrationError(f"{source}: image size must be positive, got {width}x{height}")
    try:
        K = _matrix(doc, "camera_matrix", (3, 3))
        D = _matrix(doc, "distortion_coefficients", None)
        R = _matrix(doc, "rectification_matrix", (3, 3))
        P = _matrix(doc, "projection_matrix", (3, 4))
    except CalibrationError as e:
        raise CalibrationError(f"{source}: {e}") from None
    model = str(doc.get("distortion_model", "plumb_bob"))
    if K[0, 0] <= 0 or K[1, 1] <= 0 or K[2, 2] != 1.0:
        raise CalibrationError(f"{source}: camera_matrix needs fx, fy > 0 and K[2][2] = 1")
    return CameraCalibration(width, height, str(doc.get("camera_name", "")), model, K,
                             _ro(D.reshape(-1)), R, P)


def load_calibration(path: str | Path) -> CameraCalibration:
    """Read a camera_info_manager YAML file (`file://` prefix allowed)."""
    text_path = str(path)
    if text_path.startswith("file://"):
        text_path = text_path[len("file://"):]
    p = Path(text_path)
    try:
        doc = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise CalibrationError(f"calibration file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CalibrationError(f"cannot read calibration file {p}: {e}") from None
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        where = f" (line {line + 1})" if line is not None else ""
        raise CalibrationError(f"{p}: not valid YAML{where}") from None
    return parse_calibration(doc, source=str(p))
