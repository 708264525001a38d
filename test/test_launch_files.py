"""launch/*.launch.py cannot run here (no ros2 launch): parse them and check what they name
against setup.py, package.xml and config/params.yaml."""

from __future__ import annotations

import ast
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.py"))


def _console_scripts() -> set[str]:
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values, strict=True):
                if isinstance(k, ast.Constant) and k.value == "console_scripts":
                    entries = ast.literal_eval(v)
                    return {e.split("=")[0].strip() for e in entries}
    raise AssertionError("setup.py has no console_scripts")


def _node_calls(tree: ast.Module) -> list[dict[str, object]]:
    """Constant keyword arguments of every Node/LifecycleNode(...), module constants resolved."""
    consts = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
              and isinstance(n.value, ast.Constant) for t in n.targets if isinstance(t, ast.Name)}
    calls = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("Node",
                                                                           "LifecycleNode"):
            kw: dict[str, object] = {}
            for k in node.keywords:
                if isinstance(k.value, ast.Constant):
                    kw[str(k.arg)] = k.value.value
                elif isinstance(k.value, ast.Name) and k.value.id in consts:
                    kw[str(k.arg)] = consts[k.value.id]
            calls.append(kw)
    return calls


def _package_xml_deps() -> set[str]:
    root = ET.parse(REPO / "package.xml").getroot()
    return {e.text for e in root if e.tag in ("depend", "exec_depend") and e.text}


def test_there_is_a_vehicle_launch_file() -> None:
    assert REPO / "launch" / "vehicle.launch.py" in LAUNCH_FILES


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_is_consistent(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    funcs = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in funcs

    calls = _node_calls(tree)
    assert calls, "no Node/LifecycleNode in the launch file"
    scripts = _console_scripts()
    sections = {str(k).lstrip("/") for k in
                yaml.safe_load((REPO / "config" / "params.yaml").read_text())}
    for call in calls:
        assert call.get("package") == "edge_perception", call
        assert call.get("executable") in scripts, f"{call} not in setup.py console_scripts"
        assert call.get("name") in sections, f"{call['name']} has no section in params.yaml"

    # Every config file the launch file names exists and is installed by setup.py's glob.
    named = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
             and isinstance(n.value, str) and n.value.endswith((".yaml", ".xml"))}
    assert {"params.yaml", "fastdds.xml"} <= named
    for name in named:
        assert (REPO / "config" / name).is_file(), name
    assert 'glob("config/*.yaml") + glob("config/*.xml")' in (REPO / "setup.py").read_text()

    # Every ROS package the launch file imports is a declared run dependency.
    deps = _package_xml_deps()
    imported = {(n.module or "").split(".")[0] for n in ast.walk(tree)
                if isinstance(n, ast.ImportFrom)}
    imported |= {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                 for a in n.names}
    assert imported <= deps, f"not in package.xml: {sorted(imported - deps)}"


def test_params_file_is_a_valid_ros_params_file() -> None:
    """rcl's own parser (via rclpy.init --params-file) accepts config/params.yaml."""
    import rclpy
    from rclpy.context import Context

    ctx = Context()
    rclpy.init(args=["--ros-args", "--params-file", str(REPO / "config" / "params.yaml")],
               context=ctx)
    rclpy.try_shutdown(context=ctx)


def test_fastdds_profile_is_well_formed() -> None:
    ns = {"d": "http://www.eprosima.com"}
    root = ET.parse(REPO / "config" / "fastdds.xml").getroot()
    types = [t.text for t in root.iterfind(".//d:transport_descriptor/d:type", ns)]
    assert types == ["SHM", "UDPv4"]
    seg = root.find(".//d:transport_descriptor/d:segment_size", ns)
    assert seg is not None and int(seg.text or 0) >= 32 * 1024 * 1024
    part = root.find(".//d:participant", ns)
    assert part is not None and part.get("is_default_profile") == "true"
