"""python -m generator: GAN samples -> latent-shift masks -> filters -> WebDataset shards.

On a laptop (Ray in-process, CPU actors, the default GAN: the embedded toy-world GAN):
    python -m generator --shards 4 --samples-per-shard 64 --out runs/gen1
On a Ray cluster (one actor per GPU, shards uploaded by the workers):
    ray job submit -- python -m generator --shards 500 --gan NAME --direction dir.json \
        --out s3://bucket/run1 --address auto
Re-running the same command resumes (finished shards are skipped); a different config on an
existing run folder is refused. The defaults are those of `GeneratorConfig` (generator/config.py)
and `RaySettings` (generator/ray_runner.py). Manual: docs/generator.md.
"""

from __future__ import annotations

import argparse
import sys

from segcore import options, recipes
from segcore.cli import UsageError, run_cli

PROG = "python -m generator"

# GeneratorConfig fields that are flags, in --help order, with their help texts. The other
# fields are resolved from the direction file and the embeddings (direction, operators,
# latents_sha256, ...) or are library settings (component_ratio, max_fraction, ...).
_CONFIG_HELP = {
    "shards": "number of shards",
    "samples_per_shard": "samples per shard",
    "gan": "GAN backend",  # build_parser lists the registry's names
    "weights": "weights path or handle for --gan (none: the backend's default)",
    "latents": "'prior' (N(0,I)) or embeddings FILE.npy",
    "filters": "filters to apply",  # build_parser lists them
    "connectivity": "pixel connectivity of the components filter",
    "min_fraction": "mask-size filter: also reject masks covering less than this fraction "
    "(0: no lower bound, as in the paper's code; an empty mask then passes)",
    "seed": "seed of the latent streams",
    "batch_size": "latents per forward (x2 images)",
    "jpeg_quality": "JPEG quality of the images",
    "png_compression": "PNG compression level of the masks (0..9)",
    "truncation": "psi of the GAN's prior mapping, in (0, 1] (stylegan2: w_avg + psi (w - "
    "w_avg)); 1: none",
    "image_format": "images as jpg (JPEG at --jpeg-quality) or png (lossless, at "
    "--png-compression)",
    "direction_scale": "unit: --shift multiplies the direction scaled to norm 1; raw: the "
    "vector as stored (the authors' code: 5 x its stored h_bg)",
    "labeler": "--mask labeler: the SUPERVISED saliency model whose masks replace the latent "
    "shift's (Table 6; the run is then not unsupervised; none: u2net)",
    "labeler_weights": "--mask labeler: the labeler's checkpoint (u2net.pth or u2netp.pth)",
    "bg_threshold": "--mask bg-removal: object where the RGB mean of G(z + r h), on [0, 1], "
    "is below this (Voynov & Babenko's mask_thr)",
}
_RAY_HELP = {
    "workers": "Ray actors (none: one per GPU, else one per --cpus-per-worker CPUs)",
    "address": "Ray address, 'auto' joins a cluster (none: start Ray in-process)",
    "device": "actor device: auto uses GPU actors when the cluster has GPUs",
    "cpus_per_worker": "CPUs per actor, the size of its JPEG/PNG encoder pool (none: the "
    "fewest CPUs per GPU over the GPU nodes, CPUs // GPUs; 1 for CPU actors)",
    "max_tries": "tries per shard before failing",
    "upload_deadline": "seconds a finished shard's upload (and each write to the store) is "
    "retried through a store outage, with backoff, before the run fails; the shard's GAN work "
    "is kept meanwhile",
}
NO_FILTERS = "none"
# the flags passed to resolve_config under their own names
_SAMPLE_OPTIONS = (
    "samples_per_shard", "alpha", "connectivity", "min_fraction", "seed", "batch_size",
    "jpeg_quality", "png_compression",
)  # fmt: skip
_SAMPLE_OPTIONS += ("latents_target", "image_format", "direction_scale", "recipe")
_SAMPLE_OPTIONS += ("truncation",)
_SAMPLE_OPTIONS += ("labeler", "labeler_weights")
_SAMPLE_OPTIONS += ("classes",)
_SAMPLE_OPTIONS += ("bg_threshold",)
CLASSES_HELP = (
    "a class-conditional GAN (biggan): the classes each sample's class is drawn from, "
    "uniformly: ids and ranges such as '1,5,10-20' (ImageNet ids 0..999), or a file of them "
    "(default: all the GAN's classes)"
)


