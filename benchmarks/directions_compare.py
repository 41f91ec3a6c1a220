"""Compare the two ways of finding a segmenting direction on one GAN backend:

  A. the paper's: discover K directions (Voynov & Babenko 2020), score them (Appendix B), pick;
  B. beyond the paper: optimise a direction directly (`generator.directions.optimize`).

Prints, for each: wall time, L_h, D_h, the mask's dominant-class fraction and object area on
a fixed evaluation batch, the cosine between the two vectors and the IoU between their masks;
with --truth (a "module:function" returning the true object mask [N, H, W] for latents z),
also the IoU with the truth.

    python benchmarks/directions_compare.py --gan toyworld --out runs/dirs_cmp
    python benchmarks/directions_compare.py \
        --gan tests.directions.toy_gans:build_planted --truth tests.directions.toy_gans:truth_mask \
        --discover-steps 300 --width 16 --out /tmp/dirs_cmp
"""

from __future__ import annotations

import importlib
import json
import time
from pathlib import Path

import torch

from generator.directions.config import DiscoverConfig, OptimizeConfig
from generator.directions.discover import discover
from generator.directions.optimize import optimize_direction
from generator.directions.pick import choose_sign, pick_direction, write_direction_file
from generator.directions.score import DirectionScorer, FitSettings, score_directions
from generator.gans import load_gan
from segcore.cli import run_cli
from segcore.device import resolve_device
from segcore.options import Parser

PROG = "python benchmarks/directions_compare.py"


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    union = float((a | b).sum())
    return float((a & b).sum()) / union if union else 1.0


def main(argv=None) -> int:
    p = Parser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--gan", required=True, help="registry name or module:factory (required)")
    p.add_argument("--weights", default=None, help="the backend's weights (default: its own)")
    p.add_argument(
        "--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)"
    )
    p.add_argument("--out", required=True, help="folder for dirs.pt and both direction.json")
    p.add_argument("--k", type=int, default=None, help="directions to discover (default: d)")
    p.add_argument(
        "--discover-steps", type=int, default=2000, help="discovery steps (default: %(default)s)"
    )
    p.add_argument(
        "--width", type=int, default=64, help="reconstructor width (default: %(default)s)"
    )
    p.add_argument(
        "--discover-lr",
        type=float,
        default=1e-4,
        help="discovery learning rate (default: %(default)s)",
    )
    p.add_argument(
        "--optimize-steps",
        type=int,
        default=500,
        help="direct optimisation steps (default: %(default)s)",
    )
    p.add_argument(
        "--restarts",
        type=int,
        default=4,
        help="direct optimisation restarts (default: %(default)s)",
    )
    p.add_argument("--shift", type=float, default=5.0, help="latent shift r (default: %(default)s)")
    p.add_argument(
        "--truth", default=None, help="module:function(z) -> bool masks [N,H,W] (default: none)"
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of every random draw (default: %(default)s)"
    )
    args = p.parse_args(argv)

    device = resolve_device(args.device)
    backend = load_gan(args.gan, args.weights, device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    k = args.k or backend.latent_dim
    settings = FitSettings(shift=args.shift, seed=args.seed)
    scorer = DirectionScorer(backend, settings)

    t0 = time.perf_counter()
    dcfg = DiscoverConfig(
        gan=args.gan, out=str(out / "dirs.pt"), k=k, steps=args.discover_steps,
        width=args.width, lr=args.discover_lr, seed=args.seed, ckpt_every=10**9,
    )  # fmt: skip
    ckpt = Path(dcfg.out + ".ckpt")
    ckpt.unlink(missing_ok=True)
    dirs, history = discover(backend, dcfg)
    t_disc = time.perf_counter() - t0
    ranking = score_directions(backend, dirs, settings, scorer=scorer)
    a = pick_direction(backend, dirs, ranking, scorer)
    t_a = time.perf_counter() - t0
    write_direction_file(str(out / "direction_discover.json"), a, gan=args.gan,
                         shift=args.shift, index=a["index"])  # fmt: skip

    t0 = time.perf_counter()
    ocfg = OptimizeConfig(gan=args.gan, out="", shift=args.shift, steps=args.optimize_steps,
                          restarts=args.restarts, seed=args.seed)  # fmt: skip
    h, plus, _, _ = optimize_direction(backend, ocfg, progress=True)
    b = choose_sign(scorer, h, plus=plus)
    t_b = time.perf_counter() - t0
    write_direction_file(str(out / "direction_optimize.json"), b, gan=args.gan,
                         shift=args.shift, index=-1, method="optimize")  # fmt: skip

    masks = {}
    rows = []
    for name, c, secs in (("discover+score", a, t_a), ("optimize", b, t_b)):
        ev = scorer.evaluate(c["vector"], c["pair"], tensors=True)
        masks[name] = ev["_tensors"]["mask"]
        row = {
            "method": name,
            "seconds": round(secs, 1),
            "L_h": ev["restoration_loss"],
            "D_h": ev["separation"],
            "dominant_fraction": ev["dominant_fraction"],
            "object_area": ev["class_fraction"][ev["object_class"]],
            "object_brightens": c["object_brightens"],
        }
        if args.truth:
            mod, _, fn = args.truth.partition(":")
            truth = getattr(importlib.import_module(mod), fn)(scorer.z_eval).to(masks[name].device)
            row["iou_truth"] = _iou(masks[name], truth.bool())
        rows.append(row)
    summary = {
        "gan": args.gan,
        "device": str(device),
        "latent_dim": backend.latent_dim,
        "k": k,
        "discover_steps": args.discover_steps,
        "discover_seconds": round(t_disc, 1),
        "final_reconstructor_accuracy": history["accuracy"][-1] if history["accuracy"] else None,
        "picked_index": a["index"],
        "cosine_between_methods": float(torch.dot(a["vector"], b["vector"])),
        "mask_iou_between_methods": _iou(*masks.values()),
        "methods": rows,
    }
    (out / "compare.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    run_cli(main, PROG)
