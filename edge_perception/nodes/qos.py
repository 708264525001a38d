"""Named QoS profiles for edge_perception topics, and the FastDDS transport profile.

| profile | used for | policy |
| --- | --- | --- |
| `camera_output()` | camera `image_raw`, `camera_info` | reliable (REP-2003), keep last 5 |
| `sensor_input()` | image subscriptions (detector) | best effort, keep last 1 |
| `hazards()` | `RoadHazardArray` out | reliable, keep last 10 |
| `diagnostics()` | `/diagnostics` | reliable, keep last 10 |

A best-effort subscriber matches a reliable publisher, so `sensor_input()` can listen to any
camera. Publishers created with `overriding_options()` let a deployment change reliability,
depth and history per topic from the params file without a rebuild, e.g.

    camera_node:
      ros__parameters:
        qos_overrides:
          /image_raw:
            publisher: {reliability: best_effort, depth: 1}
"""

from __future__ import annotations

import os
from pathlib import Path

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import QoSOverridingOptions, QoSPolicyKind

from .paths import resolve_path

__all__ = [
    "FASTDDS_PROFILE_ENV", "camera_output", "diagnostics", "fastdds_profile_path", "hazards",
    "overriding_options", "sensor_input", "use_fastdds_profile",
]

# Functions, not constants: rclpy's QoS overriding writes the overrides INTO the profile
# object it is given, so a shared module-level profile would leak one topic's override into
# every other topic that uses it.
def camera_output() -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def sensor_input() -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                      reliability=ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.VOLATILE)


def hazards() -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def diagnostics() -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


FASTDDS_PROFILE_ENV = "FASTDDS_DEFAULT_PROFILES_FILE"


def overriding_options() -> QoSOverridingOptions:
    """Reliability, history and depth overridable as read-only `qos_overrides.*` params."""
    return QoSOverridingOptions(policy_kinds=(QoSPolicyKind.RELIABILITY,
                                              QoSPolicyKind.HISTORY, QoSPolicyKind.DEPTH))


def fastdds_profile_path() -> Path | None:
    """config/fastdds.xml of the source tree, else of the installed package share."""
    path = Path(resolve_path("config/fastdds.xml"))
    return path.resolve() if path.is_file() else None


def use_fastdds_profile() -> str | None:
    """Point FastDDS at our profile (shared memory with 32 MB segments + UDPv4) unless the
    user already set FASTDDS_DEFAULT_PROFILES_FILE. Call before `rclpy.init`. Returns the
    profile in effect."""
    if os.environ.get(FASTDDS_PROFILE_ENV):
        return os.environ[FASTDDS_PROFILE_ENV]
    path = fastdds_profile_path()
    if path is not None:
        os.environ[FASTDDS_PROFILE_ENV] = str(path)
        return str(path)
    return None
