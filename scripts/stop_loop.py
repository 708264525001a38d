#!/usr/bin/env python3
"""Stop `edge-perception run` again and again: `scripts/stop_loop.py --trials 200 --load 3`.

Each trial starts `edge-perception run` on config/params.yaml (camera_node + detector_node
unless --nodes says otherwise), waits until frames flow (the first `frames ` line) plus a
random extra delay, sends SIGINT or SIGTERM (alternating), and checks the process exits 0
within --timeout seconds, prints its `stopped:` line and no traceback. `--load N` keeps N
busy-looping processes beside it: a shutdown race (CI once saw exit status -11 on Ctrl-C)
shows up more often on a loaded machine. Prints one JSON line; exits 1 on any failure and
keeps each failing trial's output under --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _busy() -> None:
    while True:
        pass


def one_trial(repo: Path, config: str, nodes: list[str], sig: signal.Signals,
              extra_delay: float, timeout: float) -> tuple[bool, int | None, str]:
    env = dict(os.environ, PYTHONFAULTHANDLER="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "edge_perception.cli", "run", "--config", config,
           "--strip", "", "--nodes", *nodes]
    proc = subprocess.Popen(cmd, cwd=repo, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if line.startswith("frames "):
                break
        time.sleep(extra_delay)
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        out += f"\n[no exit within {timeout} s of {sig.name}]"
    output = "".join(seen) + out
    ok = (proc.returncode == 0 and "stopped: " in output and "Traceback" not in output
          and "Fatal Python error" not in output)
    return ok, proc.returncode, output


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=100)
    p.add_argument("--config", default="config/params.yaml", help="params file (default: "
                   "%(default)s, relative to --repo)")
    p.add_argument("--nodes", nargs="+", default=["camera_node", "detector_node"])
    p.add_argument("--load", type=int, default=0, help="busy-looping processes beside it")
    p.add_argument("--max-delay", type=float, default=1.5,
                   help="random extra wait after frames flow, before the signal (s)")
    p.add_argument("--timeout", type=float, default=30.0, help="exit deadline after the signal")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repo", type=Path, default=REPO, help="checkout to run (default: this one)")
    p.add_argument("--keep", type=Path, default=Path("runs/stop_loop"),
                   help="folder for the output of failing trials")
    args = p.parse_args()
    import multiprocessing as mp

    rng = random.Random(args.seed)
    hogs = [mp.Process(target=_busy, daemon=True) for _ in range(args.load)]
    for h in hogs:
        h.start()
    t0 = time.monotonic()
    failures: list[dict[str, object]] = []
    try:
        for i in range(args.trials):
            sig = (signal.SIGINT, signal.SIGTERM)[i % 2]
            ok, rc, output = one_trial(args.repo, args.config, args.nodes, sig,
                                       rng.uniform(0.0, args.max_delay), args.timeout)
            if not ok:
                args.keep.mkdir(parents=True, exist_ok=True)
                path = args.keep / f"trial{i}.txt"
                path.write_text(output)
                failures.append({"trial": i, "signal": sig.name, "returncode": rc,
                                 "output": str(path)})
    finally:
        for h in hogs:
            h.terminate()
    print(json.dumps({"trials": args.trials, "nodes": args.nodes, "load": args.load,
                      "failures": failures, "seconds": round(time.monotonic() - t0, 1)}))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
