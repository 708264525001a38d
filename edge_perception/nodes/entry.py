"""The shared `main()` of a node console script: init, build, spin, always clean up.

Configuration errors (`ValueError`: bad parameter, missing file, malformed calibration) print
one line `<prog>: error: ...` and return 2. Ctrl-C / SIGTERM return 0. `with rclpy.init()` is
avoided on purpose (not available on Humble/Jazzy, which vehicles may run).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

from .qos import use_fastdds_profile

__all__ = ["is_normal_stop", "run_node", "shutdown_quietly"]


def is_normal_stop(error: BaseException) -> bool:
    """True for the ways a spin ends when the process is told to stop: Ctrl-C
    (KeyboardInterrupt), rclpy's ExternalShutdownException, and the RCLError rclpy raises when
    a signal shuts the context down just as an executor builds its wait set (`... context is
    not valid`). Anything else is a failure."""
    if isinstance(error, (KeyboardInterrupt, ExternalShutdownException)):
        return True
    return type(error).__name__ == "RCLError" and not rclpy.ok()


def shutdown_quietly(nodes: Iterable[Node]) -> None:
    """Destroy `nodes` and shut rclpy down; a late second Ctrl-C cannot interrupt it (rclpy
    chains SIGINT to Python, so KeyboardInterrupt can arrive after spin already returned)."""
    pending = list(nodes)
    for _ in range(5):
        try:
            while pending:
                pending[-1].destroy_node()
                pending.pop()
            rclpy.try_shutdown()
            return
        except KeyboardInterrupt:
            continue


def run_node(factory: Callable[[], Node], args: list[str] | None, prog: str) -> int:
    use_fastdds_profile()
    rclpy.init(args=args)
    node: Node | None = None
    try:
        try:
            node = factory()
        except ValueError as e:
            print(f"{prog}: error: {e}", file=sys.stderr)
            return 2
        rclpy.spin(node)
    except BaseException as e:
        if not is_normal_stop(e):
            raise
    finally:
        shutdown_quietly([node] if node is not None else [])
    return 0
