#!/usr/bin/env python3
"""Print (or --check / --write) the README's parameter tables from the nodes' SPECS tables.

The README keeps one table per node between `<!-- params:NODE -->` and `<!-- /params -->`;
`python scripts/param_tables.py --write` regenerates them, and the test suite runs `--check`.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
NODES = {
    "camera_node": "edge_perception.nodes.camera_node",
    "detector_node": "edge_perception.nodes.detector_params",
    "sample_uploader_node": "edge_perception.nodes.uploader_node",
}
_BLOCK = re.compile(r"(<!-- params:(\w+) -->\n)(.*?)(<!-- /params -->)", re.S)


def table(module: str) -> str:
    specs = importlib.import_module(module).SPECS
    rows = ["| parameter | default | range / choices | runtime | description |",
            "| --- | --- | --- | --- | --- |"]
    for s in specs:
        rng = (f"{s.range[0]:g} … {s.range[1]:g}" if s.range else
               ", ".join(s.choices) if s.choices else "")
        default = repr(s.default) if isinstance(s.default, str) else str(s.default)
        desc = s.description.replace("|", "\\|")
        rows.append(f"| `{s.name}` | `{default}` | {rng} | {'no' if s.read_only else 'yes'} "
                    f"| {desc} |")
    return "\n".join(rows) + "\n"


def render(text: str) -> str:
    return _BLOCK.sub(lambda m: m.group(1) + table(NODES[m.group(2)]) + m.group(4), text)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--check", action="store_true", help="exit 1 if the README is stale")
    p.add_argument("--write", action="store_true", help="rewrite the README's tables")
    a = p.parse_args()
    text = README.read_text()
    new = render(text)
    if a.write:
        README.write_text(new)
    elif a.check:
        missing = set(NODES) - set(m.group(2) for m in _BLOCK.finditer(text))
        if missing or new != text:
            print(f"README parameter tables are stale or missing ({sorted(missing)}); run "
                  "python scripts/param_tables.py --write", file=sys.stderr)
            return 1
    else:
        for node, module in NODES.items():
            print(f"### {node}\n\n{table(module)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
