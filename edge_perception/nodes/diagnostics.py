"""Build `diagnostic_msgs/DiagnosticArray` messages from plain dicts."""

from __future__ import annotations

from collections.abc import Mapping

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from std_msgs.msg import Header

from .convert import stamp_from_ns

__all__ = ["LEVELS", "diagnostic_array", "status_to_dict"]

LEVELS: dict[str, bytes] = {"ok": DiagnosticStatus.OK, "warn": DiagnosticStatus.WARN,
                            "error": DiagnosticStatus.ERROR, "stale": DiagnosticStatus.STALE}


def _text(v: object) -> str:
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def diagnostic_array(stamp_ns: int, name: str, level: str, message: str,
                     values: Mapping[str, object], hardware_id: str = "") -> DiagnosticArray:
    """One status named `name` with `level` in LEVELS; values rendered as strings."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    status = DiagnosticStatus(level=LEVELS[level], name=name, message=message,
                              hardware_id=hardware_id,
                              values=[KeyValue(key=k, value=_text(v)) for k, v in values.items()])
    return DiagnosticArray(header=Header(stamp=stamp_from_ns(stamp_ns)), status=[status])


def status_to_dict(status: DiagnosticStatus) -> dict[str, str]:
    """The key/values of one status (for tests and tools)."""
    return {kv.key: kv.value for kv in status.values}
