"""Project rules that keep the package usable: ROS only at the edges, docs in step with code."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import edge_perception

REPO = Path(__file__).resolve().parents[1]
# ROS programs outside nodes/: command-line tools that run a graph.
ROS_PROGRAMS = {"edge_perception.launcher", "edge_perception.replay.record_cli",
                "edge_perception.replay.play_cli", "edge_perception.replay.sim_cli",
                "edge_perception.bench.pipeline", "edge_perception.cli"}


def _library_modules() -> list[str]:
    mods = []
    for m in pkgutil.walk_packages(edge_perception.__path__, "edge_perception."):
        if ".nodes" in m.name or m.name in ROS_PROGRAMS:
            continue
        mods.append(m.name)
    return mods


def test_library_never_imports_rclpy_or_messages():
    mods = _library_modules()
    assert len(mods) > 30
    code = ("import sys\n" + "".join(f"import {m}\n" for m in mods) +
            "bad = sorted(k for k in sys.modules if k == 'rclpy' or k.endswith('_msgs'))\n"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "", f"library imported ROS: {out.stdout}"


def test_readme_parameter_tables_match_the_nodes():
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "param_tables.py"), "--check"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_readme_two_commands_and_ci():
    readme = (REPO / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    assert "make test" in (REPO / ".ci" / "run").read_text()
    makefile = (REPO / "Makefile").read_text()
    assert "\nrun: setup" in makefile and "\ntest: setup" in makefile
