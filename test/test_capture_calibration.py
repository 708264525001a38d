"""Calibration YAML parsing (camera_info_manager format) and scaling; no ROS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from edge_perception.capture import CalibrationError, CameraCalibration, load_calibration

REPO = Path(__file__).resolve().parents[1]
GOOD = yaml.safe_load((REPO / "config" / "camera_info.yaml").read_text())


def _write(tmp_path: Path, doc: object) -> Path:
    p = tmp_path / "cal.yaml"
    p.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return p


def test_bundled_calibration_loads() -> None:
    c = load_calibration(REPO / "config" / "camera_info.yaml")
    assert (c.width, c.height, c.camera_name, c.distortion_model) == \
        (640, 640, "sample_camera", "plumb_bob")
    assert c.K.shape == (3, 3) and c.R.shape == (3, 3) and c.P.shape == (3, 4)
    assert c.D.shape == (5,) and c.is_calibrated
    assert c.K[0, 0] == 500.0 and c.K[0, 2] == 320.0
    with pytest.raises(ValueError):
        c.K[0, 0] = 1.0  # read-only arrays: a frozen dataclass that really is frozen


def test_file_url_prefix(tmp_path: Path) -> None:
    p = _write(tmp_path, GOOD)
    assert load_calibration(f"file://{p}").width == 640


@pytest.mark.parametrize("mutate, words", [
    (lambda d: d.pop("camera_matrix"), "camera_matrix"),
    (lambda d: d.pop("image_width"), "image_width"),
    (lambda d: d["camera_matrix"].update(rows=2, cols=2, data=[1, 0, 0, 1]), "3x3"),
    (lambda d: d["projection_matrix"]["data"].pop(), "3x4 but has 11 values"),
    (lambda d: d["distortion_coefficients"].update(data=["a", 0, 0, 0, 0]), "non-numeric"),
    (lambda d: d["camera_matrix"]["data"].__setitem__(0, float("nan")), "NaN"),
    (lambda d: d["camera_matrix"]["data"].__setitem__(0, -5.0), "fx"),
    (lambda d: d.update(image_height=0), "positive"),
    (lambda d: d["rectification_matrix"].pop("cols"), "cols"),
])
def test_malformed_calibration_is_a_clear_error(tmp_path: Path, mutate, words: str) -> None:
    doc = yaml.safe_load(yaml.safe_dump(GOOD))
    mutate(doc)
    with pytest.raises(CalibrationError, match=words) as info:
        load_calibration(_write(tmp_path, doc))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("text, words", [
    ("image_width: [640\n", "not valid YAML"), ("- 1\n- 2\n", "mapping"), ("", "mapping")])
def test_not_a_calibration(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(CalibrationError, match=words):
        load_calibration(_write(tmp_path, text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match="not found"):
        load_calibration(tmp_path / "nope.yaml")


def test_scaling_follows_a_resize() -> None:
    c = load_calibration(REPO / "config" / "camera_info.yaml")
    s = c.scaled_to(320, 160)
    assert (s.width, s.height) == (320, 160)
    np.testing.assert_allclose(s.K, [[250, 0, 160], [0, 125, 80], [0, 0, 1]])
    np.testing.assert_allclose(s.P[:, :3], s.K)
    np.testing.assert_array_equal(s.D, c.D)
    assert c.scaled_to(640, 640) is c
    # A point projected at full size lands at the same relative position after scaling.
    X = np.array([0.3, -0.2, 2.0])
    u_full, u_half = c.K @ X, s.K @ X
    np.testing.assert_allclose(u_half[:2] / u_half[2],
                               (u_full[:2] / u_full[2]) * [0.5, 0.25])


def test_uncalibrated() -> None:
    c = CameraCalibration.uncalibrated(64, 48)
    assert not c.is_calibrated and c.K.shape == (3, 3) and c.P.shape == (3, 4)
