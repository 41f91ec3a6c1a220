"""MaxBoxAccV1 + V2: eval.metrics.WsolBoxMetrics vs a straightforward per-threshold run of the
reference algorithm (`eval.metrics.wsol_reference`, a literal transcription of
wsolevaluation's `compute_bboxes_from_scoremaps` + `BoxEvaluator`).

Ours thresholds and runs cv2.findContours once per DISTINCT binary map (<= 256 per image,
shared by V1 and V2) instead of once per tau and version (2 x 1,000 with interval 0.001).
Goal: >= 4x faster, identical numbers (measured numbers: docs/benchmarks.md).

    python benchmarks/eval_maxboxacc_speed.py [--n 20] [--interval 0.001]
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from segcore.cli import run_cli
from segcore.options import Parser, finite_float

PROG = "python benchmarks/eval_maxboxacc_speed.py"


def make_data(n: int, seed: int = 0):
    """Realistic CAM-like maps: a few smooth blobs + noise at 56x56, bicubic-resized to 224
    and normalised, exactly as `prepare_scoremap` treats a model's output."""
    from eval.metrics.wsol import prepare_scoremap

    rng = np.random.default_rng(seed)
    maps, boxes = [], []
    for _ in range(n):
        small = np.zeros((56, 56), np.float32)
        gt = []
        for _ in range(rng.integers(1, 4)):
            cy, cx = rng.uniform(8, 48, 2)
            sy, sx = rng.uniform(3, 12, 2)
            yy, xx = np.mgrid[0:56, 0:56]
            small += rng.uniform(0.3, 1) * np.exp(
                -((yy - cy) ** 2 / sy**2 + (xx - cx) ** 2 / sx**2)
            )
            # ground truth: the blob's extent in the 224 frame, jittered
            box = np.array([cx - sx, cy - sy, cx + sx, cy + sy]) * 4 + rng.normal(0, 6, 4)
            gt.append(np.clip(np.sort(box.reshape(2, 2), axis=0).ravel(), 0, 223).astype(int))
        small += rng.uniform(0, 0.05, small.shape).astype(np.float32)
        maps.append(prepare_scoremap(cv2.GaussianBlur(small, (0, 0), 1)))
        boxes.append(np.array(gt))
    return maps, boxes


def run_reference(maps, boxes, taus):
    from eval.metrics.wsol_reference import ReferenceBoxEvaluator

    v1 = ReferenceBoxEvaluator(taus, (50,), multi_contour=False)
    v2 = ReferenceBoxEvaluator(taus, (30, 50, 70), multi_contour=True)
    for s, b in zip(maps, boxes, strict=True):
        v1.accumulate(s, b)
        v2.accumulate(s, b)
    per_delta = v2.compute()
    return {"maxboxacc_v1": v1.compute()[0], "maxboxacc_v2": float(np.mean(per_delta)),
            "v2_per_delta": per_delta}  # fmt: skip


def run_ours(maps, boxes, interval):
    from eval.metrics import WsolBoxMetrics

    m = WsolBoxMetrics(interval)
    for s, b in zip(maps, boxes, strict=True):
        m.update(s, b)
    r = m.compute()
    return {"maxboxacc_v1": r["maxboxacc_v1"], "maxboxacc_v2": r["maxboxacc_v2"],
            "v2_per_delta": [r["maxboxacc_v2_per_delta"][k] for k in ("0.3", "0.5", "0.7")]}  # fmt: skip


def main(argv=None) -> int:
    ap = Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20, help="score maps (default: %(default)s)")
    ap.add_argument(
        "--interval",
        type=finite_float,
        default=0.001,
        help="CAM threshold step (default: %(default)s)",
    )
    args = ap.parse_args(argv)
    from eval.metrics.wsol import cam_thresholds

    maps, boxes = make_data(args.n)
    taus = cam_thresholds(args.interval)
    t = time.perf_counter()
    ref = run_reference(maps, boxes, taus)
    t_ref = time.perf_counter() - t
    t = time.perf_counter()
    ours = run_ours(maps, boxes, args.interval)
    t_ours = time.perf_counter() - t
    levels = np.mean([len(np.unique((s * 255).astype(np.uint8))) for s in maps])
    print(f"{args.n} score maps 224x224, {len(taus)} thresholds (interval {args.interval}), "
          f"{levels:.0f} distinct uint8 levels per map on average")  # fmt: skip
    for label, tt, r in (
        ("per-threshold reference", t_ref, ref),
        ("eval WsolBoxMetrics", t_ours, ours),
    ):
        print(f"{label:24s} {args.n / tt:8.2f} images/s  V1 {r['maxboxacc_v1']:.4f}  "
              f"V2 {r['maxboxacc_v2']:.4f}  V2 per delta {r['v2_per_delta']}")  # fmt: skip
    same = (
        ref["maxboxacc_v1"] == ours["maxboxacc_v1"] and ref["v2_per_delta"] == ours["v2_per_delta"]
    )
    print(f"identical numbers: {same}")
    print(f"speed-up: {t_ref / t_ours:.1f}x (goal >= 4x)")
    return 0


if __name__ == "__main__":
    run_cli(main, PROG)
