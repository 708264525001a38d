"""`edge-perception sim`: a simulated drive published as a camera, with ground truth.

    edge-perception sim                                   # 1280x720 at 10 Hz, real time
    edge-perception sim --scale 0.5 --rate 0 --ack-topic /detector_node/hazards

Frames from the library's road renderer (`sim.SimDrive`: a straight road, hazards at known
positions, the Gazebo world's camera by default) on --topic with CameraInfo on its sibling
camera_info, the truth of every hazard in view on /sim/ground_truth (RoadHazardArray) and,
with --clock, /clock. So the whole graph runs with ground truth on machines without Gazebo:
start detector_node with image_topics [/camera/front/image_raw] and the mount of
config/sim.yaml. Prints the stats as one JSON line at the end; Ctrl-C stops cleanly.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

__all__ = ["get_args_parser", "main", "node_parameters"]


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=add_help)
    p.add_argument("--topic", default="/camera/front/image_raw", help="Image topic")
    p.add_argument("--camera-info", default="config/camera_info_sim.yaml",
                   help="camera_info_manager YAML of the simulated camera")
    p.add_argument("--scale", type=float, default=1.0, help="image size factor")
    p.add_argument("--fps", type=float, default=10.0, help="frames per second of drive time")
    p.add_argument("--rate", type=float, default=1.0,
                   help="speed factor (0: as fast as possible)")
    p.add_argument("--speed", type=float, default=10.0, help="vehicle speed (m/s)")
    p.add_argument("--loop", action="store_true", help="drive again and again")
    p.add_argument("--clock", action="store_true", help="publish /clock (drive time)")
    p.add_argument("--no-noise", action="store_true", help="no sensor noise")
    p.add_argument("--frames", type=int, default=0, help="stop after N frames (0: the drive)")
    p.add_argument("--ack-topic", default="",
                   help="wait for each frame's answer (RoadHazardArray, same stamp) here")
    p.add_argument("--ack-timeout", type=float, default=5.0, help="seconds per frame")
    p.add_argument("--wait-for-subscribers", type=float, default=10.0, metavar="SECONDS",
                   help="first wait up to SECONDS for an image subscriber (0: do not wait)")
    return p


def node_parameters(args: argparse.Namespace) -> dict[str, object]:
    """sim_node parameters from the command line (the camera mount stays the node's
    default: the Gazebo world's camera, config/sim.yaml)."""
    return {"image_topic": args.topic, "camera_info_file": args.camera_info,
            "scale": args.scale, "fps": args.fps, "rate": args.rate, "speed_mps": args.speed,
            "loop": args.loop, "publish_clock": args.clock, "noise": not args.no_noise,
            "ack_topic": args.ack_topic, "ack_timeout_s": args.ack_timeout}


def main(args: argparse.Namespace) -> int:
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from edge_perception.nodes.entry import init_rclpy, shutdown_quietly, stop_on_signals
    from edge_perception.nodes.sim_node import SimNode

    init_rclpy([])
    executor = SingleThreadedExecutor()
    spinner = threading.Thread(target=executor.spin, daemon=True)
    node = None
    with stop_on_signals() as stop:  # also during the node's construction and the clean-up
        try:
            try:
                node = SimNode(stop=stop, parameter_overrides=[
                    Parameter(k, value=v) for k, v in node_parameters(args).items()])
            except (ValueError, OSError) as e:
                print(f"edge-perception sim: error: {e}", file=sys.stderr)
                return 2
            executor.add_node(node)
            spinner.start()
            t0 = time.monotonic()
            if args.wait_for_subscribers > 0 and not node.wait_for_consumers(
                    args.wait_for_subscribers):
                print(json.dumps({"error": "no subscriber matched", "waited_s":
                                  round(time.monotonic() - t0, 1)}), flush=True)
                return 1
            stats = node.run(max_frames=args.frames)
            print(json.dumps(vars(stats)), flush=True)
            return 1 if args.ack_topic and stats.unacknowledged else 0
        finally:
            executor.shutdown(timeout_sec=1.0)
            if spinner.is_alive():
                spinner.join(timeout=2.0)
            shutdown_quietly([node] if node is not None else [])


if __name__ == "__main__":
    raise SystemExit(main(get_args_parser().parse_args()))
