"""The main job on the embedded toy world, end to end and offline (`make demo`).

    python -m toyworld.experiment OUT [--latents prior|embeddings] [--shards 8] ...

Steps (`toyworld.experiment_steps`; a rerun resumes each one):
  1. held-out world scenes with true masks, for evaluation only -> OUT/world_test
  2. with `--latents embeddings` (E-BigBiGAN, the paper, section 3.2): encoder embeddings of
     unlabelled world training images (no mask is read) -> OUT/embed/embeddings.npy
  3. mask shards from the shipped toy-world GAN and its shipped direction (Ray, local): latents
     N(0, I), or the embeddings + alpha * N(0, I) (alpha 0.2, the paper's value off ImageNet);
     the paper's filters plus a lower bound on the mask size (`--min-fraction 0.02`: near-empty
     masks of a one-object world are wrong, docs/toyworld.md) -> OUT/shards
  4. the U-Net on them with torchrun -> OUT/unet
  5. evaluation on the held-out scenes and, with `--horses DIR`, on the Weizmann horses
     -> OUT/eval/<set>/ (metrics.json, curves, best/worst grid)
  6. the report (`toyworld.report`) -> OUT/metrics.json, OUT/report.md
Every step is deterministic on CPU, so the same options give the same numbers; they are those
of the world benchmark's part (a) (`benchmarks/pipeline_world.py`, docs/benchmarks.md).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from segcore import options, recipes
from segcore.cli import run_cli
from toyworld import DEFAULT_DIRECTION, experiment_adapt, report
from toyworld.experiment_steps import (
    Clock,
    Generation,
    Training,
    evaluate,
    failed_stage,
    generate,
    train,
    world_embeddings,
    world_scenes,
)

PROG = "python -m toyworld.experiment"
LATENTS = ("prior", "embeddings")
MASKS = ("auto", "affine", "lighter")


def _help(text: str) -> dict:
    return {"help": text}


@dataclass(frozen=True)
class ExperimentConfig:
    """The experiment's options; the defaults are `make demo`'s."""

    test: int = field(default=1000, metadata=_help("held-out world scenes to evaluate on"))
    latents: str = field(
        default="prior",
        metadata=_help("prior: N(0, I); embeddings: encoder embeddings of world training images"),
    )
    embed_images: int = field(
        default=2000, metadata=_help("unlabelled world training images to embed (embeddings)")
    )
    alpha: float = field(default=0.2, metadata=_help("noise scale around the embeddings"))
    shards: int = field(default=8, metadata=_help("shards to generate"))
    samples_per_shard: int = field(default=500, metadata=_help("samples in each shard"))
    mask: str = field(default="auto", metadata=_help("the generator's mask rule"))
    min_fraction: float = field(
        default=0.02,
        metadata=_help("the generator's lower bound on the mask size (0: the paper's filters)"),
    )
    steps: int = field(default=600, metadata=_help("U-Net training steps"))
    width: float = field(default=0.25, metadata=_help("U-Net width multiplier"))
    batch_size: int = field(default=32, metadata=_help("U-Net batch, all processes together"))
    lr_drop_step: int | None = field(
        default=None, metadata=_help("U-Net lr drop step (none: the trainer's)")
    )
    seed: int = field(default=0, metadata=_help("the generator's and the trainer's seed"))
    weights: str | None = field(
        default=None, metadata=_help("toyworld weights .pt (none: the shipped GAN)")
    )
    direction: str | None = field(
        default=None, metadata=_help("direction file (none: the shipped direction)")
    )
    nproc: int = field(default=2, metadata=_help("trainer processes (torchrun)"))
    workers: int = field(default=2, metadata=_help("generator workers (Ray actors)"))
    log_every: int = field(default=50, metadata=_help("trainer log interval, in steps"))
    recipe: str = field(
        default="auto",
        metadata=_help(
            "the generator's and the trainer's --recipe; under another than auto, --mask and "
            "--min-fraction are passed only when given, the shipped direction is passed as "
            "--direction, and the driver's trainer options are recorded as overrides"
        ),
    )
    self_train: bool = field(
        default=True,
        metadata=_help(
            "continue the U-Net with self-training on unlabelled images (docs/self-training.md) "
            "and report both U-Nets"
        ),
    )
    adapt_images: str | None = field(
        default=None,
        metadata=_help(
            "self-training images (none: --adapt-targets unlabelled world training scenes); "
            "refused when they include an evaluation image"
        ),
    )
    adapt_targets: int = field(
        default=2000, metadata=_help("unlabelled world training scenes to self-train on")
    )
    horses: str | None = field(
        default=None,
        metadata=_help(
            "Weizmann horse folder to evaluate on too (skipped with a message if absent)"
        ),
    )

    def __post_init__(self):
        if self.latents not in LATENTS:
            raise ValueError(f"latents must be one of {', '.join(LATENTS)}, got {self.latents!r}")
        recipes.get(self.recipe)  # a one-line error naming the recipes
        if self.mask not in MASKS:
            raise ValueError(f"mask must be one of {', '.join(MASKS)}, got {self.mask!r}")
        counts = ("test", "embed_images", "shards", "samples_per_shard", "steps", "batch_size")
        low = [n for n in (*counts, "nproc", "workers", "log_every") if getattr(self, n) < 1]
        if low:
            raise ValueError(f"{', '.join(options.flag(n) for n in low)} must be >= 1")
        if self.weights and not self.direction:
            raise ValueError(
                "--weights needs --direction: the shipped direction belongs to the shipped GAN"
            )

    def generation(self, latents: Path | None = None, given: frozenset = frozenset()) -> Generation:
        """The generator's settings; `latents` is the embeddings file when latents=embeddings.
        Under a recipe other than auto, --mask and --min-fraction are passed only when `given`
        (the options given on the command line) holds them; the recipe sets them otherwise."""
        own = self.recipe == recipes.DEFAULT
        direction = self.direction
        if not own and direction is None:
            direction = str(DEFAULT_DIRECTION)  # the paper's recipes take a direction file
        return Generation(
            shards=self.shards,
            samples_per_shard=self.samples_per_shard,
            seed=self.seed,
            mask=self.mask if own or "mask" in given else None,
            min_fraction=self.min_fraction if own or "min_fraction" in given else None,
            recipe=self.recipe,
            latents=None if latents is None else str(latents),
            alpha=None if latents is None else self.alpha,
            weights=self.weights,
            direction=direction,
            workers=self.workers,
        )

    def training(self) -> Training:
        return Training(
            width=self.width,
            batch_size=self.batch_size,
            steps=self.steps,
            seed=self.seed,
            lr_drop_step=self.lr_drop_step,
            nproc=self.nproc,
            log_every=self.log_every,
            recipe=self.recipe,
        )


def run(cfg: ExperimentConfig, out: Path, prog: str = PROG, given: frozenset = frozenset()) -> dict:
    """All six steps into `out`; -> the report (`toyworld.report.assemble`). `given`: the
    options given on the command line (they win over a recipe's values)."""
    stamp = Clock(prog)
    out.mkdir(parents=True, exist_ok=True)
    stamp(f"1/6 {cfg.test} held-out world scenes with true masks -> {out / 'world_test'}")
    test = world_scenes(out / "world_test", cfg.test)
    targets = experiment_adapt.demo_targets(cfg, out, test)  # before any work: may refuse
    latents = None
    if cfg.latents == "embeddings":
        stamp(
            f"2/6 embedding {cfg.embed_images} unlabelled world training images -> {out / 'embed'}"
        )
        latents = world_embeddings(out / "embed", cfg.embed_images, cfg.weights)
    else:
        stamp("2/6 prior latents N(0, I): nothing to embed (--latents embeddings adapts them)")
    stamp(f"3/6 generating {cfg.shards} x {cfg.samples_per_shard} samples -> {out / 'shards'}")
    generate(cfg.generation(latents, given), out / "shards")
    stamp(f"4/6 training the U-Net ({cfg.nproc} processes, {cfg.steps} steps) -> {out / 'unet'}")
    unet = train(cfg.training(), out / "shards", cfg.shards, out / "unet")
    stamp("5/6 evaluating on the held-out world scenes")
    evaluate(unet, test, out / "eval" / "world_test", "toy world (held-out, true masks)")
    if cfg.horses and Path(cfg.horses).is_dir():
        stamp(f"5/6 evaluating on the Weizmann horses ({cfg.horses})")
        evaluate(unet, Path(cfg.horses), out / "eval" / "weizmann_horse", "Weizmann horse (real)")
    elif cfg.horses:
        print(f"{prog}: {cfg.horses} not found; skipping the horse evaluation", file=sys.stderr)
    if targets is not None:
        experiment_adapt.demo_self_training(cfg, out, test, unet, targets, stamp)
    stamp("6/6 report")
    result = report.assemble(out)
    for line in report.summary_lines(result):
        print(line)
    stamp(f"done: report in {out / 'report.md'}, metrics in {out / 'metrics.json'}")
    return result


def build_parser() -> options.Parser:
    parser = options.Parser(
        prog=PROG,
        description="The toy-world experiment end to end: held-out scenes, (embeddings), "
        "shards, U-Net, evaluation, report. Rerunning resumes every step.",
    )
    parser.add_argument("out", help="experiment folder")
    options.add_options(
        parser, ExperimentConfig, choices={"latents": LATENTS, "mask": MASKS}, floats="finite"
    )
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    cfg = options.config_from_args(ExperimentConfig, args)
    given = frozenset(recipes.given_options(parser, argv))
    try:
        run(cfg, Path(args.out), given=given)
    except subprocess.CalledProcessError as err:  # the stage has printed why
        print(f"{PROG}: error: '{failed_stage(err)}' exited with {err.returncode}", file=sys.stderr)
        return err.returncode
    return 0


if __name__ == "__main__":
    run_cli(main, PROG)
