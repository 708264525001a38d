"""`edge-perception run`: the configured nodes in ONE process, from the ROS 2 params file that
launch/vehicle.launch.py also reads, with a live count of camera frames.

Sections of the params file name nodes (`camera_node: {ros__parameters: {...}}`); `/**` applies
to all of them. Every section whose name is in `NODES` is started (or only those given with
`--nodes`) on one executor (single-threaded unless `--executor multi`). Lifecycle nodes are
configured and activated here, then deactivated at the end. Stops on Ctrl-C, SIGTERM or after
`--duration` seconds; exit code 0.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = ["NODES", "get_args_parser", "load_params_file", "main"]

# Node name (= params-file section) → "module:Class" (imported only when started) or the class.
# A class takes `node_name=` plus Node keyword arguments (`parameter_overrides`, ...).
# Add a node with one line here.
NODES: dict[str, str | type] = {
    "camera_node": "edge_perception.nodes.camera_node:CameraNode",
    "detector_node": "edge_perception.nodes.detector_node:DetectorNode",
    "sample_uploader_node": "edge_perception.nodes.uploader_node:UploaderNode",
}


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=add_help)
    parser.add_argument("--config", default="config/params.yaml",
                        help="ROS 2 params file (default: %(default)s)")
    parser.add_argument("--duration", type=float, default=0.0,
                        help="stop after this many seconds (0 = until Ctrl-C)")
    parser.add_argument("--nodes", nargs="+", metavar="NAME",
                        help=f"start only these (known: {', '.join(NODES)})")
    parser.add_argument("--topic", default="/image_raw",
                        help="image topic whose frames are counted (default: %(default)s)")
    parser.add_argument("--hazards-topic", default="/detector_node/hazards",
                        help="hazards to print live (when a detector_node runs)")
    parser.add_argument("--strip", default="runs/run/hazards.png",
                        help="PNG strip of annotated frames written at the end ('' = none)")
    parser.add_argument("--executor", choices=("single", "multi"), default="single",
                        help="rclpy executor: single (default; see below) or multi "
                             "(MultiThreadedExecutor, 4 threads)")
    parser.add_argument("--quiet", action="store_true",
                        help="no per-second frame count and no per-hazard lines")
    return parser


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def load_params_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """`{node name: {dotted.param: value}}` with `/**` merged under each node's own values.
    Raises ValueError (one-line message) on a malformed file."""
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ValueError(f"params file not found: {path}") from None
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(doc, Mapping):
        raise ValueError(f"{path}: expected a mapping of node names")
    sections: dict[str, dict[str, Any]] = {}
    for raw_name, body in doc.items():
        name = str(raw_name).lstrip("/") or "/"
        if not isinstance(body, Mapping) or "ros__parameters" not in body:
            raise ValueError(f"{path}: section {raw_name!r} needs a 'ros__parameters' mapping")
        params = body["ros__parameters"] or {}
        if not isinstance(params, Mapping):
            raise ValueError(f"{path}: {raw_name}.ros__parameters must be a mapping")
        sections["/**" if name == "**" else name] = _flatten(params)
    wildcard = sections.pop("/**", {})
    return {name: {**wildcard, **params} for name, params in sections.items()}


def _node_class(target: str | type) -> type:
    if isinstance(target, type):
        return target
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def _parameter(cls: Any, name: str, value: Any) -> Any:
    try:
        return cls(name, value=value)
    except TypeError:  # e.g. an empty or mixed-type list
        raise ValueError(f"parameter {name}: unsupported value {value!r}") from None


def main(args: argparse.Namespace) -> int:
    try:
        sections = load_params_file(args.config)
    except ValueError as e:
        print(f"edge-perception run: error: {e}", file=sys.stderr)
        return 2
    names = list(args.nodes) if args.nodes else [n for n in sections if n in NODES]
    unknown = [n for n in names if n not in NODES or n not in sections]
    if unknown:
        print(f"edge-perception run: error: {', '.join(unknown)}: not a known node with a "
              f"section in {args.config} (known: {', '.join(NODES)})", file=sys.stderr)
        return 2
    for skipped in (n for n in sections if n not in NODES):
        print(f"note: section {skipped!r} has no node in this launcher yet; skipped")

    from edge_perception.nodes.entry import init_rclpy, stop_on_signals

    profile = init_rclpy([])
    print(f"FastDDS profile: {profile or 'FastDDS defaults'}")
    with stop_on_signals() as stop:
        return _run(args, names, sections, stop)


def _run(args: argparse.Namespace, names: list[str], sections: dict[str, dict[str, Any]],
         stop: threading.Event) -> int:
    """Start `names`, spin until `stop` is set or `--duration` is over, then clean up."""
    import rclpy
    from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
    from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
    from rclpy.parameter import Parameter

    from edge_perception.nodes.entry import is_normal_stop, shutdown_quietly
    from edge_perception.nodes.run_monitor import RunMonitor

    nodes: list[Any] = []
    lifecycle: list[Any] = []
    # One thread by default: every callback here only stores or publishes (work runs on the
    # nodes' own threads), and rclpy's MultiThreadedExecutor (ros2/rclpy#1452) starved image
    # subscriptions in `bench pipeline`: 21.6 of 30 fps taken in, p99 440 ms, vs 30 of 30,
    # p99 79 ms on one thread.
    executor = (MultiThreadedExecutor(num_threads=4) if args.executor == "multi"
                else SingleThreadedExecutor())
    t0, frames = time.monotonic(), 0
    monitor, strip, detecting = None, None, False
    try:
        detecting = "detector_node" in names
        monitor = RunMonitor(args.topic, args.hazards_topic if detecting else None,
                             "/detector_node/debug_image" if detecting and args.strip else None,
                             quiet=args.quiet)
        nodes.append(monitor)
        for name in names:
            try:
                overrides = [_parameter(Parameter, k, v) for k, v in sections[name].items()]
                node = _node_class(NODES[name])(node_name=name, parameter_overrides=overrides)
            except ValueError as e:
                print(f"edge-perception run: error: {name}: {e}", file=sys.stderr)
                return 2
            nodes.append(node)
            if isinstance(node, LifecycleNode):
                for step in (node.trigger_configure, node.trigger_activate):
                    if step() != TransitionCallbackReturn.SUCCESS:
                        print(f"edge-perception run: error: {name}: {step.__name__} failed",
                              file=sys.stderr)
                        return 1
                lifecycle.append(node)
        for node in nodes:
            executor.add_node(node)
        print(f"running {', '.join(names)}; counting frames on {args.topic}"
              + (f" for {args.duration:g} s" if args.duration else "; Ctrl-C to stop"),
              flush=True)
        t0 = last_t = time.monotonic()
        last_n = 0
        end = t0 + args.duration if args.duration > 0 else float("inf")
        while not stop.is_set() and rclpy.ok() and time.monotonic() < end:
            executor.spin_once(timeout_sec=0.1)
            now = time.monotonic()
            if now - last_t >= 1.0:
                frames = monitor.frames
                if not args.quiet:
                    extra = (f", {monitor.hazards} hazards in {monitor.hazard_msgs} processed"
                             if detecting else "")
                    print(f"frames {frames} ({(frames - last_n) / (now - last_t):.1f} fps)"
                          f"{extra}", flush=True)
                last_t, last_n = now, frames
    except BaseException as e:
        if not is_normal_stop(e):
            raise
    finally:
        try:
            for node in lifecycle:
                node.trigger_deactivate()
        except Exception:  # noqa: BLE001 - shutting down anyway
            pass
        # rclpy's Executor.shutdown() does not wait for running callbacks before it destroys
        # its guard condition (the callbacks then raise InvalidHandle): drain a
        # MultiThreadedExecutor's thread pool first.
        pool = getattr(executor, "_executor", None)
        if pool is not None:
            pool.shutdown(wait=True)
        executor.shutdown(timeout_sec=2.0)
        strip = monitor.write_strip(Path(args.strip)) if monitor and args.strip else None
        shutdown_quietly(nodes)
    frames = monitor.frames if monitor else frames
    if strip is not None:
        print(f"annotated frames: {strip}")
    elapsed = time.monotonic() - t0
    print(f"stopped: {frames} frames in {elapsed:.1f} s"
          f" ({frames / elapsed if elapsed > 0 else 0.0:.1f} fps)", flush=True)
    if frames == 0:
        print(f"warning: no frames arrived on {args.topic}", file=sys.stderr)
    return 0
