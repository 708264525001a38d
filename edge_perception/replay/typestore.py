"""A rosbags typestore for ROS 2 Kilted plus message types found in installed share folders.

rosbag2 stores each topic's message definition (for Foxglove and `ros2 bag`) and its RIHS01
type hash. Standard types come from rosbags' Kilted store; other packages' types (this
project's `edge_perception_msgs` included) are parsed from their `.msg` files, looked up the
way rosbag2 does: `<prefix>/share/<package>/msg/<Type>.msg` for every prefix on
`AMENT_PREFIX_PATH` and the running interpreter's prefix, then this source tree.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path

from rosbags.interfaces import Nodetype
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

__all__ = [
    "STORE",
    "PROJECT_TYPES",
    "make_typestore",
    "ensure_type",
    "find_msg_file",
    "share_dirs",
]

STORE = Stores.ROS2_KILTED
PROJECT_TYPES = (
    "edge_perception_msgs/msg/RoadHazard",
    "edge_perception_msgs/msg/RoadHazardArray",
)
_SOURCE_TREE = Path(__file__).resolve().parents[2]


def share_dirs() -> list[Path]:
    """Folders that may hold `<package>/msg/<Type>.msg`, most specific first."""
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    dirs = [Path(p) / "share" for p in prefixes]
    dirs += [Path(sys.prefix) / "share", _SOURCE_TREE]
    seen: list[Path] = []
    for d in dirs:
        if d not in seen and d.is_dir():
            seen.append(d)
    return seen


def find_msg_file(msgtype: str, dirs: Iterable[Path] | None = None) -> Path | None:
    """The `.msg` file defining `pkg/msg/Name`, or None."""
    parts = msgtype.split("/")
    if len(parts) != 3:
        return None
    pkg, kind, name = parts
    for d in share_dirs() if dirs is None else dirs:
        path = d / pkg / kind / f"{name}.msg"
        if path.is_file():
            return path
    return None


def _referenced(fields: list) -> set[str]:
    names: set[str] = set()
    for _, (nodetype, spec) in fields:
        if nodetype == Nodetype.NAME:
            names.add(spec)
        elif nodetype in (Nodetype.ARRAY, Nodetype.SEQUENCE) and spec[0][0] == Nodetype.NAME:
            names.add(spec[0][1])
    return names


def ensure_type(typestore: Typestore, msgtype: str) -> bool:
    """Register `msgtype` and the types it uses from `.msg` files; False if one is missing."""
    if msgtype in typestore.fielddefs:
        return True
    path = find_msg_file(msgtype)
    if path is None:
        return False
    types = get_types_from_msg(path.read_text(encoding="utf-8"), msgtype)
    for dep in _referenced(types[msgtype][1]):
        if not ensure_type(typestore, dep):
            return False
    typestore.register(types)
    return True


def make_typestore(extra: Iterable[str] = PROJECT_TYPES) -> Typestore:
    """Kilted types plus `extra` (by default this project's messages, when installed)."""
    typestore = get_typestore(STORE)
    for msgtype in extra:
        ensure_type(typestore, msgtype)
    return typestore
