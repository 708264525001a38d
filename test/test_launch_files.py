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


# Packages other than ours that a launch file may start: simulation-only, so deliberately not
# run dependencies of a vehicle install (worlds/README.md says what to install for them).
SIM_ONLY_PACKAGES = {"ros_gz_bridge"}


def _named_files(tree: ast.Module) -> set[str]:
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
            and isinstance(n.value, str) and n.value.endswith((".yaml", ".xml", ".sdf"))}


def _param_sections(tree: ast.Module) -> dict[str, set[str]]:
    """node name → parameter names, over every config/*.yaml params file the launch file
    names."""
    sections: dict[str, set[str]] = {}
    for name in sorted(_named_files(tree)):
        path = REPO / "config" / name
        if name.endswith(".yaml") and path.is_file():
            doc = yaml.safe_load(path.read_text())
            if not all(isinstance(v, dict) and "ros__parameters" in v for v in doc.values()):
                continue  # e.g. a camera_info file, not a params file
            for node, body in doc.items():
                sections.setdefault(str(node).lstrip("/"), set()).update(
                    body["ros__parameters"] or {})
    return sections


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_is_consistent(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    funcs = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in funcs

    calls = _node_calls(tree)
    assert calls, "no Node/LifecycleNode in the launch file"
    scripts = _console_scripts()
    sections = _param_sections(tree)
    deps = _package_xml_deps()
    for call in calls:
        if call.get("package") != "edge_perception":
            assert call.get("package") in deps | SIM_ONLY_PACKAGES, call
            continue
        assert call.get("executable") in scripts, f"{call} not in setup.py console_scripts"
        assert call.get("name") in sections, f"{call['name']} has no section in its params"

    # Every config file the launch file names exists and is installed by setup.py's glob.
    named = _named_files(tree)
    assert {"params.yaml", "fastdds.xml"} <= named
    for name in named:
        assert (REPO / "config" / name).is_file() or (REPO / "worlds" / name).is_file(), name
    assert 'glob("config/*.yaml") + glob("config/*.xml")' in (REPO / "setup.py").read_text()

    # Every ROS package the launch file imports is a declared run dependency.
    imported = {(n.module or "").split(".")[0] for n in ast.walk(tree)
                if isinstance(n, ast.ImportFrom)}
    imported |= {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                 for a in n.names}
    assert imported <= deps, f"not in package.xml: {sorted(imported - deps)}"


def test_there_are_replay_and_sim_launch_files() -> None:
    assert {REPO / "launch" / n for n in ("replay.launch.py", "sim.launch.py")} <= set(
        LAUNCH_FILES)


def _node_specs() -> dict[str, set[str]]:
    """Parameter names each of our nodes declares (their spec tables), plus use_sim_time."""
    from edge_perception.nodes import camera_node, detector_params, sim_node, uploader_node

    return {name: {s.name for s in mod.SPECS} | {"use_sim_time"} for name, mod in (
        ("camera_node", camera_node), ("detector_node", detector_params),
        ("sample_uploader_node", uploader_node), ("sim_node", sim_node))}


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_parameter_names_exist(path: Path) -> None:
    """Every parameter a launch file sets on one of our nodes - in the params files it names
    and in literal dicts - is one that node declares."""
    tree = ast.parse(path.read_text(), filename=str(path))
    known = _node_specs()
    for node, names in _param_sections(tree).items():
        if node in known:
            assert names <= known[node], f"{node}: unknown {sorted(names - known[node])}"
    for call in ast.walk(tree):
        if not (isinstance(call, ast.Call) and getattr(call.func, "id", "") in ("Node",
                                                                               "LifecycleNode")):
            continue
        kw = {k.arg: k.value for k in call.keywords}
        name = kw["name"].value if isinstance(kw.get("name"), ast.Constant) else None
        for d in ast.walk(kw.get("parameters", ast.List(elts=[]))):
            if isinstance(d, ast.Dict) and name in known:
                keys = {k.value for k in d.keys if isinstance(k, ast.Constant)}
                assert keys <= known[name], f"{name}: unknown {sorted(keys - known[name])}"


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_commands_parse(path: Path) -> None:
    """ExecuteProcess commands: `edge-perception SUB ...` is a console script whose
    subcommand's own parser accepts the options given (substitutions → placeholders)."""
    from edge_perception.cli import COMMANDS

    tree = ast.parse(path.read_text(), filename=str(path))
    for call in ast.walk(tree):
        if not (isinstance(call, ast.Call) and getattr(call.func, "id", "") == "ExecuteProcess"):
            continue
        cmd = next(k.value for k in call.keywords if k.arg == "cmd")
        assert isinstance(cmd, ast.List)
        argv = [e.value if isinstance(e, ast.Constant) else "1.0" for e in cmd.elts]
        if argv[0] != "edge-perception":
            assert argv[0] == "gz", argv  # gz sim (Gazebo), outside this package
            continue
        assert "edge-perception" in _console_scripts()
        sub = " ".join(argv[1:3])
        assert sub in COMMANDS, sub
        import importlib

        parser = importlib.import_module(COMMANDS[sub][0]).get_args_parser()
        parser.parse_args(argv[3:])  # SystemExit on an unknown option


def test_worlds_are_installed_by_setup_py() -> None:
    """sim.launch.py finds the world and bridge config in share/edge_perception/worlds."""
    from glob import glob

    tree = ast.parse((REPO / "setup.py").read_text())
    installed: list[str] = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Tuple) and len(node.elts) == 2
                and ast.unparse(node.elts[0]).rstrip("'\"").endswith("/worlds")):
            expr = ast.Expression(node.elts[1])
            installed += eval(compile(expr, "setup.py", "eval"),  # noqa: S307 - our setup.py
                              {"glob": lambda p: sorted(glob(str(REPO / p)))})
    names = {Path(p).name for p in installed}
    assert {"road_hazards.sdf", "ros_gz_bridge.yaml", "ground_truth.yaml"} <= names, (
        "setup.py data_files must install worlds/: "
        '(f"share/{package_name}/worlds", glob("worlds/*.sdf") + glob("worlds/*.yaml"))')


@pytest.mark.parametrize("name", ["params.yaml", "replay.yaml", "sim.yaml"])
def test_params_file_is_a_valid_ros_params_file(name: str) -> None:
    """rcl's own parser (via rclpy.init --params-file) accepts the params files."""
    import rclpy
    from rclpy.context import Context

    ctx = Context()
    rclpy.init(args=["--ros-args", "--params-file", str(REPO / "config" / name)],
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
