"""`edge-perception bag record`: record topics to a rosbag2 bag (MCAP or sqlite3).

    edge-perception bag record /camera/image_raw /road_hazards -o run1 --storage mcap
    edge-perception bag record --all --duration 30

Ctrl-C (SIGINT) or SIGTERM stops recording and finalises the bag (metadata.yaml, MCAP
summary, sqlite commit). SIGKILL (or power loss) cannot be handled: the bag has no
metadata.yaml; an MCAP file keeps the chunks already flushed (about every 1 MiB; `mcap
recover` reads them), a sqlite3 bag loses everything, since rosbags commits once at close.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path

__all__ = ["get_args_parser", "main"]


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="record topics to a rosbag2", add_help=add_help)
    p.add_argument("topics", nargs="*", help="topics to record (default with --all: every one)")
    p.add_argument("-a", "--all", action="store_true", help="record every discovered topic")
    p.add_argument("-x", "--exclude", nargs="*", default=[], help="topics --all leaves out")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="bag folder to create (default rosbag2_YYYY_MM_DD-HH_MM_SS)")
    p.add_argument("-s", "--storage", choices=("mcap", "sqlite3"), default="mcap")
    p.add_argument("-d", "--duration", type=float, default=None,
                   help="stop after this many seconds (default: until Ctrl-C)")
    p.add_argument("--discovery-period", type=float, default=0.2,
                   help="seconds between looks for new topics and publishers")
    return p  # fmt: skip


def main(args: argparse.Namespace) -> int:
    if not args.topics and not args.all:
        print("give topics to record or --all")
        return 2
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from edge_perception.nodes.bag_recorder import BagRecorder, RecordOptions
    from edge_perception.nodes.entry import init_rclpy, stop_on_signals

    output = args.output or Path(datetime.now().strftime("rosbag2_%Y_%m_%d-%H_%M_%S"))
    resolved = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    options = RecordOptions(
        output=output,
        topics=tuple(args.topics) if not args.all else (),
        storage=args.storage,
        duration_s=args.duration,
        discovery_period_s=args.discovery_period,
        exclude=tuple(args.exclude),
        custom_data={
            "edge_perception.args": json.dumps(resolved, sort_keys=True),
            "edge_perception.recorded_at": datetime.now(timezone.utc).isoformat(),  # noqa: UP017 (3.10)
        },
    )
    # Our own SIGINT/SIGTERM handling: finish the spin step, then finalise the bag.
    init_rclpy([])
    node = None
    with stop_on_signals() as stop:
        try:
            node = BagRecorder(options)
            executor = SingleThreadedExecutor()
            executor.add_node(node)
            print(f"recording to {output} ({args.storage}); Ctrl-C to stop", flush=True)
            while not stop.is_set() and not node.done:
                executor.spin_once(timeout_sec=0.1)
        finally:
            if node is not None:
                node.close()
                counts = node.counts
                node.destroy_node()
                total = sum(counts.values())
                print(f"wrote {total} messages to {output}: {json.dumps(counts)}", flush=True)
            rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(get_args_parser().parse_args()))
