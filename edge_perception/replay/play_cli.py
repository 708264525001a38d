"""`edge-perception bag play`: publish a rosbag2 bag with its original timing.

    edge-perception bag play run1 --rate 2 --loop --clock 100 --remap /a:=/b
    edge-perception bag play frames --deterministic --ack-topic /road_hazards

With --deterministic each image waits for the consumer's answer (a message on --ack-topic
whose header.stamp equals the image's) before the next is sent, so every frame is processed
and a replay gives the same outputs run after run; exit status 1 if any image went
unanswered within --ack-timeout. Ctrl-C (or SIGTERM) stops playback cleanly (status 0).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["get_args_parser", "main", "parse_remaps"]


def parse_remaps(items: list[str]) -> dict[str, str]:
    remap = {}
    for item in items:
        old, sep, new = item.partition(":=")
        if not sep or not old or not new:
            raise ValueError(f"remap {item!r} is not OLD:=NEW")
        remap[old] = new
    return remap


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="play a rosbag2 into the graph", add_help=add_help)
    p.add_argument("bag", type=Path, help="bag folder (or .mcap/.db3 file)")
    p.add_argument("-r", "--rate", type=float, default=1.0, help="playback speed factor")
    p.add_argument("-l", "--loop", action="store_true", help="play again and again")
    p.add_argument("--start-offset", type=float, default=0.0,
                   help="skip the first SECONDS of the bag")
    p.add_argument("--clock", type=float, nargs="?", const=40.0, default=0.0, metavar="HZ",
                   help="publish /clock with bag time (default 40 Hz when given)")
    p.add_argument("--topics", nargs="*", default=None, help="play only these topics")
    p.add_argument("--remap", "-m", nargs="*", default=[], metavar="OLD:=NEW")
    p.add_argument("--deterministic", action="store_true",
                   help="wait for each image's answer on --ack-topic before the next")
    p.add_argument("--ack-topic", default="/road_hazards")
    p.add_argument("--ack-type", default="edge_perception_msgs/msg/RoadHazardArray")
    p.add_argument("--ack-timeout", type=float, default=5.0, help="seconds per image")
    p.add_argument("--wait-for-subscribers", type=float, default=0.0, metavar="SECONDS",
                   help="first wait up to SECONDS for a subscriber on each image topic (each "
                        "topic in a bag without images); deterministic: 10 by default")
    return p  # fmt: skip


def main(args: argparse.Namespace) -> int:
    import rclpy

    from edge_perception.nodes.bag_player import PlayOptions, run_player
    from edge_perception.nodes.entry import init_rclpy, stop_on_signals

    options = PlayOptions(
        bag=args.bag,
        rate=args.rate,
        loops=0 if args.loop else 1,
        start_offset_s=args.start_offset,
        clock_hz=args.clock,
        topics=tuple(args.topics) if args.topics else None,
        remap=parse_remaps(args.remap),
        deterministic=args.deterministic,
        ack_topic=args.ack_topic,
        ack_type=args.ack_type,
        ack_timeout_s=args.ack_timeout,
        wait_for_subscribers_s=args.wait_for_subscribers,
    )
    # Our own SIGINT/SIGTERM handling: stop after the current message, print the stats.
    init_rclpy([])
    try:
        with stop_on_signals() as stop:
            stats = run_player(options, stop=stop)
    finally:
        rclpy.try_shutdown()
    summary = {k: v for k, v in vars(stats).items() if k != "answers"}
    print(json.dumps(summary), flush=True)
    if not stats.matched or (args.deterministic and stats.unacknowledged):
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(get_args_parser().parse_args()))
