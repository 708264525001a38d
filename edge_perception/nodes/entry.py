"""How a process that runs nodes starts and stops: init, own signal handling, spin, clean up.

rclpy's own SIGINT/SIGTERM handler shuts every context down from a thread of its own the
moment the signal arrives, while node threads (camera capture, detector, uploader) may still be
publishing into it, and the clean-up then destroys publishers of a shut-down context: that
is how `edge-perception run` died with SIGSEGV in `Publisher.destroy` after Ctrl-C (once in
CI; 1 of 280 stops in `scripts/stop_loop.py` on a loaded machine). So these processes init rclpy
with `signal_handler_options=NO` and let SIGINT/SIGTERM only set a `threading.Event`
(`stop_on_signals`); the spin loop sees it within 0.1 s, then the nodes are destroyed (each
stops and joins its threads) and only then is the context shut down.

Configuration errors (`ValueError`: bad parameter, missing file, malformed calibration) print
one line `<prog>: error: ...` and return 2. Ctrl-C / SIGTERM return 0. `with rclpy.init()` is
avoided on purpose (not available on Humble/Jazzy, which vehicles may run).
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from .qos import use_fastdds_profile

__all__ = ["init_rclpy", "is_normal_stop", "run_node", "shutdown_quietly", "stop_on_signals"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def init_rclpy(args: list[str] | None = None) -> str | None:
    """Our FastDDS profile (`use_fastdds_profile`), then `rclpy.init` WITHOUT rclpy's signal
    handlers: pair it with `stop_on_signals`. Returns the FastDDS profile in effect."""
    profile = use_fastdds_profile()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    return profile


@contextmanager
def stop_on_signals(stop: threading.Event | None = None) -> Iterator[threading.Event]:
    """While inside, SIGINT and SIGTERM set `stop` (a new Event if none) and nothing else: no
    KeyboardInterrupt in the middle of a callback or of the clean-up. The previous handlers come
    back on exit. Off the main thread (where Python cannot set handlers) only yields `stop`."""
    stop = stop if stop is not None else threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda *_: stop.set())
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def is_normal_stop(error: BaseException) -> bool:
    """True for the ways a spin ends when the process is told to stop: Ctrl-C
    (KeyboardInterrupt), rclpy's ExternalShutdownException, and the RCLError rclpy raises when
    a signal shuts the context down just as an executor builds its wait set (`... context is
    not valid`; only where rclpy's own signal handlers are installed). Anything else is a
    failure."""
    if isinstance(error, (KeyboardInterrupt, ExternalShutdownException)):
        return True
    return type(error).__name__ == "RCLError" and not rclpy.ok()


def shutdown_quietly(nodes: Iterable[Node]) -> None:
    """Destroy `nodes` last-first (each stops its own threads), then shut rclpy down. A node
    whose destroy_node fails costs one line on stderr, not the others' clean-up."""
    for node in reversed(list(nodes)):
        try:
            node.destroy_node()
        except Exception as e:  # noqa: BLE001 - shutting down anyway; say what failed
            print(f"warning: destroying {node.get_name()}: {type(e).__name__}: {e}",
                  file=sys.stderr)
    rclpy.try_shutdown()


def run_node(factory: Callable[[], Node], args: list[str] | None, prog: str) -> int:
    """The `main()` of a one-node console script (`ros2 run edge_perception <prog>`)."""
    init_rclpy(args)
    node: Node | None = None
    executor = SingleThreadedExecutor()
    with stop_on_signals() as stop:
        try:
            try:
                node = factory()
            except ValueError as e:
                print(f"{prog}: error: {e}", file=sys.stderr)
                return 2
            executor.add_node(node)
            while not stop.is_set() and rclpy.ok():
                executor.spin_once(timeout_sec=0.1)
        except BaseException as e:
            if not is_normal_stop(e):
                raise
        finally:
            executor.shutdown(timeout_sec=2.0)
            shutdown_quietly([node] if node is not None else [])
    return 0