def build_parser() -> argparse.ArgumentParser:
    from generator import labelers
    from generator.config import GeneratorConfig
    from generator.filters import FILTERS
    from generator.gans import available
    from generator.masks import MASKS
    from generator.ray_runner import RaySettings
    from generator.run import DEFAULT_SHIFT, MASK_AUTO
    from segcore import schema

    p = options.Parser(prog=PROG, description=__doc__.split("\n")[0])
    what = p.add_argument_group("what to generate (recorded in the run's config.json)")
    helps = {
        **_CONFIG_HELP,
        "gan": f"one of: {', '.join(available())}, or package.module:factory",
        "filters": f"filters to apply, from {','.join(FILTERS)}, or '{NO_FILTERS}'",
    }
    choices = {
        "connectivity": (4, 8),
        "image_format": schema.IMAGE_FORMATS,
        "direction_scale": ("unit", "raw"),
        "labeler": labelers.available(),
    }
    options.add_options(what, GeneratorConfig, only=list(_CONFIG_HELP), help=helps, choices=choices)
    what.add_argument(
        "--alpha",
        type=options.finite_float,
        default=None,
        help="noise scale of embeddings latents, z = E(I) + alpha*xi; with --latents FILE.npy "
        "it comes from here, else --latents-target, else the recipe; the paper: 0 for ImageNet "
        "embeddings, 0.2 for others (default: none)",
    )
    what.add_argument(
        "--latents-target",
        choices=recipes.TARGETS,
        default=None,
        help="what --latents FILE.npy embeds, for the paper's alpha: imagenet (0) or other "
        "(0.2) (default: none)",
    )
    recipes.add_option(what, "generator")
    what.add_argument("--classes", default=None, help=CLASSES_HELP)
    what.add_argument(
        "--direction",
        default=None,
        help="direction file (.json from 'directions score --pick', or .npy/.pt) "
        "(default: the GAN's shipped direction, if it has one)",
    )
    what.add_argument(
        "--shift",
        type=options.finite_float,
        default=None,
        help=f"shift r in z + r*h (default: the direction file's, else {DEFAULT_SHIFT})",
    )
    what.add_argument(
        "--mask",
        choices=(MASK_AUTO, *MASKS, labelers.LABELER_MASK),
        default=MASK_AUTO,
        help=f"{MASK_AUTO}: 'affine' (Appendix B) when the direction file carries fitted "
        "operators (written by 'directions score --pick'), else 'lighter' (the paper's rule); "
        "'bg-removal': Voynov & Babenko's rule for BigGAN's background-removal direction "
        f"(section 4.4, docs/biggan.md); '{labelers.LABELER_MASK}': masks from --labeler on "
        "G(z), a SUPERVISED model "
        "(docs/labelers.md) (default: %(default)s)",
    )
    where = p.add_argument_group("where and how it runs")
    where.add_argument(
        "--out", required=True, help="run folder: local path or s3://bucket/prefix (required)"
    )
    options.add_options(
        where,
        RaySettings,
        only=list(_RAY_HELP),
        help=_RAY_HELP,
        choices={"device": ("auto", "cpu", "cuda")},
    )
    where.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="finish an existing run with the same config (--no-resume: refuse "
        "an existing run folder) (default: %(default)s)",
    )
    return p


def parse_args(argv):
    return build_parser().parse_args(argv)


def main(argv=None) -> int:
    from generator.ray_runner import GenerationFailed, RaySettings
    from generator.run import generate, resolve_config, summary
    from segcore import storage

    parser = build_parser()
    args = parser.parse_args(argv)
    recipe = recipes.get(args.recipe)
    # the recipe's values for the options not given; the given ones are recorded as overrides
    overrides = recipes.apply(recipe, "generator", args, recipes.given_options(parser, argv))
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    if not args.upload_deadline >= 0:
        raise UsageError(f"--upload-deadline must be >= 0 seconds, got {args.upload_deadline}")
    settings = options.config_from_args(RaySettings, args, max_tries=max(1, args.max_tries))
    config, embeddings = resolve_config(
        shards=args.shards,
        gan_name=args.gan,
        weights=args.weights,
        direction_file=args.direction,
        shift=args.shift,
        latents=args.latents,
        mask=args.mask,
        filters=() if tuple(args.filters) == (NO_FILTERS,) else tuple(args.filters),
        overrides=overrides,
        **{name: getattr(args, name) for name in _SAMPLE_OPTIONS},
    )
    if recipe.name != recipes.DEFAULT:
        print(f"generator: {recipes.describe(recipe, overrides)}")
    try:
        records = generate(config, args.out, embeddings, settings, resume=args.resume)
    except GenerationFailed as err:
        print(f"{PROG}: failed: {err}", file=sys.stderr)
        return 1
    print(f"generator: {storage.redact(args.out)}: {summary(records)}")
    return 0


if __name__ == "__main__":
    run_cli(main, PROG)
