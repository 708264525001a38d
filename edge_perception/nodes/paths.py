"""Find files named relative to the package: the working directory first, then the source
tree, then the installed share directory (so `config/camera_info.yaml` in the installed
params file works under `ros2 launch`, whatever the working directory)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["resolve_path", "share_directory"]

_SOURCE_ROOT = Path(__file__).resolve().parents[2]


def share_directory() -> Path | None:
    """`share/edge_perception` of an installed package, or None (e.g. an editable install
    without AMENT_PREFIX_PATH)."""
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("edge_perception"))
    except (ImportError, LookupError, OSError, ValueError):
        return None


def resolve_path(path: str) -> str:
    """`path` unchanged if absolute, empty, a URL or existing; else the first existing of
    <source tree>/path and <share>/path; else `path` unchanged (the caller reports it)."""
    if not path or "://" in path or Path(path).is_absolute() or Path(path).exists():
        return path
    roots = [_SOURCE_ROOT, share_directory()]
    for root in roots:
        if root is not None and (root / path).exists():
            return str(root / path)
    return path
