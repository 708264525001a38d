#!/usr/bin/env python3
"""Measure the shipped models and write models/metrics.json (read by the model card and by the
regression tests, whose floors derive from these numbers).

    python scripts/model_report.py --data ../shared/datasets/road_hazards/data.yaml
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge_perception.detect.detector import DetectorConfig, load_detector  # noqa: E402
from edge_perception.detect.eval_cli import evaluate, plot_pr_curve  # noqa: E402
from edge_perception.train.data import read_data_yaml  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", required=True, help="YOLO data.yaml with a val split")
    p.add_argument("--models", default=str(REPO / "models"))
    p.add_argument("--out", default=str(REPO / "models" / "metrics.json"))
    a = p.parse_args()
    models = Path(a.models)
    sets = {"val": (read_data_yaml(a.data), "val"),
            "sample": (read_data_yaml(REPO / "data/sample/data.yaml"), "val")}
    report: dict[str, object] = {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                 "data": a.data}
    for precision, name in (("fp32", "hazard_fp32.pt"), ("int8", "hazard_int8.ts")):
        det = load_detector(models / name, "cpu", DetectorConfig(score_threshold=0.001))
        thr = float(det.model.meta.get("score_threshold", 0.35))
        det.warmup()
        entry: dict[str, object] = {"file": name, "sha256": det.model.sha256,
                                    "score_threshold": thr}
        if precision == "int8":
            meta = det.model.meta
            entry["quantization"] = {k: meta[k] for k in (
                "method", "backend", "qat_steps", "qat_lr", "qat_batch_size",
                "calibration_images", "float_modules") if k in meta}
        for key, (spec, split) in sets.items():
            images = spec.images(split)
            t0 = time.perf_counter()
            m = evaluate(det, images, spec.names, thr)
            entry[key] = {**m.to_json(), "ms_per_image": round(
                1000 * (time.perf_counter() - t0) / len(images), 1)}
            if key == "val":
                plot_pr_curve(m, models / f"pr_curve_{precision}.png",
                              f"{name} on val ({m.images} images)")
            print(precision, key, json.dumps(entry[key]), flush=True)
        report[precision] = entry
    Path(a.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
