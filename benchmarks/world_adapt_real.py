"""Self-training of the world U-Net on real unlabelled images: Weizmann horses and DAVIS 2016.

    python benchmarks/world_adapt_real.py --root runs/world_adapt --data ../shared/data \
        [--seed 0] [--sets horses,davis] [--results benchmarks/results/world_adapt_real.json]

The U-Net is the world benchmark's part (a) at --seed (ROOT/sS/base/a: benchmarks/world_adapt.py
or pipeline_world.py made it): trained on shards of the toy-world GAN, which has never seen a
horse or a video frame. Each real set is split in two halves that share no image: the U-Net
self-trains on the first half's images (no mask read) with the trainer's default options, and
both U-Nets are scored on the second half against its true masks (eval's protocol at the
world's 32 px). Horses: even/odd positions in name order; DAVIS: every other sequence (its
frames are correlated within a sequence). The halves are symlinks into ROOT/real/<set>/.
Expected to stay low: the pseudo-labels come from a U-Net that segments toy shapes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from world_adapt import check_run, resolved

from segcore.cli import UsageError, run_cli
from segcore.storage import write_bytes_atomic
from toyworld.experiment import ExperimentConfig
from toyworld.experiment_adapt import SelfTraining, refuse_evaluation_images, self_train
from toyworld.experiment_steps import evaluate

PROG = "world_adapt_real.py"
SETS = {"horses": "weizmann_horse", "davis": "davis2016_val"}
SHARDS = 8  # the world benchmark's part (a)


def link(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.is_symlink():
        dest.symlink_to(src.resolve())


def split(data: Path, name: str, out: Path) -> tuple[Path, Path]:
    """(target folder: images only, evaluation folder: images/ + masks/) of the two halves."""
    images, masks = data / "images", data / "masks"
    if name == "davis":  # sequences alternate: frames of one sequence stay in one half
        units = sorted(p.name for p in images.iterdir() if p.is_dir())
    else:
        units = sorted(p.name for p in images.iterdir() if p.is_file())
    target, evaluation = out / "target", out / "eval_half"
    for i, unit in enumerate(units):
        files = sorted((images / unit).iterdir()) if name == "davis" else [images / unit]
        for f in files:
            rel = f.relative_to(images)
            if i % 2 == 0:
                link(f, target / "images" / rel)
            else:
                link(f, evaluation / "images" / rel)
                link(
                    masks / rel.with_suffix(".png"), evaluation / "masks" / rel.with_suffix(".png")
                )
    return target, evaluation


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--root", type=Path, default=Path("runs/world_adapt"), help="as world_adapt.py")
    p.add_argument("--data", type=Path, default=Path("../shared/data"), help="the real sets")
    p.add_argument("--seed", type=int, default=0, help="whose part (a) U-Net to self-train")
    p.add_argument("--sets", default="horses,davis", help="comma list of horses, davis")
    p.add_argument("--results", type=Path, help="also write the JSON here")
    args = p.parse_args(argv)
    root = args.root.resolve()
    base = root / f"s{args.seed}" / "base" / "a"
    if not (base / "unet" / "model.json").exists():
        raise UsageError(f"{base / 'unet'} is not finished: run benchmarks/world_adapt.py first")
    cfg = ExperimentConfig(lr_drop_step=8000, seed=args.seed, log_every=100)
    rows = {}
    for name in args.sets.split(","):
        if name not in SETS:
            raise UsageError(f"--sets: unknown set {name!r} (horses, davis)")
        data = args.data / SETS[name]
        if not (data / "images").is_dir():
            raise UsageError(f"{data}: no images/ folder")
        out = root / "real" / name
        target, evaluation = split(data, name, out)
        refuse_evaluation_images(target, [evaluation])
        unet = self_train(
            cfg.training(), base / "shards", SHARDS, base / "unet", out / "unet", target,
            SelfTraining(),
        )  # fmt: skip
        check_run(unet, SelfTraining())
        row = {}
        for part, model in (("a", base / "unet"), ("self", unet)):
            report = evaluate(model, evaluation, out / f"eval_{part}", f"{name} ({part})")
            doc = json.loads((report / "metrics.json").read_text())
            row[part] = {k: doc[k] for k in ("iou", "max_fbeta", "accuracy", "n_images")}
        rows[name] = row
        print(f"{name}: {json.dumps(row)}", flush=True)
    print(f"\n{'set':8s} {'(a) IoU':>8s} {'self IoU':>9s} {'(a) Fb':>7s} {'self Fb':>8s} {'n':>5s}")
    for name, r in rows.items():
        a, s = r["a"], r["self"]
        print(
            f"{name:8s} {a['iou']:8.3f} {s['iou']:9.3f} {a['max_fbeta']:7.3f} "
            f"{s['max_fbeta']:8.3f} {s['n_images']:5d}"
        )
    doc = {"seed": args.seed, "self_training": resolved(SelfTraining()), "sets": rows}
    blob = (json.dumps(doc, indent=2) + "\n").encode()
    for path in [
        root / "real" / "world_adapt_real.json",
        *([args.results] if args.results else []),
    ]:
        write_bytes_atomic(str(path), blob)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    run_cli(main, PROG)
