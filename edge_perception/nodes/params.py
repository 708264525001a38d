"""Parameters declared once from a table of specs, read back as a frozen dataclass.

    SPECS = (ParamSpec("rate", 0.0, "frames per second, 0 = source rate", (0.0, 240.0)), ...)
    config = declare_params(node, SPECS, CameraConfig)
    node.add_on_set_parameters_callback(lambda ps: validate_changes(SPECS, ps))

Types come from the defaults (bool, int, float, str, list of str). Integer and float ranges
become ROS `IntegerRange` / `FloatingPointRange` (visible in `ros2 param describe`); `choices`
are checked here. Read-only parameters can only be set at start-up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    ParameterType,
    SetParametersResult,
)
from rclpy.exceptions import (
    InvalidParameterTypeException,
    InvalidParameterValueException,
    ParameterException,
)
from rclpy.node import Node
from rclpy.parameter import Parameter

__all__ = ["ParamError", "ParamSpec", "apply_changes", "declare_params", "validate_changes"]

T = TypeVar("T")


class ParamError(ValueError):
    """A parameter override has the wrong type or is out of range (one-line message)."""


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str
    range: tuple[float, float] | None = None  # inclusive (from, to)
    read_only: bool = False
    choices: tuple[str, ...] | None = None

    @property
    def ros_type(self) -> int:
        d = self.default
        if isinstance(d, bool):
            return ParameterType.PARAMETER_BOOL
        if isinstance(d, int):
            return ParameterType.PARAMETER_INTEGER
        if isinstance(d, float):
            return ParameterType.PARAMETER_DOUBLE
        if isinstance(d, str):
            return ParameterType.PARAMETER_STRING
        if isinstance(d, (list, tuple)) and all(isinstance(v, str) for v in d):
            return ParameterType.PARAMETER_STRING_ARRAY
        raise TypeError(f"parameter {self.name}: unsupported default {d!r}")

    def descriptor(self) -> ParameterDescriptor:
        desc = ParameterDescriptor(name=self.name, type=self.ros_type,
                                   description=self.description, read_only=self.read_only)
        if self.choices:
            desc.additional_constraints = "one of: " + ", ".join(self.choices)
        if self.range is not None:
            lo, hi = self.range
            if desc.type == ParameterType.PARAMETER_INTEGER:
                desc.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=0)]
            elif desc.type == ParameterType.PARAMETER_DOUBLE:
                desc.floating_point_range = [
                    FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
        return desc

    def check(self, value: Any) -> str | None:
        """None if `value` is acceptable, else why not."""
        if self.choices and value not in self.choices:
            return f"{self.name} must be one of {', '.join(self.choices)}, got {value!r}"
        if self.range is not None and not isinstance(value, bool) and \
                isinstance(value, (int, float)) and not self.range[0] <= value <= self.range[1]:
            return f"{self.name} must be in [{self.range[0]}, {self.range[1]}], got {value}"
        return None


def _plain(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _declare_coerced(node: Node, spec: ParamSpec) -> Parameter:
    """The override was rejected: read it untyped to say why, or accept an int for a float."""
    loose = ParameterDescriptor(name=spec.name, dynamic_typing=True)
    given = node.declare_parameter(spec.name, spec.default, loose).value
    node.undeclare_parameter(spec.name)
    if isinstance(spec.default, float) and isinstance(given, int) and \
            not isinstance(given, bool):
        given = float(given)
    problem = spec.check(_plain(given))
    if problem:
        raise ParamError(problem)
    if type(given) is not type(spec.default) and not (
            isinstance(spec.default, tuple | list) and isinstance(given, tuple | list)):
        raise ParamError(f"parameter {spec.name} must be a {type(spec.default).__name__}, "
                         f"got {given!r} ({spec.description})")
    return node.declare_parameter(spec.name, given, spec.descriptor(), ignore_override=True)


def declare_params(node: Node, specs: Sequence[ParamSpec], config_type: type[T]) -> T:
    """Declare every spec on `node` and return `config_type(**values)` (a frozen dataclass
    whose fields are exactly the spec names). Raises `ParamError` with a one-line message."""
    fields = {f.name for f in dataclasses.fields(config_type)}  # type: ignore[arg-type]
    names = {s.name for s in specs}
    if fields != names:
        raise TypeError(f"{config_type.__name__} fields {sorted(fields ^ names)} do not "
                        f"match the parameter specs")
    values: dict[str, Any] = {}
    for spec in specs:
        try:
            p = node.declare_parameter(spec.name, spec.default, spec.descriptor())
        except (InvalidParameterTypeException, InvalidParameterValueException):
            p = _declare_coerced(node, spec)
        except ParameterException as e:
            raise ParamError(f"parameter {spec.name}: {e}") from None
        value = _plain(p.value)
        problem = spec.check(value)
        if problem:
            raise ParamError(problem)
        values[spec.name] = value
    return config_type(**values)


def validate_changes(specs: Sequence[ParamSpec],
                     params: Iterable[Parameter]) -> SetParametersResult:
    """For `add_on_set_parameters_callback`: reject read-only, mistyped or out-of-range
    values of spec'd parameters (others, e.g. qos_overrides, pass through)."""
    table = {s.name: s for s in specs}
    for p in params:
        spec = table.get(p.name)
        if spec is None:
            continue
        if spec.read_only:
            return SetParametersResult(successful=False,
                                       reason=f"{p.name} is read-only (restart the node)")
        if p.type_ != Parameter.Type.from_parameter_value(spec.default):
            return SetParametersResult(
                successful=False, reason=f"{p.name} must be a {type(spec.default).__name__}")
        problem = spec.check(_plain(p.value))
        if problem:
            return SetParametersResult(successful=False, reason=problem)
    return SetParametersResult(successful=True)


def apply_changes(config: T, params: Iterable[Parameter]) -> T:
    """A copy of the frozen `config` with the (already validated) changed values."""
    names = {f.name for f in dataclasses.fields(config)}  # type: ignore[arg-type]
    changes = {p.name: _plain(p.value) for p in params if p.name in names}
    return dataclasses.replace(config, **changes) if changes else config  # type: ignore
