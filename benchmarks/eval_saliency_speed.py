"""maxFβ + IoU + accuracy throughput: eval.metrics.SaliencyMetrics vs PySODMetrics.

Same 8-bit maps, PySOD's conventions on both sides (gt > 128, min-max normalisation,
256 thresholds `>=`, binary IoU/accuracy at `pred > 0.5`), so the numbers must be identical;
the paper-protocol configuration is timed too. Goal: >= 5x faster (measured numbers:
docs/benchmarks.md).

    python benchmarks/eval_saliency_speed.py [--n 300] [--size 300x400] [--real DIR]

--real DIR uses the masks of a folder-pairs dataset (images/ + masks/, e.g. Weizmann Horse)
with blurred, noisy predictions made from them, instead of random maps.
"""

from __future__ import annotations

import time
import warnings

import cv2
import numpy as np

from segcore.cli import UsageError, run_cli
from segcore.options import Parser

PROG = "python benchmarks/eval_saliency_speed.py"


def make_maps(n: int, h: int, w: int, real: str | None):
    rng = np.random.default_rng(0)
    preds, gts = [], []
    if real:
        from eval.datasets import FolderPairs

        ds = FolderPairs(real)
        for i in range(min(n, len(ds))):
            mask = ds[i].mask
            soft = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 8)
            soft = np.clip(soft + rng.normal(0, 0.1, soft.shape), 0, 1)
            preds.append((soft * 255).astype(np.uint8))
            gts.append(mask.astype(np.uint8) * 255)
        return preds, gts
    for _ in range(n):
        base = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 12)
        base = (base - base.min()) / (base.max() - base.min() + 1e-9)
        preds.append((base * 255).astype(np.uint8))
        gts.append(np.where(base > rng.uniform(0.3, 0.7), 255, 0).astype(np.uint8))
    return preds, gts


def run_pysod(preds, gts):
    import py_sod_metrics as ps

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm = ps.FmeasureV2(
            {
                "fm": ps.FmeasureHandler(with_dynamic=True, with_adaptive=False, beta=0.3),
                "iou": ps.IOUHandler(with_dynamic=False, with_adaptive=False, with_binary=True),
                "acc": ps.OverallAccuracyHandler(
                    with_dynamic=False, with_adaptive=False, with_binary=True
                ),
            }
        )
    for p, g in zip(preds, gts, strict=True):
        fm.step(p, g)
    r = fm.get_results()
    return {
        "max_fbeta": float(r["fm"]["dynamic"].max()),
        "iou": float(r["iou"]["binary"]),
        "accuracy": float(r["acc"]["binary"]),
    }


def run_ours(preds, gts, conventions):
    from eval.metrics import SaliencyMetrics

    m = SaliencyMetrics(conventions)
    for p, g in zip(preds, gts, strict=True):
        m.update(p, g)
    r = m.compute()
    return {k: r[k] for k in ("max_fbeta", "iou", "accuracy")}


def best_of(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main(argv=None) -> int:
    ap = Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=300, help="maps (default: %(default)s)")
    ap.add_argument("--size", default="300x400", help="HxW of random maps (default: %(default)s)")
    ap.add_argument(
        "--real", default=None, help="folder-pairs dataset whose masks to use (default: none)"
    )
    ap.add_argument(
        "--repeats", type=int, default=3, help="best of N timings (default: %(default)s)"
    )
    args = ap.parse_args(argv)
    try:
        h, w = map(int, args.size.split("x"))
    except ValueError as err:
        raise UsageError(f"--size must be HxW, got {args.size!r}") from err
    from eval.metrics import SaliencyConventions

    preds, gts = make_maps(args.n, h, w, args.real)
    n, px = len(preds), sum(p.size for p in preds)
    t_ref, ref = best_of(lambda: run_pysod(preds, gts), args.repeats)
    t_ours, ours = best_of(lambda: run_ours(preds, gts, SaliencyConventions.pysod()), args.repeats)
    t_paper, paper = best_of(lambda: run_ours(preds, gts, SaliencyConventions()), args.repeats)
    f32 = [(p / np.float32(255)).astype(np.float32) for p in preds]
    t_f32, _ = best_of(lambda: run_ours(f32, gts, SaliencyConventions()), args.repeats)

    print(
        f"{n} maps, {px / n / 1e3:.0f}k pixels each ({'real: ' + args.real if args.real else 'random'})"
    )
    print(f"{'':34s}{'images/s':>10s}  maxFβ               IoU                 accuracy")
    for label, t, r in (
        ("PySODMetrics FmeasureV2", t_ref, ref),
        ("eval SaliencyMetrics (pysod conv.)", t_ours, ours),
        ("eval SaliencyMetrics (paper, uint8)", t_paper, paper),
        ("eval SaliencyMetrics (paper, f32)", t_f32, None),
    ):
        nums = "  ".join(f"{r[k]:.16f}" for k in ("max_fbeta", "iou", "accuracy")) if r else ""
        print(f"{label:34s}{n / t:10.1f}  {nums}")
    diff = max(abs(ref[k] - ours[k]) for k in ref)
    print(f"max |difference| PySOD vs eval (same conventions): {diff:.3g}")
    print(f"speed-up (pysod conventions, uint8 maps): {t_ref / t_ours:.1f}x (goal >= 5x)")
    print(f"speed-up (paper protocol, float32 maps):  {t_ref / t_f32:.1f}x")
    return 0


if __name__ == "__main__":
    run_cli(main, PROG)
