"""Self-training on unlabelled world images, measured on the world over several seeds.

    python benchmarks/world_adapt.py --root runs/world_adapt --seeds 0-9 \
        [--results benchmarks/results/world_adapt.json] [--rounds R --adapt-steps S ...]

Per seed S, the protocol of the world benchmark (benchmarks/pipeline_world.py, whose parts a
and b it runs, or resumes, in ROOT/sS/base; docs/benchmarks.md "Over ten seeds"):
  (a)    the unsupervised pipeline at the demo's settings: shards from the shipped GAN, the
         U-Net (600 steps), scored on 1,000 held-out world scenes against their true masks;
  (self) the same U-Net continued from its step-600 checkpoint with self-training on 2,000
         unlabelled world TRAINING scenes (`python -m trainer --adapt-images`, its images/
         only; the same folder for every seed), then scored on the same 1,000 scenes;
  (b)    the same U-Net and steps trained on world scenes with their TRUE masks.
Prints per seed the IoU and maxFβ of the three, (self)'s ratio to (b), and the label-free
signals of the self-training (synthetic hold-out IoU before and after, each round's agreement
with the previous one and kept pixels); then the mean over seeds and the goal: mean IoU >= 0.92
and (self) >= 97% of (b) in every seed. `--signals-only` stops before scoring (self) against
the true masks: the defaults were chosen from its output. Writes ROOT/world_adapt.json (and
--results). Each step resumes. Measured numbers: docs/self-training.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from pipeline_world_seeds import seed_list

from segcore.cli import UsageError, run_cli
from segcore.storage import write_bytes_atomic
from toyworld.experiment import ExperimentConfig
from toyworld.experiment_adapt import (
    SelfTraining,
    refuse_evaluation_images,
    self_train,
    world_targets,
)
from toyworld.experiment_steps import evaluate, failed_stage
from trainer.config import TrainConfig

PROG = "world_adapt.py"
BENCHMARK = Path(__file__).resolve().with_name("pipeline_world.py")
GOAL_IOU, GOAL_RATIO = 0.92, 0.97
# pipeline_world.py's settings (its defaults): the self-trained run continues its part (a)
SHARDS, PER_SHARD, STEPS, WIDTH, BATCH, LR_DROP = 8, 500, 600, 0.25, 32, 8000
TARGETS = 2000  # unlabelled world training scenes
# What a run trained with before the trainer had these options (its config.json lacks them)
BEFORE_OPTION = {"adapt_schedule": "constant", "adapt_jitter": 0.0, "adapt_refine": "none"}


def headline(eval_dir: Path) -> dict:
    doc = json.loads((eval_dir / "metrics.json").read_text())
    return {k: doc[k] for k in ("iou", "max_fbeta", "accuracy", "n_images")}


def options_of(args) -> SelfTraining:
    """The --adapt-* options given on this command line (None: the trainer's default)."""
    return SelfTraining(
        args.rounds, args.adapt_steps, args.margin, args.keep, args.mix, args.schedule,
        args.jitter, args.refine,
    )  # fmt: skip


def resolved(options: SelfTraining) -> dict:
    """Every --adapt-* value a run with `options` trains with (the trainer's defaults for those
    not given): what the JSON records, and what a finished run folder must match."""
    out = {}
    names = ("rounds", "steps", "margin", "keep", "mix", "schedule", "jitter", "refine",
             "flip_tta", "min_scale")  # fmt: skip
    for name in names:
        given = getattr(options, name, None)
        out[f"adapt_{name}"] = given if given is not None else getattr(TrainConfig, f"adapt_{name}")
    return out


def check_run(unet: Path, options: SelfTraining) -> None:
    """UsageError when the run folder holds a run trained with other --adapt-* values (a run
    of an earlier default, say): its numbers would be filed under the wrong options."""
    saved = {**BEFORE_OPTION, **json.loads((unet / "config.json").read_text())["config"]}
    differ = [f"{k}: {saved.get(k)} -> {v}" for k, v in resolved(options).items()
              if saved.get(k) != v]  # fmt: skip
    if differ:
        raise UsageError(
            f"{unet} was trained with other self-training options ({', '.join(differ)}); "
            "give a --tag or move the folder away"
        )


def signals(unet: Path) -> dict:
    """The label-free record of a self-trained run's log: synthetic hold-out IoU at the end of
    the synthetic steps and at the end, each round's agreement and kept pixels."""
    log = [json.loads(line) for line in (unet / "log.jsonl").read_text().splitlines()]
    val = [r for r in log if "val_iou" in r]
    rounds = [r for r in log if "adapt_kept_images" in r]
    before = [r["val_iou"] for r in val if r["step"] == STEPS]
    return {
        "holdout_iou_before": before[-1] if before else None,
        "holdout_iou_after": val[-1]["val_iou"],
        "agreement": [r.get("adapt_agreement") for r in rounds],
        "kept_pixels": [r["adapt_kept_pixels"] for r in rounds],
        "certain_pixels": [r["adapt_certain_pixels"] for r in rounds],
    }


def run_seed(args, seed: int, targets: Path) -> dict:
    base = args.root / f"s{seed}" / "base"
    cmd = [sys.executable, str(BENCHMARK), "--out", str(base), "--seed", str(seed)]
    subprocess.run([*cmd, "--parts", "a,b"], check=True)
    test = base / "world_test"
    refuse_evaluation_images(targets, [test])
    cfg = ExperimentConfig(
        shards=SHARDS, samples_per_shard=PER_SHARD, steps=STEPS, width=WIDTH, batch_size=BATCH,
        lr_drop_step=LR_DROP, seed=seed, log_every=100,
    )  # fmt: skip
    options = options_of(args)
    run = args.root / f"s{seed}" / ("self" if not args.tag else f"self_{args.tag}")
    unet = self_train(
        cfg.training(), base / "a" / "shards", SHARDS, base / "a" / "unet", run / "unet",
        targets, options,
    )  # fmt: skip
    check_run(unet, options)
    row = {"signals": signals(unet)}
    if not args.signals_only:
        row["self"] = headline(evaluate(unet, test, run / "eval", "world (self-trained)"))
        results = json.loads((base / "results.json").read_text())
        row["a"] = {k: results["a_unsupervised"][k] for k in row["self"]}
        row["b"] = {k: results["b_true_masks"][k] for k in row["self"]}
    return row


def summarise(rows: dict) -> dict:
    out = {}
    for part in ("a", "self", "b"):
        ious = [r[part]["iou"] for r in rows.values()]
        fbs = [r[part]["max_fbeta"] for r in rows.values()]
        out[part] = {
            "iou_mean": statistics.fmean(ious),
            "iou_sd": statistics.stdev(ious) if len(ious) > 1 else 0.0,
            "max_fbeta_mean": statistics.fmean(fbs),
        }
    for part in ("a", "self"):
        ratios = [r[part]["iou"] / r["b"]["iou"] for r in rows.values()]
        out[part]["ratio_mean"] = statistics.fmean(ratios)
        out[part]["ratio_min"] = min(ratios)
        out[part]["seeds_at_ratio_goal"] = sum(q >= GOAL_RATIO for q in ratios)
    s = out["self"]
    out["goal_met"] = s["iou_mean"] >= GOAL_IOU and s["seeds_at_ratio_goal"] == len(rows)
    return out


def print_table(rows: dict, summary: dict | None) -> None:
    print(f"\n{'seed':>4s} {'(a) IoU':>8s} {'self IoU':>9s} {'(b) IoU':>8s} {'self/(b)':>9s}"
          f" {'(a) Fb':>7s} {'self Fb':>8s} {'(b) Fb':>7s}   agreement by round")  # fmt: skip
    for s, r in rows.items():
        agree = " ".join("-" if v is None else f"{v:.3f}" for v in r["signals"]["agreement"])
        if "self" not in r:
            print(
                f"{s:4d} {'':>8s} {'':>9s} {'':>8s} {'':>9s} {'':>7s} {'':>8s} {'':>7s}   {agree}"
            )
            continue
        a, t, b = r["a"], r["self"], r["b"]
        print(f"{s:4d} {a['iou']:8.3f} {t['iou']:9.3f} {b['iou']:8.3f} {t['iou'] / b['iou']:9.3f}"
              f" {a['max_fbeta']:7.3f} {t['max_fbeta']:8.3f} {b['max_fbeta']:7.3f}   {agree}")  # fmt: skip
    if summary:
        for part in ("a", "self", "b"):
            m = summary[part]
            extra = (
                f", ratio to (b) {m['ratio_mean']:.3f} (min {m['ratio_min']:.3f}), "
                f">= {GOAL_RATIO:.0%} of (b) in {m['seeds_at_ratio_goal']}/{len(rows)} seeds"
                if part != "b"
                else ""
            )
            print(f"{part:5s} IoU mean {m['iou_mean']:.3f} (sd {m['iou_sd']:.3f}), maxFb "
                  f"{m['max_fbeta_mean']:.3f}{extra}")  # fmt: skip
        print(f"goal (mean IoU >= {GOAL_IOU}, >= {GOAL_RATIO:.0%} of (b) in every seed): "
              f"{'met' if summary['goal_met'] else 'NOT met'}")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--root", type=Path, default=Path("runs/world_adapt"), help="one folder a seed")
    p.add_argument("--seeds", default="0-9", help="e.g. 0-9 or 0,2,5-9")
    p.add_argument("--results", type=Path, help="also write the JSON here")
    p.add_argument("--signals-only", action="store_true",
                   help="train, print the label-free signals, score nothing")  # fmt: skip
    p.add_argument(
        "--tag",
        help="name of a variant: its runs go to ROOT/sS/self_TAG and its JSON to "
        "ROOT/world_adapt_TAG.json (the bases (a) and (b) are shared)",
    )
    p.add_argument("--rounds", type=int, help="--adapt-rounds (none: the trainer's default)")
    p.add_argument("--adapt-steps", type=int, help="--adapt-steps (none: the trainer's)")
    p.add_argument("--margin", type=float, help="--adapt-margin (none: the trainer's)")
    p.add_argument("--keep", type=float, help="--adapt-keep (none: the trainer's)")
    p.add_argument("--mix", type=float, help="--adapt-mix (none: the trainer's)")
    p.add_argument("--schedule", help="--adapt-schedule (none: the trainer's)")
    p.add_argument("--jitter", type=float, help="--adapt-jitter (none: the trainer's)")
    p.add_argument("--refine", help="--adapt-refine (none: the trainer's)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    args.root = args.root.resolve()
    try:
        seeds = seed_list(args.seeds)
    except ValueError as err:
        raise UsageError(f"--seeds {args.seeds}: {err}") from err
    targets = world_targets(args.root / "world_train", TARGETS)
    rows = {}
    try:
        for seed in seeds:
            rows[seed] = run_seed(args, seed, targets)
            print(f"seed {seed}: {json.dumps(rows[seed])}", flush=True)
            merged = write_results(args, rows)  # after every seed: a stopped run keeps them
    except subprocess.CalledProcessError as err:  # the stage has printed why
        print(f"{PROG}: error: '{failed_stage(err)}' exited with {err.returncode}", file=sys.stderr)
        return err.returncode
    print_table(merged, None if args.signals_only else summarise(merged))
    return 0


def recorded_rows(path: Path, options: SelfTraining, signals_only: bool) -> dict:
    """The seeds already in `path` when it was written with the same self-training options
    (and, unless `signals_only`, scored)."""
    if not path.exists():
        return {}
    doc = json.loads(path.read_text())
    if doc.get("self_training") != resolved(options):
        return {}
    rows = {int(s): r for s, r in doc.get("seeds", {}).items()}
    return rows if signals_only else {s: r for s, r in rows.items() if "self" in r}


def write_results(args, rows: dict) -> dict:
    """ROOT/world_adapt[_TAG].json with this run's seeds and those another run of the same
    options recorded there (runs of disjoint seeds may share a ROOT)."""
    options = options_of(args)
    name = "world_adapt.json" if not args.tag else f"world_adapt_{args.tag}.json"
    rows = {**recorded_rows(args.root / name, options, args.signals_only), **rows}
    rows = dict(sorted(rows.items()))
    summary = None if args.signals_only else summarise(rows)
    doc = {
        "protocol": {
            "shards": SHARDS,
            "per_shard": PER_SHARD,
            "steps": STEPS,
            "width": WIDTH,
            "batch": BATCH,
            "targets": TARGETS,
            "test": 1000,
        },
        "self_training": resolved(options),
        "seeds_finished": sorted(rows),
        "seeds": rows,
        "summary": summary,
    }
    blob = (json.dumps(doc, indent=2) + "\n").encode()
    for path in [args.root / name, *([args.results] if args.results else [])]:
        write_bytes_atomic(str(path), blob)
        print(f"wrote {path}")
    return rows


if __name__ == "__main__":
    run_cli(main, PROG)
