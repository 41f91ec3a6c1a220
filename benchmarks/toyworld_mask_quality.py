"""How good are the synthetic masks of the shipped toy-world GAN and direction? (diagnostic)

    python benchmarks/toyworld_mask_quality.py [--n 1000] [--direction FILE] [--shift 5]
        [--min-fractions 0,0.01,0.02,0.05,0.1]

The 2-layer toy-world generator draws an alpha for its object; the pipeline never reads it, but
it is the GAN's own answer, so the IoU of the "lighter" / "affine" masks (after the paper's
filters) with `alpha > 0.5` says how much of the pipeline's error comes from the masks
themselves. Prints one line per mask rule: raw IoU, IoU of accepted samples, acceptance, share
of accepted samples with an empty mask, and how many of the GAN's small objects (alpha < 10% of
the frame) are accepted; then, for each lower bound of the mask-size filter
(the generator's --min-fraction), the same for the rule --mask auto picks. That table is how the
toy world's --min-fraction was chosen without a world label: G's alpha is the GAN's own answer.
"""

from __future__ import annotations

import numpy as np
import torch

from generator.direction_file import load_direction
from generator.filters import FilterSettings, apply_filters
from generator.gans.toyworld import build
from generator.masks import make_masks
from generator.run import resolve_mask
from segcore.cli import UsageError, run_cli
from segcore.options import Parser


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    inter, union = (a & b).sum((1, 2)), (a | b).sum((1, 2))
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


PROG = "python benchmarks/toyworld_mask_quality.py"


def main(argv=None) -> int:
    dflt = "(default: %(default)s)"
    p = Parser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=1000, help=f"prior samples {dflt}")
    p.add_argument("--weights", default=None, help="toy-world weights (default: the shipped ones)")
    p.add_argument("--direction", default=None, help="default: the shipped direction")
    p.add_argument("--shift", type=float, default=None, help="default: the direction's shift")
    p.add_argument("--seed", type=int, default=0, help=f"seed of the latents {dflt}")
    p.add_argument(
        "--min-fractions",
        default="0,0.01,0.02,0.05,0.1",
        help=f"lower bounds of the mask-size filter, comma list {dflt}",
    )
    args = p.parse_args(argv)
    try:
        bounds = [float(t) for t in args.min_fractions.split(",")]
    except ValueError as err:
        raise UsageError(f"--min-fractions: {err}") from err
    if not all(0 <= b < 0.5 for b in bounds):
        raise UsageError(f"--min-fractions must lie in [0, 0.5), got {args.min_fractions}")
    if args.n < 1:
        raise UsageError(f"--n must be >= 1, got {args.n}")
    if args.weights and not args.direction:
        raise UsageError("--weights needs --direction: the shipped direction is the shipped GAN's")
    gan = build(args.weights)
    d = (
        load_direction(args.direction, gan.latent_dim)
        if args.direction
        else gan.default_direction()
    )
    r = args.shift if args.shift is not None else (d.shift or 5.0)
    v = torch.as_tensor(d.vector, dtype=torch.float32)
    z = torch.randn(args.n, gan.latent_dim, generator=torch.Generator().manual_seed(args.seed))
    with torch.no_grad():
        x, xs = gan.generate(z), gan.generate(z + r * v)
        alpha = (gan.generator.layered(z)[2][:, 0] > 0.5).numpy()
    rules = {"lighter": make_masks("lighter", x, xs)}
    if d.operators is not None:
        ops = torch.as_tensor(d.operators)
        rules["affine"] = make_masks("affine", x, xs, ops, d.bright_operator)
    print(f"{args.n} prior samples, shift {r}, IoU with the generator's own alpha > 0.5")
    for name, m in rules.items():
        line(name, m.numpy(), xs, alpha, FilterSettings())
    auto = resolve_mask("auto", d.operators is not None)
    print(f"\n--mask {auto} (what auto picks) with a lower bound on the mask size:")
    for b in bounds:
        line(f"min {b:g}", rules[auto].numpy(), xs, alpha, FilterSettings(min_fraction=b))
    return 0


def line(name, masks, shifted, alpha, settings) -> None:
    edited, reason = apply_filters(masks, shifted, settings)
    ok = reason == 0
    if not ok.any():
        print(f"{name:8s} raw IoU {iou(masks, alpha).mean():.3f}  accepted 0")
        return
    raw, kept = iou(masks, alpha), iou(edited, alpha)
    empty = (edited.sum((1, 2)) == 0)[ok].mean()
    small = alpha.mean((1, 2)) < 0.1  # small objects: a lower bound must not drop them all
    print(
        f"{name:8s} raw IoU {raw.mean():.3f}  accepted IoU {kept[ok].mean():.3f}  "
        f"accepted {ok.mean():.2f}  empty among accepted {empty:.3f}  "
        f"IoU < 0.5 among accepted {(kept[ok] < 0.5).mean():.3f}  "
        f"small objects (alpha < 10% of the frame) accepted {(ok & small).sum()}/{small.sum()}"
    )


if __name__ == "__main__":
    run_cli(main, PROG)
