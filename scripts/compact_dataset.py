#!/usr/bin/env python3
"""A compact copy of one split of a YOLO dataset, to carry to a rented GPU for training.

Every image is resized to SIDE x SIDE and re-encoded as WebP; YOLO labels are normalised, so they
are copied unchanged. With `train --cache-side SIDE` nothing is lost that training uses: the
image cache holds SIDE x SIDE squares, and augmentation pastes a photo at most 1.5 x the input
height (384 px for 448x256). The road_hazards train split (189 MB of JPEG) becomes 48 MB at
384 px, quality 75. The copy's data.yaml points `val` at the same images: evaluate on the real
val split afterwards (`edge-perception eval`), not on the copy.

    python scripts/compact_dataset.py ../shared/datasets/road_hazards/data.yaml /tmp/rh384
    edge-perception train --data /tmp/rh384/data.yaml --cache-side 384 --eval-every 0 ...
"""

from __future__ import annotations

import argparse
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge_perception.train.data import label_path, read_data_yaml  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", help="source YOLO data.yaml")
    p.add_argument("out", help="output folder (replaced)")
    p.add_argument("--split", default="train")
    p.add_argument("--side", type=int, default=384)
    p.add_argument("--quality", type=int, default=75, help="WebP quality")
    a = p.parse_args()
    spec = read_data_yaml(a.data)
    out = Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    img_dir, lab_dir = out / "images" / a.split, out / "labels" / a.split
    img_dir.mkdir(parents=True)
    lab_dir.mkdir(parents=True)

    def one(src: Path) -> None:
        img = cv2.imread(str(src), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f"cannot decode {src}")
        img = cv2.resize(img, (a.side, a.side), interpolation=cv2.INTER_AREA)
        if not cv2.imwrite(str(img_dir / f"{src.stem}.webp"), img,
                           [cv2.IMWRITE_WEBP_QUALITY, a.quality]):
            raise OSError(f"cannot write {src.stem}.webp")
        lab = label_path(src)
        if lab.exists():
            shutil.copyfile(lab, lab_dir / lab.name)

    images = spec.images(a.split)
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(one, images))
    names = "".join(f"  {k}: {v}\n" for k, v in sorted(spec.names.items()))
    (out / "data.yaml").write_text(f"path: .\ntrain: images/{a.split}\nval: images/{a.split}\n"
                                   f"names:\n{names}")
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"{len(images)} images, {size / 1e6:.1f} MB in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
