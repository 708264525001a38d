"""`edge-perception run`: params-file parsing and a real in-process run."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from edge_perception.launcher import NODES, get_args_parser, load_params_file

REPO = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).with_name("edge-perception")


def test_repo_params_file_has_a_camera_section() -> None:
    sections = load_params_file(REPO / "config" / "params.yaml")
    cam = sections["camera_node"]
    assert (REPO / cam["source"]).is_dir() and (REPO / cam["calibration_file"]).is_file()
    assert "camera_node" in NODES


def test_wildcard_nested_and_namespaced_sections(tmp_path: Path) -> None:
    p = tmp_path / "p.yaml"
    p.write_text("""
/**:
  ros__parameters: {use_sim_time: false, rate: 1.0}
/camera_node:
  ros__parameters:
    rate: 5.0
    qos_overrides:
      /image_raw:
        publisher: {reliability: best_effort}
other:
  ros__parameters:
""")
    s = load_params_file(p)
    assert s["camera_node"] == {"use_sim_time": False, "rate": 5.0,
                                "qos_overrides./image_raw.publisher.reliability": "best_effort"}
    assert s["other"] == {"use_sim_time": False, "rate": 1.0}


@pytest.mark.parametrize("text, words", [
    ("camera_node: {rate: 1}\n", "ros__parameters"), ("[1, 2]\n", "mapping"),
    ("camera_node: {ros__parameters: [1]}\n", "must be a mapping"), ("a: [\n", "YAML")])
def test_malformed_params_file(tmp_path: Path, text: str, words: str) -> None:
    p = tmp_path / "p.yaml"
    p.write_text(text)
    with pytest.raises(ValueError, match=words):
        load_params_file(p)


def test_args_parser() -> None:
    a = get_args_parser().parse_args(["--config", "x.yaml", "--duration", "2.5"])
    assert (a.config, a.duration, a.nodes, a.topic) == ("x.yaml", 2.5, None, "/image_raw")


def test_run_counts_frames_and_exits_zero() -> None:
    r = subprocess.run([str(CLI), "run", "--config", "config/params.yaml", "--duration", "3",
                        "--nodes", "camera_node"],
                       capture_output=True, text=True, timeout=60, cwd=REPO)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    counts = [int(x.split()[1]) for x in lines if x.startswith("frames ")]
    assert len(counts) >= 2 and counts == sorted(counts) and counts[-1] >= 10, r.stdout
    assert "fps)" in lines[-1] and lines[-1].startswith("stopped: ")
    assert "config/fastdds.xml" in r.stdout  # the profile was applied
    assert "Traceback" not in r.stderr and "never retrieved" not in r.stderr


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_run_stops_cleanly_on_signal(sig: str) -> None:
    import signal
    import time

    proc = subprocess.Popen([str(CLI), "run", "--config", "config/params.yaml", "--nodes",
                             "camera_node"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        line = ""
        while time.monotonic() < deadline and not line.startswith("frames "):
            line = proc.stdout.readline()
        proc.send_signal(getattr(signal, sig))
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "stopped: " in out and "Traceback" not in err


@pytest.mark.slow
def test_stop_loop_script_quick() -> None:
    """The quick version of `scripts/stop_loop.py` (camera + detector, stopped by SIGINT and
    SIGTERM at random moments while a busy loop loads the machine): every trial exits 0. CI
    once saw `edge-perception run` die with SIGSEGV on Ctrl-C, when rclpy's own signal handler
    shut the context down under the capture thread."""
    import json

    r = subprocess.run([sys.executable, str(REPO / "scripts" / "stop_loop.py"), "--trials", "4",
                        "--load", "1", "--keep", "runs/stop_loop_test"],
                       capture_output=True, text=True, timeout=400, cwd=REPO)
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert r.returncode == 0 and result["failures"] == [], r.stdout + r.stderr
    assert result["trials"] == 4


def test_stop_on_signals_sets_the_event_and_restores_handlers() -> None:
    """Real signals to this process: inside the block they only set the event (no
    KeyboardInterrupt, rclpy's context untouched); afterwards the old handlers are back."""
    import os
    import signal
    import time

    from edge_perception.nodes.entry import stop_on_signals

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for sig in (signal.SIGINT, signal.SIGTERM):
        with stop_on_signals() as stop:
            assert not stop.is_set()
            os.kill(os.getpid(), sig)
            deadline = time.monotonic() + 5
            while not stop.is_set() and time.monotonic() < deadline:
                time.sleep(0.01)  # Python runs the handler between bytecodes
            assert stop.is_set()
        assert {s: signal.getsignal(s) for s in before} == before


def test_bad_config_is_a_one_line_error(tmp_path: Path) -> None:
    p = tmp_path / "p.yaml"
    p.write_text("camera_node:\n  ros__parameters:\n    source: /no/such/folder/\n")
    r = subprocess.run([str(CLI), "run", "--config", str(p), "--duration", "1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "camera_node: source not found" in r.stderr
    r = subprocess.run([str(CLI), "run", "--config", str(tmp_path / "none.yaml")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "params file not found" in r.stderr


def test_lifecycle_nodes_are_configured_and_activated_by_the_launcher(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """A real rclpy LifecycleNode registered with one line is driven configure → activate by
    the launcher (never by itself) and deactivated at the end; its params come from the file."""
    from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn

    from edge_perception import launcher

    seen: list[str] = []

    class Probe(LifecycleNode):
        def __init__(self, node_name: str, **kw: object) -> None:
            super().__init__(node_name, **kw)
            self.declare_parameter("gain", 0.0)

        def on_configure(self, state: object) -> TransitionCallbackReturn:
            seen.append(f"configure gain={self.get_parameter('gain').value}")
            return TransitionCallbackReturn.SUCCESS

        def on_activate(self, state: object) -> TransitionCallbackReturn:
            seen.append("activate")
            return super().on_activate(state)

        def on_deactivate(self, state: object) -> TransitionCallbackReturn:
            seen.append("deactivate")
            return super().on_deactivate(state)

    monkeypatch.setitem(launcher.NODES, "probe", Probe)
    monkeypatch.setenv("FASTDDS_DEFAULT_PROFILES_FILE", str(REPO / "config" / "fastdds.xml"))
    p = tmp_path / "p.yaml"
    p.write_text("probe:\n  ros__parameters: {gain: 2.5}\n")
    args = get_args_parser().parse_args(["--config", str(p), "--duration", "1", "--quiet"])
    assert launcher.main(args) == 0
    assert seen == ["configure gain=2.5", "activate", "deactivate"]
    assert "running probe" in capsys.readouterr().out


@pytest.mark.parametrize("entry, sig", [("launcher", "SIGINT"), ("launcher", "SIGTERM"),
                                        ("run_node", "SIGINT"), ("run_node", "SIGTERM")])
def test_a_signal_stops_the_nodes_before_the_context_shuts_down(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entry: str, sig: str) -> None:
    """A real signal to this process in the middle of a run, through the launcher and through
    a node console script's main (`run_node`): the spin loop ends, the node is destroyed while
    the ROS context is still valid (rclpy's own handler would have shut it down first: the
    SIGSEGV in Publisher.destroy), and the old handlers come back."""
    import os
    import signal
    import threading
    import time

    from rclpy.node import Node
    from std_msgs.msg import Header

    from edge_perception import launcher
    from edge_perception.nodes.entry import run_node

    sig = getattr(signal, sig)
    context_ok_at_destroy: list[bool] = []

    class Probe(Node):  # publishes from a thread of its own, as camera_node does
        def __init__(self, node_name: str, **kw: object) -> None:
            super().__init__(node_name, **kw)
            self.pub = self.create_publisher(Header, "probe", 10)
            self.halt = threading.Event()
            self.thread = threading.Thread(target=self._publish, daemon=True)
            self.thread.start()
            threading.Timer(1.0, os.kill, (os.getpid(), sig)).start()

        def _publish(self) -> None:
            while not self.halt.wait(0.001):
                self.pub.publish(Header(frame_id="x" * 1000))

        def destroy_node(self) -> None:
            context_ok_at_destroy.append(self.context.ok())
            self.halt.set()
            self.thread.join()
            super().destroy_node()

    monkeypatch.setitem(launcher.NODES, "probe", Probe)
    monkeypatch.setenv("FASTDDS_DEFAULT_PROFILES_FILE", str(REPO / "config" / "fastdds.xml"))
    p = tmp_path / "p.yaml"
    p.write_text("probe:\n  ros__parameters: {}\n")
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    args = get_args_parser().parse_args(["--config", str(p), "--duration", "30", "--quiet",
                                         "--strip", ""])
    t0 = time.monotonic()
    if entry == "launcher":
        assert launcher.main(args) == 0
    else:
        assert run_node(lambda: Probe("probe"), [], "probe") == 0
    assert time.monotonic() - t0 < 15  # the signal ended it, not --duration
    assert context_ok_at_destroy == [True]
    assert {s: signal.getsignal(s) for s in before} == before


def test_unknown_node_and_bad_values(tmp_path: Path) -> None:
    p = tmp_path / "p.yaml"
    p.write_text("camera_node:\n  ros__parameters: {source: data/sample/images, loop: [1, a]}\n")
    r = subprocess.run([str(CLI), "run", "--config", str(p), "--nodes", "nope"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "nope: not a known node" in r.stderr
    r = subprocess.run([str(CLI), "run", "--config", str(p), "--duration", "1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "parameter loop: unsupported value [1, 'a']" in r.stderr, r.stderr


def test_is_normal_stop_tells_the_shutdown_race_from_a_failure() -> None:
    """rclpy's SIGINT handler can shut the context down while an executor builds its wait set;
    rclpy then raises RCLError, which the launcher and node mains treat as a normal stop (CI saw
    it as an exit status 1 with a traceback). Any other error, or an RCLError while the context
    is still up, is a failure."""
    import rclpy
    from rclpy.impl.implementation_singleton import rclpy_implementation

    from edge_perception.nodes.entry import is_normal_stop

    race = rclpy_implementation.RCLError("failed to initialize wait set: the given context is "
                                         "not valid")
    rclpy.init()
    try:
        assert not is_normal_stop(race)
    finally:
        rclpy.shutdown()
    assert is_normal_stop(race)
    assert not is_normal_stop(RuntimeError("boom"))
    assert is_normal_stop(KeyboardInterrupt())


def test_run_with_the_multithreaded_executor_too() -> None:
    r = subprocess.run([str(CLI), "run", "--config", "config/params.yaml", "--nodes",
                        "camera_node", "--duration", "4", "--executor", "multi"], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert re.search(r"stopped: [1-9]\d* frames", r.stdout), r.stdout[-2000:]
