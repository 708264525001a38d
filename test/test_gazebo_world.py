"""The Gazebo world, its bridge config, its CameraInfo and its ground truth agree (no Gazebo
needed: the files are parsed, nothing is mocked)."""

from __future__ import annotations

import math
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import yaml

from edge_perception.capture.calibration import load_calibration
from edge_perception.geometry import CameraIntrinsics, CameraMount, GroundProjector

REPO = Path(__file__).resolve().parents[1]
SDF = REPO / "worlds" / "road_hazards.sdf"
BRIDGE = REPO / "worlds" / "ros_gz_bridge.yaml"
TRUTH = REPO / "worlds" / "ground_truth.yaml"
CAMERA_INFO = REPO / "config" / "camera_info_sim.yaml"


@pytest.fixture(scope="module")
def world() -> ET.Element:
    root = ET.parse(SDF).getroot()
    assert root.tag == "sdf"
    (w,) = root.findall("world")
    return w


@pytest.fixture(scope="module")
def truth() -> dict:
    return yaml.safe_load(TRUTH.read_text())


def _pose(el: ET.Element | None) -> np.ndarray:
    node = None if el is None else el.find("pose")
    if node is None or not (node.text or "").strip():
        return np.zeros(6)
    vals = np.array([float(v) for v in node.text.split()])
    assert vals.shape == (6,), f"pose must have 6 numbers, got {node.text!r}"
    return vals


def _models(world: ET.Element) -> dict[str, ET.Element]:
    return {m.get("name"): m for m in world.findall("model")}


def _camera_sensor(world: ET.Element) -> tuple[ET.Element, ET.Element, ET.Element]:
    vehicle = _models(world)["ego_vehicle"]
    sensors = [(link, s) for link in vehicle.findall("link") for s in link.findall("sensor")
               if s.get("type") == "camera"]
    assert len(sensors) == 1, "the vehicle needs exactly one camera sensor"
    link, sensor = sensors[0]
    return vehicle, link, sensor


def _text(el: ET.Element, path: str) -> str:
    node = el.find(path)
    assert node is not None and node.text, f"missing <{path}>"
    return node.text.strip()


def test_sdf_is_well_formed_and_recent() -> None:
    root = ET.parse(SDF).getroot()
    version = tuple(int(p) for p in root.get("version", "0").split("."))
    assert version >= (1, 9)
    assert [w.get("name") for w in root.findall("world")] == ["road_hazards"]


def test_world_has_the_systems_lighting_and_physics(world: ET.Element) -> None:
    plugins = {p.get("name"): p for p in world.findall("plugin")}
    for name, lib in [("Physics", "physics"), ("SceneBroadcaster", "scene-broadcaster"),
                      ("Sensors", "sensors"), ("UserCommands", "user-commands")]:
        plugin = plugins.get(f"gz::sim::systems::{name}")
        assert plugin is not None, f"missing system {name}"
        assert plugin.get("filename") == f"gz-sim-{lib}-system"
    assert _text(plugins["gz::sim::systems::Sensors"], "render_engine") == "ogre2"
    assert float(_text(world, "physics/max_step_size")) > 0
    suns = [li for li in world.findall("light") if li.get("type") == "directional"]
    assert suns and np.array(_text(suns[0], "direction").split(), float)[2] < 0
    models = _models(world)
    assert {"ground", "road", "ego_vehicle"} <= set(models)
    assert _text(models["road"], "static") == "true"


def test_camera_sensor_is_complete_and_mounted_like_a_car_camera(
        world: ET.Element, truth: dict) -> None:
    vehicle, link, sensor = _camera_sensor(world)
    cam = sensor.find("camera")
    assert cam is not None
    assert 0.5 < float(_text(cam, "horizontal_fov")) < 2.0
    assert int(_text(cam, "image/width")) > 0 and int(_text(cam, "image/height")) > 0
    assert float(_text(sensor, "update_rate")) >= 10
    assert _text(sensor, "topic").startswith("/")
    x, y, z, roll, pitch, yaw = _pose(sensor) + _pose(link)  # link sits at the model origin
    assert 1.0 <= z <= 2.0 and math.radians(1) <= pitch <= math.radians(10)
    expected = truth["vehicle"]["camera"]
    np.testing.assert_allclose([x, y, z, roll, pitch, yaw],
                               [expected[k] for k in ("x", "y", "z", "roll", "pitch", "yaw")],
                               atol=1e-6)
    assert _text(vehicle, "link/gravity") == "false"  # kinematic carrier, see README


def test_camera_info_matches_the_sdf_camera(world: ET.Element, truth: dict) -> None:
    _, _, sensor = _camera_sensor(world)
    cam = sensor.find("camera")
    width, height = int(_text(cam, "image/width")), int(_text(cam, "image/height"))
    hfov = float(_text(cam, "horizontal_fov"))
    fx = width / (2.0 * math.tan(hfov / 2.0))
    # the SDF pins the same intrinsics explicitly, so every gz-sensors version publishes them
    for tag, want in [("fx", fx), ("fy", fx), ("cx", width / 2), ("cy", height / 2)]:
        assert float(_text(cam, f"lens/intrinsics/{tag}")) == pytest.approx(want, rel=1e-9)
    calib = load_calibration(CAMERA_INFO)
    assert (calib.width, calib.height) == (width, height)
    k = np.array([[fx, 0, width / 2], [0, fx, height / 2], [0, 0, 1]])
    np.testing.assert_allclose(calib.K, k, rtol=1e-6)
    np.testing.assert_allclose(calib.P[:, :3], k, rtol=1e-6)
    np.testing.assert_array_equal(calib.P[:, 3], 0.0)
    assert calib.distortion_model == "plumb_bob" and not np.any(calib.D)
    np.testing.assert_allclose(calib.K, CameraIntrinsics.from_hfov(width, height, hfov).K)
    assert truth["vehicle"]["camera"]["width"] == width
    assert truth["vehicle"]["camera"]["hfov_rad"] == pytest.approx(hfov)


