#!/usr/bin/env python3
"""Long kill -9 soak of the uploader: `scripts/kill_loop.py --trials 500`.

Each trial starts an uploader process that stores and uploads samples to a real ingest server
on 127.0.0.1 (behind a proxy that loses some responses), kills it with SIGKILL at a random
moment, and starts the next one on the same store. At the end the store is drained and the
server's batches are checked: 0 lost acknowledged samples, 0 duplicates. Prints one JSON line;
exits 1 on any loss or duplicate.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from edge_perception.learn.crashtest import run_kill_loop


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--per-trial", type=int, default=6, help="samples each child stores")
    p.add_argument("--max-delay", type=float, default=0.35, help="latest kill after start (s)")
    p.add_argument("--workdir", help="keep the store and server folders here")
    args = p.parse_args()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        r = run_kill_loop(args.trials, work, seed=args.seed, per_trial=args.per_trial,
                          max_delay_s=args.max_delay)
    r["seconds"] = round(time.monotonic() - t0, 1)
    bad = len(r["lost"]) + len(r["duplicated"]) + len(r["unexpected"])
    print(json.dumps(r))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
