"""Run-to-run spread of the world benchmark: pipeline_world.py at several --seed, one table.

    python benchmarks/pipeline_world_seeds.py --root runs/bench_seeds --seeds 0-4 \
        [--parts a,adapted,b] [any other pipeline_world.py option, e.g. --shards 16]

Runs (or resumes) `pipeline_world.py --out ROOT/sS --seed S --parts PARTS [options]` for each
seed, with this Python, then prints per seed the IoU of (a) prior latents, (adapted)
encoder-embedding latents with alpha 0.2 (when in PARTS) and (b) true masks, each pipeline's
ratio to (b), and the mean and sd over seeds, with how many runs reach the goal (IoU >= 0.80 and
>= 90% of (b)). `--no-run` only reads. Writes ROOT/seeds.json. Measured: docs/benchmarks.md and
benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from segcore.cli import run_cli
from segcore.storage import write_bytes_atomic
from toyworld.experiment_record import read_options

BENCHMARK = Path(__file__).resolve().with_name("pipeline_world.py")


def seed_list(text: str) -> list[int]:
    seeds: list[int] = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        seeds += list(range(int(a), int(b or a) + 1))
    return seeds


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        allow_abbrev=False,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--root", default="runs/bench_seeds", help="one OUT per seed: ROOT/sS")
    p.add_argument("--seeds", default="0-4", help="e.g. 0-4 or 0,2,5-9")
    p.add_argument("--parts", default="a,adapted,b", help="b and at least one of a, adapted")
    p.add_argument("--no-run", action="store_true", help="only read finished results")
    args, passed = p.parse_known_args()  # the rest goes to pipeline_world.py
    names = {"a": "a_unsupervised", "adapted": "a_adapted"}
    parts = args.parts.split(",")
    pipelines = tuple(names[k] for k in names if k in parts)
    if "b" not in parts or not pipelines or set(parts) - {"a", "adapted", "b"}:
        p.error("--parts: b and at least one of a, adapted (and nothing else)")
    clash = [a for a in passed if a.split("=")[0] in ("--out", "--seed")]
    if clash:
        p.error(f"{', '.join(clash)}: set per seed by this script (use --root / --seeds)")
    seeds = seed_list(args.seeds)
    if not seeds:
        p.error(f"--seeds {args.seeds}: no seed")
    root = Path(args.root).resolve()
    rows = {}
    common = None  # pipeline_world's options.json, the same for every seed but the seed
    for s in seeds:
        out = root / f"s{s}"
        if not args.no_run:
            cmd = [sys.executable, str(BENCHMARK), "--out", str(out)]
            cmd += ["--seed", str(s), "--parts", args.parts, *passed]
            if subprocess.run(cmd).returncode:  # the benchmark has printed why
                sys.exit(f"seed {s}: {BENCHMARK.name} failed")
        path = out / "results.json"
        if not path.exists():
            sys.exit(f"{path} missing: run without --no-run first")
        r = json.loads(path.read_text())
        missing = [k for k in (*pipelines, "b_true_masks") if k not in r]
        if missing:
            sys.exit(f"{path} lacks {', '.join(missing)}: rerun that seed without --no-run")
        opts = read_options(out)
        opts.pop("seed")
        if common is None:
            common = opts
        elif opts != common:
            sys.exit(f"{out} was run with other options than the first seed: {opts} vs {common}")
        rows[s] = {k: r[k]["iou"] for k in (*pipelines, "b_true_masks")}
    heads = {"a_unsupervised": "(a) prior", "a_adapted": "adapted"}
    print(
        f"{'seed':>4s}" + "".join(f" {heads[k]:>10s} {'ratio':>6s}" for k in pipelines), "    (b)"
    )
    for s, r in rows.items():
        b = r["b_true_masks"]
        cells = "".join(f" {r[k]:10.3f} {r[k] / b:6.3f}" for k in pipelines)
        print(f"{s:4d}{cells} {b:7.3f}")
    summary = {}
    for k in (*pipelines, "b_true_masks"):
        ious = [r[k] for r in rows.values()]
        entry = {"iou_mean": statistics.fmean(ious)}
        entry["iou_sd"] = statistics.stdev(ious) if len(ious) > 1 else 0.0
        if k != "b_true_masks":
            ratios = [r[k] / r["b_true_masks"] for r in rows.values()]
            entry["ratio_mean"] = statistics.fmean(ratios)
            entry["runs_meeting_goal"] = sum(
                r[k] >= 0.80 and q >= 0.90 for r, q in zip(rows.values(), ratios, strict=True)
            )
        summary[k] = entry
        extra = (
            f", ratio {entry['ratio_mean']:.3f}, goal met in {entry['runs_meeting_goal']}"
            f"/{len(rows)} runs"
            if k != "b_true_masks"
            else ""
        )
        print(f"{k:15s} IoU mean {entry['iou_mean']:.3f} (sd {entry['iou_sd']:.3f}){extra}")
    doc = {"parts": args.parts, "options": common, "seeds": rows, "summary": summary}
    write_bytes_atomic(str(root / "seeds.json"), (json.dumps(doc, indent=2) + "\n").encode())
    print(f"wrote {root / 'seeds.json'}")


if __name__ == "__main__":
    run_cli(lambda _: main(), "pipeline_world_seeds.py")
