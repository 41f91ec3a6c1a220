"""The self-training step of the toy-world experiment: the finished synthetic U-Net labels
unlabelled world images itself and trains further on them (`python -m trainer --adapt-images`,
trainer/adapt.py; docs/self-training.md).

The step continues the synthetic run rather than training again: it copies the run's last
checkpoint (taken at --steps, before any self-training step) into a new trainer folder and
runs the same trainer command with the --adapt-* options added; the trainer accepts that and
ends with the same weights as one run with the options from the start. So the synthetic
model and the self-trained one come from one training, and both are evaluated.

The target images are world TRAINING scenes (TRAIN_SEED, the GAN's training distribution),
written with their masks for the world's folder layout; the trainer reads images/ only. A
target folder sharing an image with an evaluation set is refused: scoring a model on the
images it labelled itself would not measure generalisation.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

from segcore.cli import UsageError
from toyworld.experiment_steps import Training, run_command, shard_pattern, world_scenes
from toyworld.world import TRAIN_SEED

# What the self-training folder takes over from the finished synthetic run.
CONTINUED = ("checkpoint.pt", "config.json", "log.jsonl")
DEMO_ROUNDS = 3
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm")


@dataclass(frozen=True)
class SelfTraining:
    """The trainer's --adapt-* options; None leaves one at the trainer's default."""

    rounds: int | None = None
    steps: int | None = None
    margin: float | None = None
    keep: float | None = None
    mix: float | None = None
    schedule: str | None = None
    jitter: float | None = None
    refine: str | None = None

    def args(self, images: Path) -> list[str]:
        cmd = ["--adapt-images", str(images)]
        for name in ("rounds", "steps", "margin", "keep", "mix", "schedule", "jitter", "refine"):
            value = getattr(self, name)
            cmd += [f"--adapt-{name}", str(value)] if value is not None else []
        return cmd


def world_targets(folder: Path, count: int) -> Path:
    """`count` unlabelled world training scenes -> folder (images/ is what the trainer reads)."""
    return world_scenes(folder, count, seed=TRAIN_SEED)


def image_files(folder: Path) -> list[Path]:
    """The image files of a folder of images or of a dataset folder with images/."""
    folder = folder / "images" if (folder / "images").is_dir() else folder
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def refuse_evaluation_images(target: Path, evaluation: list[Path]) -> None:
    """UsageError (one line) when a target image is also an evaluation image: the same file
    or the same bytes under another name."""
    digests = {hashlib.sha256(p.read_bytes()).hexdigest(): p for p in image_files(target)}
    for folder in evaluation:
        same = [p for p in image_files(folder) if hashlib.sha256(p.read_bytes()).hexdigest()
                in digests]  # fmt: skip
        if same:
            raise UsageError(
                f"the self-training images {target} include {len(same)} image(s) of the "
                f"evaluation set {folder} (e.g. {same[0].name}); self-train on other images "
                "than those scored"
            )


def self_train(
    training: Training,
    shards: Path,
    count: int,
    synthetic: Path,
    out: Path,
    images: Path,
    options: SelfTraining,
) -> Path:
    """The synthetic U-Net `synthetic` (finished) continued with self-training into `out`;
    out/model.json marks it finished, and an interrupted run is continued."""
    if (out / "model.json").exists():
        return out
    if not (out / "checkpoint.pt").exists():
        out.mkdir(parents=True, exist_ok=True)
        for name in CONTINUED:
            shutil.copyfile(synthetic / name, out / name)
    cmd = training.command(shard_pattern(shards, count), out, resume=True)
    run_command([*cmd, *options.args(images)])
    return out


def demo_options(synthetic_steps: int) -> SelfTraining:
    """The demo's self-training: as many steps as the synthetic training, in DEMO_ROUNDS
    rounds (at the demo's 600 steps: the trainer's defaults, 3 x 200)."""
    return SelfTraining(rounds=DEMO_ROUNDS, steps=max(1, round(synthetic_steps / DEMO_ROUNDS)))


def demo_targets(cfg, out: Path, test: Path) -> Path | None:
    """The experiment's self-training images (none when --no-self-train): --adapt-images, or
    --adapt-targets unlabelled world training scenes in OUT/world_train; refused (one line)
    when they share an image with an evaluation set."""
    if not cfg.self_train:
        return None
    if cfg.adapt_images:
        target = Path(cfg.adapt_images)
        if not target.is_dir():
            raise UsageError(f"--adapt-images {target}: no such folder")
    else:
        target = world_targets(out / "world_train", cfg.adapt_targets)
    horses = [Path(cfg.horses)] if cfg.horses and Path(cfg.horses).is_dir() else []
    refuse_evaluation_images(target, [test, *horses])
    return target


def demo_self_training(cfg, out: Path, test: Path, unet: Path, target: Path, stamp) -> Path:
    """The synthetic U-Net continued with self-training on `target` -> OUT/unet_self, scored
    on the same sets as the synthetic one (OUT/eval/<set>_self_trained)."""
    from toyworld.experiment_steps import evaluate

    options = demo_options(cfg.steps)
    stamp(
        f"5/6 self-training, {options.rounds} rounds x {options.steps} steps, on the unlabelled "
        f"images {target} -> {out / 'unet_self'}"
    )
    adapted = self_train(
        cfg.training(), out / "shards", cfg.shards, unet, out / "unet_self", target, options
    )
    stamp("5/6 evaluating the self-trained U-Net")
    name = "toy world (held-out, true masks), self-trained"
    evaluate(adapted, test, out / "eval" / "world_test_self_trained", name)
    if cfg.horses and Path(cfg.horses).is_dir():
        name = "Weizmann horse (real), self-trained on the world images"
        evaluate(adapted, Path(cfg.horses), out / "eval" / "weizmann_horse_self_trained", name)
    return adapted