def test_bridge_config_matches_the_world(world: ET.Element) -> None:
    entries = yaml.safe_load(BRIDGE.read_text())
    assert isinstance(entries, list) and entries
    keys = {"ros_topic_name", "gz_topic_name", "ros_type_name", "gz_type_name", "direction"}
    for e in entries:
        assert set(e) >= keys, f"bridge entry lacks {keys - set(e)}"
        assert e["direction"] in {"GZ_TO_ROS", "ROS_TO_GZ", "BIDIRECTIONAL"}
        assert e["gz_type_name"].startswith("gz.msgs.")
        pkg, kind, name = e["ros_type_name"].split("/")
        assert kind == "msg" and pkg and name
    by_ros_type = {e["ros_type_name"]: e for e in entries}
    _, _, sensor = _camera_sensor(world)
    image = by_ros_type["sensor_msgs/msg/Image"]
    info = by_ros_type["sensor_msgs/msg/CameraInfo"]
    clock = by_ros_type["rosgraph_msgs/msg/Clock"]
    assert image["gz_topic_name"] == _text(sensor, "topic")
    assert info["gz_topic_name"] == _text(sensor, "camera/camera_info_topic")
    assert (image["gz_type_name"], info["gz_type_name"], clock["gz_type_name"]) == (
        "gz.msgs.Image", "gz.msgs.CameraInfo", "gz.msgs.Clock")
    assert {image["direction"], info["direction"], clock["direction"]} == {"GZ_TO_ROS"}
    assert clock["ros_topic_name"] == "/clock"
    # the image and its camera_info share a namespace, as image_transport expects
    assert image["ros_topic_name"].rsplit("/", 1)[0] == info["ros_topic_name"].rsplit("/", 1)[0]


def test_ground_truth_matches_the_model_poses(world: ET.Element, truth: dict) -> None:
    models = _models(world)
    in_world = {n for n in models if n.startswith(("pothole_", "speed_bump_"))}
    assert in_world == {h["name"] for h in truth["hazards"]}
    assert {h["class"] for h in truth["hazards"]} == {"pothole", "speed_bump"}
    sx, sy, _, _, _, syaw = _pose(models["ego_vehicle"])
    start = truth["vehicle"]["start_pose"]
    assert (start["x"], start["y"], start["yaw"]) == pytest.approx((sx, sy, syaw))
    c, s = math.cos(syaw), math.sin(syaw)
    for h in truth["hazards"]:
        m = models[h["name"]]
        x, y, z = _pose(m)[:3]
        assert (h["world"]["x"], h["world"]["y"], h["world"]["z"]) == pytest.approx((x, y, z))
        vx, vy = c * (x - sx) + s * (y - sy), -s * (x - sx) + c * (y - sy)
        assert (h["vehicle_at_start"]["x"], h["vehicle_at_start"]["y"]) == pytest.approx((vx, vy))
        link = m.find("link")
        if h["class"] == "pothole":
            assert h["class_id"] == 0
            rim = link.find("visual[@name='rim']/geometry/cylinder")
            floor = link.find("visual[@name='floor']/geometry/cylinder")
            assert 2 * float(_text(rim, "radius")) == pytest.approx(h["size"]["diameter_m"])
            assert float(_text(floor, "length")) == pytest.approx(h["size"]["depth_m"])
            assert _pose(link.find("visual[@name='floor']"))[2] < 0  # sunk into the road
            half = h["size"]["diameter_m"] / 2
        else:
            assert h["class_id"] == 1
            size = np.array(_text(link, "collision/geometry/box/size").split(), float)
            np.testing.assert_allclose(size, [h["size"]["length_m"], h["size"]["width_m"],
                                              h["size"]["height_m"]])
            half = h["size"]["length_m"] / 2
        near = h["near_edge_vehicle_at_start"]
        assert (near["x"], near["y"]) == pytest.approx((vx - half, vy))


def test_hazards_near_the_start_are_in_view(world: ET.Element, truth: dict) -> None:
    """The world's camera sees the first hazards, and the projector recovers their range."""
    cam = truth["vehicle"]["camera"]
    calib = load_calibration(CAMERA_INFO)
    intr = CameraIntrinsics(calib.K, calib.D, calib.distortion_model, calib.width, calib.height)
    mount = CameraMount(**{k: cam[k] for k in ("x", "y", "z", "roll", "pitch", "yaw")})
    proj = GroundProjector(intr, mount)
    near = [h["near_edge_vehicle_at_start"] for h in truth["hazards"]
            if h["near_edge_vehicle_at_start"]["x"] <= 40.0]
    assert len(near) >= 3
    pts = np.array([[n["x"], n["y"]] for n in near])
    px, front = proj.ground_to_pixel(pts)
    assert front.all()
    assert np.all((px[:, 0] > 0) & (px[:, 0] < calib.width))
    horizon_v = calib.K[1, 2] - calib.K[1, 1] * math.tan(cam["pitch"])
    assert np.all((px[:, 1] > horizon_v + 20) & (px[:, 1] < calib.height))
    boxes = np.stack([px[:, 0] - 10, px[:, 1] - 8, px[:, 0] + 10, px[:, 1]], axis=1)
    est = proj.project(boxes)
    np.testing.assert_allclose(est.range_m, np.hypot(pts[:, 0], pts[:, 1]), rtol=1e-6)


def test_generated_files_are_in_sync_with_the_layout() -> None:
    result = subprocess.run([sys.executable, str(REPO / "worlds" / "generate.py"), "--check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
