"""`edge-perception dataset-from-ingest`: ingested batches → a YOLO dataset for `train`.

    <out>/images/{train,val}/<uid>.jpg
    <out>/labels/{train,val}/<uid>.txt    the car's detections as pseudo-labels
    <out>/review.csv                      one row per image, every one flagged for review
    <out>/data.yaml                       names + split paths (edge_perception.train.data)
    <out>/args.json                       the resolved arguments

Pseudo-labels are the detector's own outputs (score >= --min-score), so they are only as good
as the model that produced them: review.csv lists each image with its reason for being kept,
model version and lowest label score, `needs_review=1`, so a person can correct labels before
training on them. The split is by a hash of the sample uid: stable when new batches arrive.
Re-running adds new samples and skips those already written.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

__all__ = ["get_args_parser", "main", "build_dataset", "iter_ingested"]

REVIEW_FIELDS = ["uid", "split", "vehicle_id", "batch_id", "reason", "model_version", "stamp",
                 "labels", "min_label_score", "needs_review", "image", "label"]


def iter_ingested(ingest_root: Path) -> list[tuple[str, str, Path, dict[str, Any]]]:
    """(vehicle, batch_id, batch folder, sample meta) of every sample, in a stable order."""
    out = []
    for manifest_path in sorted(ingest_root.glob("batches/*/*/manifest.json")):
        folder = manifest_path.parent
        manifest = json.loads(manifest_path.read_text())
        for uid in manifest["samples"]:
            meta = json.loads((folder / "samples" / f"{uid}.json").read_text())
            out.append((folder.parent.name, folder.name, folder, meta))
    return out


def _split(uid: str, val_percent: float) -> str:
    h = int(hashlib.sha256(uid.encode()).hexdigest()[:8], 16) % 10000
    return "val" if h < val_percent * 100 else "train"


def _yolo_lines(meta: dict[str, Any], width: int, height: int, names: list[str],
                min_score: float) -> tuple[list[str], float | None]:
    lines, scores = [], []
    for d in meta.get("detections", []):
        if float(d["score"]) < min_score:
            continue
        name = str(d.get("class_name", ""))
        cls = names.index(name) if name in names else int(d["class_id"])
        if not 0 <= cls < len(names):
            continue
        x0, y0, x1, y1 = (float(v) for v in d["box"])
        x0, x1 = np.clip([x0, x1], 0, width)
        y0, y1 = np.clip([y0, y1], 0, height)
        if x1 - x0 < 1 or y1 - y0 < 1:
            continue
        lines.append(f"{cls} {(x0 + x1) / 2 / width:.6f} {(y0 + y1) / 2 / height:.6f} "
                     f"{(x1 - x0) / width:.6f} {(y1 - y0) / height:.6f}")
        scores.append(float(d["score"]))
    return lines, (min(scores) if scores else None)


def build_dataset(ingest_root: Path, out: Path, names: list[str], min_score: float = 0.25,
                  val_percent: float = 10.0) -> dict[str, int]:
    for split in ("train", "val"):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
    samples = iter_ingested(ingest_root)
    rows: dict[str, dict[str, Any]] = {}
    review = out / "review.csv"
    if review.exists():
        with open(review, newline="") as f:
            rows = {r["uid"]: r for r in csv.DictReader(f)}
    counts = {"samples": len(samples), "new": 0, "skipped": 0, "undecodable": 0, "labels": 0}
    for vehicle, batch_id, folder, meta in samples:
        uid = meta["uid"]
        if uid in rows:
            counts["skipped"] += 1
            continue
        src = folder / "samples" / f"{uid}.jpg"
        img = cv2.imdecode(np.frombuffer(src.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            counts["undecodable"] += 1
            continue
        h, w = img.shape[:2]
        split = _split(uid, val_percent)
        lines, min_lab = _yolo_lines(meta, w, h, names, min_score)
        image = out / "images" / split / f"{uid}.jpg"
        label = out / "labels" / split / f"{uid}.txt"
        shutil.copyfile(src, image)
        label.write_text("".join(line + "\n" for line in lines))
        counts["new"] += 1
        counts["labels"] += len(lines)
        rows[uid] = {"uid": uid, "split": split, "vehicle_id": vehicle, "batch_id": batch_id,
                     "reason": meta.get("reason", ""),
                     "model_version": meta.get("model_version", ""),
                     "stamp": meta.get("stamp", ""), "labels": len(lines),
                     "min_label_score": "" if min_lab is None else f"{min_lab:.3f}",
                     "needs_review": 1, "image": str(image.relative_to(out)),
                     "label": str(label.relative_to(out))}
    tmp = review.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=REVIEW_FIELDS)
        writer.writeheader()
        writer.writerows(rows[u] for u in sorted(rows))
    tmp.replace(review)
    data = {"path": ".", "train": "images/train", "val": "images/val",
            "names": dict(enumerate(names))}
    (out / "data.yaml").write_text("# pseudo-labelled from ingested uploads; see review.csv\n"
                                   + yaml.safe_dump(data, sort_keys=False))
    counts["train"] = sum(1 for r in rows.values() if r["split"] == "train")
    counts["val"] = sum(1 for r in rows.values() if r["split"] == "val")
    return counts


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Ingested batches to a YOLO dataset",
                                add_help=add_help)
    p.add_argument("--ingest", required=True, help="the ingest server's --root")
    p.add_argument("--out", required=True, help="dataset folder (created or extended)")
    p.add_argument("--names", nargs="+", default=["pothole", "speed_bump"],
                   help="class names in id order")
    p.add_argument("--min-score", type=float, default=0.25,
                   help="detections below this are not written as pseudo-labels")
    p.add_argument("--val-percent", type=float, default=10.0)
    return p


def main(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "args.json").write_text(json.dumps(vars(args), indent=1, default=str))
    counts = build_dataset(Path(args.ingest), out, list(args.names), args.min_score,
                           args.val_percent)
    print(json.dumps(counts))
    return 0 if counts["samples"] else 1


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
