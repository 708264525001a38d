#!/usr/bin/env python3
"""Writes worlds/road_hazards.sdf, worlds/ground_truth.yaml and config/camera_info_sim.yaml
from the one layout below, so the world, its ground truth and the CameraInfo always agree.

    python worlds/generate.py          # rewrite the three files
    python worlds/generate.py --check  # exit 1 if a committed file differs from the layout

Road frame = Gazebo world frame: x along the road, y left, z up, metres; the road surface is
z = 0 and the ego lane's centre is y = 0. The vehicle frame (base_link, on the ground under the
vehicle) starts at the world origin facing +x.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SDF_PATH = ROOT / "worlds" / "road_hazards.sdf"
TRUTH_PATH = ROOT / "worlds" / "ground_truth.yaml"
CAMERA_INFO_PATH = ROOT / "config" / "camera_info_sim.yaml"

WORLD = "road_hazards"
VEHICLE = "ego_vehicle"
START = {"x": 0.0, "y": 0.0, "z": 0.0, "yaw": 0.0}
CAMERA = {  # optical centre in base_link, turn in radians (pitch positive = looking down)
    "x": 1.9, "y": 0.0, "z": 1.4, "roll": 0.0, "pitch": round(math.radians(5.0), 6),
    "yaw": 0.0, "hfov_rad": round(math.radians(70.0), 6), "width": 1280, "height": 720,
    "update_rate_hz": 30.0, "near_m": 0.1, "far_m": 300.0,
    "gz_image_topic": "/ego/front_camera/image",
    "gz_camera_info_topic": "/ego/front_camera/camera_info",
    "optical_frame_id": "camera_optical_frame",
}
LANE_W, LINE_W, ROAD_LEN, ROAD_X0 = 3.5, 0.15, 400.0, -50.0
# (name, class, x, y, size): potholes are round depressions (diameter, depth); speed bumps are
# blocks across the lane (length along the road, width across it, height).
HAZARDS = [
    ("pothole_1", "pothole", 12.0, 0.4, {"diameter_m": 0.9, "depth_m": 0.08}),
    ("speed_bump_1", "speed_bump", 20.0, 0.0, {"length_m": 0.5, "width_m": 3.5, "height_m": 0.08}),
    ("pothole_2", "pothole", 27.0, -0.8, {"diameter_m": 0.7, "depth_m": 0.06}),
    ("pothole_3", "pothole", 38.0, 1.1, {"diameter_m": 1.2, "depth_m": 0.1}),
    ("speed_bump_2", "speed_bump", 55.0, 1.75,
     {"length_m": 0.6, "width_m": 7.0, "height_m": 0.1}),
    ("pothole_4", "pothole", 70.0, -0.3, {"diameter_m": 0.8, "depth_m": 0.07}),
]
CLASS_IDS = {"pothole": 0, "speed_bump": 1}


def _f(v: float) -> str:
    return f"{v:.10g}"


def _pose(x: float, y: float, z: float, r: float = 0.0, p: float = 0.0, yw: float = 0.0) -> str:
    return f"<pose>{' '.join(_f(v) for v in (x, y, z, r, p, yw))}</pose>"


def _material(r: float, g: float, b: float) -> str:
    c = f"{_f(r)} {_f(g)} {_f(b)} 1"
    return f"<material><ambient>{c}</ambient><diffuse>{c}</diffuse>" \
           f"<specular>0.05 0.05 0.05 1</specular></material>"


def _box_visual(name: str, pose: str, size: tuple[float, float, float],
                rgb: tuple[float, float, float]) -> str:
    return (f'<visual name="{name}">{pose}<geometry><box><size>'
            f"{' '.join(_f(s) for s in size)}</size></box></geometry>{_material(*rgb)}</visual>")


def _road() -> str:
    half = LANE_W / 2
    cx = ROAD_X0 + ROAD_LEN / 2
    width = 2 * LANE_W + 0.8
    cy = half  # the road spans y = -half - 0.4 .. 3 half + 0.4
    parts = [
        _pose(0, 0, 0),
        '<link name="surface">',
        f'<collision name="collision">{_pose(cx, cy, -0.05)}<geometry><box><size>'
        f"{_f(ROAD_LEN)} {_f(width)} 0.1</size></box></geometry></collision>",
        _box_visual("asphalt", _pose(cx, cy, -0.05), (ROAD_LEN, width, 0.1), (0.3, 0.3, 0.31)),
        _box_visual("edge_right", _pose(cx, -half + LINE_W / 2, 0.001), (ROAD_LEN, LINE_W, 0.002),
                    (0.9, 0.9, 0.9)),
        _box_visual("edge_left", _pose(cx, 3 * half - LINE_W / 2, 0.001),
                    (ROAD_LEN, LINE_W, 0.002), (0.9, 0.9, 0.9)),
    ]
    x, i = ROAD_X0, 0
    while x + 3.0 <= ROAD_X0 + ROAD_LEN:
        parts.append(_box_visual(f"dash_{i}", _pose(x + 1.5, half, 0.001), (3.0, LINE_W, 0.002),
                                 (0.9, 0.9, 0.9)))
        x, i = x + 9.0, i + 1
    parts.append("</link>")
    body = "\n        ".join(parts)
    return f'<model name="road">\n      <static>true</static>\n        {body}\n    </model>'


def _pothole(name: str, x: float, y: float, size: dict) -> str:
    """A shallow dark disc sunk into the road with a broken lighter rim around it (visual only:
    a true hole in the road would need a mesh; the car's camera only needs the look)."""
    r, d = size["diameter_m"] / 2, size["depth_m"]
    floor = (f'<visual name="floor">{_pose(0, 0, 0.002 - d / 2)}<geometry><cylinder>'
             f"<radius>{_f(r * 0.88)}</radius><length>{_f(d)}</length></cylinder></geometry>"
             f"{_material(0.08, 0.075, 0.07)}</visual>")
    rim = (f'<visual name="rim">{_pose(0, 0, 0.0005)}<geometry><cylinder>'
           f"<radius>{_f(r)}</radius><length>0.001</length></cylinder></geometry>"
           f"{_material(0.45, 0.44, 0.42)}</visual>")
    return (f'<model name="{name}">\n      <static>true</static>{_pose(x, y, 0)}\n'
            f'      <link name="link">\n          {floor}\n          {rim}\n      </link>\n'
            f'    </model>')


def _speed_bump(name: str, x: float, y: float, size: dict) -> str:
    """A block across the lane, painted in 0.35 m yellow and black stripes."""
    ln, w, h = size["length_m"], size["width_m"], size["height_m"]
    n = max(1, round(w / 0.35))
    sw = w / n
    stripes = [
        _box_visual(f"stripe_{i}", _pose(0, -w / 2 + sw * (i + 0.5), h / 2), (ln, sw, h),
                    (0.95, 0.75, 0.05) if i % 2 == 0 else (0.05, 0.05, 0.05))
        for i in range(n)
    ]
    col = (f'<collision name="collision">{_pose(0, 0, h / 2)}<geometry><box><size>'
           f"{_f(ln)} {_f(w)} {_f(h)}</size></box></geometry></collision>")
    body = "\n          ".join([col, *stripes])
    return (f'<model name="{name}">\n      <static>true</static>{_pose(x, y, 0)}\n'
            f'      <link name="link">\n          {body}\n      </link>\n    </model>')


def _vehicle() -> str:
    c = CAMERA
    camera = f"""
      <sensor name="front_camera" type="camera">
        {_pose(c["x"], c["y"], c["z"], c["roll"], c["pitch"], c["yaw"])}
        <always_on>true</always_on>
        <update_rate>{_f(c["update_rate_hz"])}</update_rate>
        <visualize>false</visualize>
        <topic>{c["gz_image_topic"]}</topic>
        <camera name="front_camera">
          <camera_info_topic>{c["gz_camera_info_topic"]}</camera_info_topic>
          <optical_frame_id>{c["optical_frame_id"]}</optical_frame_id>
          <horizontal_fov>{_f(c["hfov_rad"])}</horizontal_fov>
          <image><width>{c["width"]}</width><height>{c["height"]}</height>
            <format>R8G8B8</format></image>
          <clip><near>{_f(c["near_m"])}</near><far>{_f(c["far_m"])}</far></clip>
          <lens><intrinsics>
            <fx>{_f(_fx())}</fx><fy>{_f(_fx())}</fy>
            <cx>{_f(c["width"] / 2)}</cx><cy>{_f(c["height"] / 2)}</cy><s>0</s>
          </intrinsics></lens>
        </camera>
      </sensor>"""
    body = _box_visual("body", _pose(-0.1, 0, 0.6), (4.4, 1.8, 0.6), (0.15, 0.2, 0.5))
    cabin = _box_visual("cabin", _pose(-0.5, 0, 1.18), (2.6, 1.7, 0.56), (0.15, 0.2, 0.5))
    mast = _box_visual("camera_mast", _pose(c["x"], 0, (0.9 + c["z"]) / 2 - 0.05),
                       (0.06, 0.06, c["z"] - 0.9), (0.1, 0.1, 0.1))
    wheels = "".join(
        f'<visual name="wheel_{i}">{_pose(wx, wy, 0.33, math.pi / 2, 0, 0)}<geometry><cylinder>'
        f"<radius>0.33</radius><length>0.22</length></cylinder></geometry>"
        f"{_material(0.05, 0.05, 0.05)}</visual>\n        "
        for i, (wx, wy) in enumerate([(1.35, 0.8), (1.35, -0.8), (-1.45, 0.8), (-1.45, -0.8)]))
    return f"""
    <model name="{VEHICLE}">
      {_pose(START["x"], START["y"], START["z"], 0, 0, START["yaw"])}
      <!-- Kinematic camera carrier: no gravity, driven by VelocityControl
           (publish gz.msgs.Twist on /model/{VEHICLE}/cmd_vel, e.g. linear.x = 10). -->
      <link name="base_link">
        <gravity>false</gravity>
        <inertial><mass>1500</mass><inertia><ixx>600</ixx><iyy>2500</iyy><izz>2800</izz>
          <ixy>0</ixy><ixz>0</ixz><iyz>0</iyz></inertia></inertial>
        {body}
        {cabin}
        {mast}
        {wheels}{camera}
      </link>
      <plugin filename="gz-sim-velocity-control-system"
              name="gz::sim::systems::VelocityControl"/>
    </model>"""


def _fx() -> float:
    return CAMERA["width"] / (2.0 * math.tan(CAMERA["hfov_rad"] / 2.0))


def build_sdf() -> str:
    hazards = "\n    ".join(
        _pothole(n, x, y, s) if cls == "pothole" else _speed_bump(n, x, y, s)
        for n, cls, x, y, s in HAZARDS)
    return f"""<?xml version="1.0" ?>
<!-- GENERATED by worlds/generate.py from its layout: edit that file, then run it. -->
<sdf version="1.10">
  <world name="{WORLD}">
    <physics name="1ms" type="ignored">
      <max_step_size>0.001</max_step_size>
      <real_time_factor>1.0</real_time_factor>
    </physics>
    <plugin filename="gz-sim-physics-system" name="gz::sim::systems::Physics"/>
    <plugin filename="gz-sim-user-commands-system" name="gz::sim::systems::UserCommands"/>
    <plugin filename="gz-sim-scene-broadcaster-system"
            name="gz::sim::systems::SceneBroadcaster"/>
    <plugin filename="gz-sim-sensors-system" name="gz::sim::systems::Sensors">
      <render_engine>ogre2</render_engine>
    </plugin>
    <gravity>0 0 -9.81</gravity>
    <scene>
      <ambient>0.5 0.5 0.5 1</ambient>
      <background>0.7 0.8 0.95 1</background>
      <shadows>true</shadows>
      <grid>false</grid>
    </scene>
    <light type="directional" name="sun">
      <cast_shadows>true</cast_shadows>
      <pose>0 0 50 0 0 0</pose>
      <diffuse>0.9 0.88 0.85 1</diffuse>
      <specular>0.2 0.2 0.2 1</specular>
      <direction>-0.4 0.2 -0.9</direction>
    </light>
    <model name="ground">
      <static>true</static>
      <link name="link">
        <collision name="collision"><geometry><plane><normal>0 0 1</normal>
          <size>1000 1000</size></plane></geometry></collision>
        <visual name="grass">{_pose(0, 0, -0.01)}<geometry><plane><normal>0 0 1</normal>
          <size>1000 1000</size></plane></geometry>{_material(0.25, 0.45, 0.18)}</visual>
      </link>
    </model>
    {_road()}
    {hazards}
    {_vehicle()}
  </world>
</sdf>
"""


def _in_vehicle(x: float, y: float) -> dict[str, float]:
    """World point → vehicle frame at the start pose (rotation by -yaw about z)."""
    dx, dy = x - START["x"], y - START["y"]
    c, s = math.cos(START["yaw"]), math.sin(START["yaw"])
    return {"x": round(c * dx + s * dy, 6), "y": round(-s * dx + c * dy, 6), "z": 0.0}


def build_truth() -> str:
    hazards = []
    for name, cls, x, y, size in HAZARDS:
        half_len = size["diameter_m"] / 2 if cls == "pothole" else size["length_m"] / 2
        hazards.append({
            "name": name, "class": cls, "class_id": CLASS_IDS[cls],
            "world": {"x": x, "y": y, "z": 0.0},
            "size": dict(size),
            "vehicle_at_start": _in_vehicle(x, y),
            "near_edge_vehicle_at_start": _in_vehicle(x - half_len, y),
        })
    doc = {
        "world": WORLD,
        "frames": "world: x along the road, y left, z up (m), road surface z = 0; vehicle: "
                  "base_link of the ego vehicle on the ground, REP-103; positions are the "
                  "hazard centre and the centre of its near edge",
        "vehicle": {"model": VEHICLE, "start_pose": dict(START),
                    "camera": {k: CAMERA[k] for k in (
                        "x", "y", "z", "roll", "pitch", "yaw", "hfov_rad", "width", "height",
                        "update_rate_hz", "optical_frame_id")}},
        "hazards": hazards,
    }
    head = "# GENERATED by worlds/generate.py (the layout lives there); checked by " \
           "test/test_gazebo_world.py.\n"
    return head + yaml.safe_dump(doc, sort_keys=False, width=99, default_flow_style=None)


def build_camera_info() -> str:
    fx, w, h = _fx(), CAMERA["width"], CAMERA["height"]
    k = [fx, 0.0, w / 2, 0.0, fx, h / 2, 0.0, 0.0, 1.0]
    p = [fx, 0.0, w / 2, 0.0, 0.0, fx, h / 2, 0.0, 0.0, 0.0, 1.0, 0.0]
    doc = {
        "image_width": w, "image_height": h, "camera_name": "gz_front_camera",
        "camera_matrix": {"rows": 3, "cols": 3, "data": [round(v, 6) for v in k]},
        "distortion_model": "plumb_bob",
        "distortion_coefficients": {"rows": 1, "cols": 5, "data": [0.0] * 5},
        "rectification_matrix": {"rows": 3, "cols": 3,
                                 "data": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]},
        "projection_matrix": {"rows": 3, "cols": 4, "data": [round(v, 6) for v in p]},
    }
    head = ("# GENERATED by worlds/generate.py: the CameraInfo the Gazebo front camera of\n"
            "# worlds/road_hazards.sdf publishes (camera_info_manager format): square pixels,\n"
            "# fx = fy = width / (2 tan(hfov / 2)), principal point at the image centre.\n")
    return head + yaml.safe_dump(doc, sort_keys=False, width=99, default_flow_style=None)


def outputs() -> dict[Path, str]:
    return {SDF_PATH: build_sdf(), TRUTH_PATH: build_truth(),
            CAMERA_INFO_PATH: build_camera_info()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    stale = []
    for path, text in outputs().items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path)
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    for path in stale:
        print(f"out of date: {path.relative_to(ROOT)} (run python worlds/generate.py)")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
