"""`edge-perception`: one command-line tool with a subcommand per job.

Each subcommand lives in its own module exposing `get_args_parser(add_help)` and `main(args)`
(the torchvision-references shape); modules are imported only when their subcommand runs, so
`edge-perception --help` is fast and a missing optional dependency only affects its command.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main", "COMMANDS"]

# name → (module, one-line help). Nested commands use "group name".
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("edge_perception.launcher", "start the configured nodes in one process"),
    "train": ("edge_perception.train.cli", "train the detector on YOLO-format data"),
    "eval": ("edge_perception.detect.eval_cli", "COCO metrics of a model on a YOLO data.yaml"),
    "quantize": ("edge_perception.detect.quantize_cli", "INT8 quantization and ONNX export"),
    "bench preprocess": ("edge_perception.bench.preprocess", "fused vs OpenCV preprocessing"),
    "bench model": ("edge_perception.bench.model", "FP32 vs INT8 latency"),
    "bench pipeline": ("edge_perception.bench.pipeline", "camera → detector over ROS"),
    "bench upload": ("edge_perception.bench.upload", "sample store and uploader"),
    "bag record": ("edge_perception.replay.record_cli", "record topics to a rosbag2"),
    "bag play": ("edge_perception.replay.play_cli", "play a rosbag2 into the graph"),
    "bag eval": ("edge_perception.replay.eval_cli", "detector metrics on a bag of images"),
    "sim": ("edge_perception.replay.sim_cli", "publish rendered road frames with ground truth"),
    "ingest-server": ("edge_perception.learn.ingest_server", "cloud side: receive batches"),
    "dataset-from-ingest": ("edge_perception.learn.dataset_cli", "ingested batches → YOLO data"),
}


def _split(argv: list[str]) -> tuple[str | None, list[str]]:
    for n in (2, 1):
        name = " ".join(argv[:n])
        if len(argv) >= n and name in COMMANDS:
            return name, argv[n:]
    return None, argv


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: edge-perception COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "edge-perception COMMAND --help for the options of one command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    name, rest = _split(argv)
    if name is None:
        print(_usage(), file=sys.stdout if argv[:1] in (["-h"], ["--help"], []) else sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    module = importlib.import_module(COMMANDS[name][0])
    parser: argparse.ArgumentParser = module.get_args_parser()
    parser.prog = f"edge-perception {name}"
    args = parser.parse_args(rest)
    try:
        return int(module.main(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
