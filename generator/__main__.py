"""python -m generator: GAN samples -> latent-shift masks -> filters -> WebDataset shards.

On a laptop (Ray in-process, CPU actors, the built-in random GAN):
    python -m generator --shards 4 --samples-per-shard 64 --out runs/gen1
On a Ray cluster (one actor per GPU, shards uploaded by the workers):
    ray job submit -- python -m generator --shards 500 --gan NAME --direction dir.json \
        --out s3://bucket/run1 --address auto
Re-running the same command resumes (finished shards are skipped); a different config on an
existing run folder is refused. See README.md, "Generator".
"""

from __future__ import annotations

import argparse
import sys

from segcore.cli import UsageError, run_cli

PROG = "python -m generator"


def parse_args(argv):
    from generator.filters import FILTERS
    from generator.gans import DEFAULT_GAN, available
    from generator.masks import MASKS

    p = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--shards", type=int, required=True, help="number of shards")
    p.add_argument("--out", required=True, help="run folder: local path or s3://bucket/prefix")
    p.add_argument("--samples-per-shard", type=int, default=1000)
    p.add_argument("--gan", default=DEFAULT_GAN, help=f"one of: {', '.join(available())}")
    p.add_argument("--weights", default=None, help="weights path or handle for --gan")
    p.add_argument(
        "--direction",
        default=None,
        help="direction file (.json from 'directions score --pick', or .npy/.pt); "
        "default: the GAN's shipped direction, if it has one",
    )
    p.add_argument(
        "--shift",
        type=float,
        default=None,
        help="shift r in z + r*h (default: the direction file's, else 5)",
    )
    p.add_argument("--latents", default="prior", help="'prior' (N(0,I)) or embeddings FILE.npy")
    p.add_argument("--alpha", type=float, default=0.2, help="noise scale for embeddings latents")
    p.add_argument(
        "--mask",
        choices=("auto", *MASKS),
        default="auto",
        help="auto: 'affine' (Appendix B) when the direction file carries fitted operators "
        "(written by 'directions score --pick'), else 'lighter' (the paper's rule)",
    )
    p.add_argument(
        "--filters",
        default=",".join(FILTERS),
        help=f"comma list from {','.join(FILTERS)}, or 'none'",
    )
    p.add_argument("--connectivity", type=int, choices=(4, 8), default=8)
    p.add_argument(
        "--min-fraction",
        type=float,
        default=0.0,
        help="mask-size filter: also reject masks covering less than this fraction "
        "(0: no lower bound, as in the paper's code; an empty mask then passes)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=64, help="latents per forward (x2 images)")
    p.add_argument("--jpeg-quality", type=int, default=95)
    p.add_argument("--png-compression", type=int, default=1)
    p.add_argument(
        "--workers", type=int, default=None, help="actors (default: one per GPU, else one per CPU)"
    )
    p.add_argument(
        "--address",
        default=None,
        help="Ray address ('auto' joins a cluster); default: start Ray in-process",
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="finish an existing run with the same config (--no-resume: refuse "
        "an existing run folder)",
    )
    p.add_argument("--max-tries", type=int, default=3, help="tries per shard before failing")
    return p.parse_args(argv)


def main(argv=None) -> int:
    from generator.ray_runner import GenerationFailed, RaySettings
    from generator.run import generate, resolve_config, summary
    from segcore import storage

    args = parse_args(argv)
    filters = (
        ()
        if args.filters.strip() == "none"
        else tuple(f.strip() for f in args.filters.split(",") if f.strip())
    )
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    config, embeddings = resolve_config(
        shards=args.shards,
        gan_name=args.gan,
        weights=args.weights,
        direction_file=args.direction,
        shift=args.shift,
        latents=args.latents,
        samples_per_shard=args.samples_per_shard,
        alpha=args.alpha,
        mask=args.mask,
        filters=filters,
        connectivity=args.connectivity,
        min_fraction=args.min_fraction,
        seed=args.seed,
        batch_size=args.batch_size,
        jpeg_quality=args.jpeg_quality,
        png_compression=args.png_compression,
    )
    settings = RaySettings(
        workers=args.workers,
        address=args.address,
        device=args.device,
        max_tries=max(1, args.max_tries),
    )
    try:
        records = generate(config, args.out, embeddings, settings, resume=args.resume)
    except GenerationFailed as err:
        print(f"{PROG}: failed: {err}", file=sys.stderr)
        return 1
    print(f"generator: {storage.redact(args.out)}: {summary(records)}")
    return 0


if __name__ == "__main__":
    run_cli(main, PROG)
