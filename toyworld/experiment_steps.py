"""The steps of the toy-world experiment: world scenes -> embeddings -> shards -> U-Net -> eval.

Each step calls a stage through its public command line, in a child process of the running
Python (`sys.executable -m generator`, `-m torch.distributed.run -m trainer`, `-m eval`), so
the tools are the ones installed in this environment; the world's scenes come from
`toyworld.world`'s public functions. Every step resumes: finished work is kept and a rerun
skips it (`generate` leaves that to the generator, which also refuses a run folder made with
another config). `toyworld.experiment` chains the steps for `make demo`;
`benchmarks/pipeline_world.py` calls them for each of its parts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from segcore import schema
from toyworld.world import TEST_SEED, TRAIN_SEED, write_folder

EMBEDDINGS = "embeddings.npy"  # in the embedding folder, beside world_train/
# U-Net input size and eval resize: the world's and the GAN's resolution
RESOLUTION = 32


def stage_env() -> dict[str, str]:
    """The environment of the stages: one thread per process (the trainer runs one process per
    core) and gloo on the loopback interface, unless the caller's environment sets them."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    return env


def run_command(cmd: Sequence[str]) -> None:
    """Run one stage; CalledProcessError when it fails (the stage has printed why)."""
    print("+", " ".join(cmd), flush=True)
    subprocess.run(list(cmd), check=True, env=stage_env())


def failed_stage(err: subprocess.CalledProcessError) -> str:
    """'python -m generator' (the modules named by -m) of a stage command that failed."""
    cmd = list(err.cmd)
    return "python -m " + " -m ".join(cmd[i + 1] for i, a in enumerate(cmd[:-1]) if a == "-m")


@dataclass(frozen=True)
class Generation:
    """What `python -m generator --gan toyworld` is asked for: masks from the latent direction
    (the paper, section 3.1), latents from the prior or around embeddings (section 3.2). None
    leaves an option at the generator's default."""

    shards: int
    samples_per_shard: int
    seed: int = 0
    mask: str | None = "auto"  # None: the recipe's
    min_fraction: float | None = 0.0  # None: the recipe's
    filters: str | None = None  # comma list or "none"
    latents: str | None = None  # embeddings .npy; None = prior N(0, I)
    alpha: float | None = None  # noise scale around the embeddings
    weights: str | None = None  # None: the shipped GAN
    direction: str | None = None  # None: the shipped direction
    workers: int = 2
    device: str = "cpu"
    recipe: str = "auto"  # the generator's --recipe (segcore.recipes)
    image_format: str | None = None  # None: the generator's default (or the recipe's)

    def command(self, out: Path) -> list[str]:
        cmd = [sys.executable, "-m", "generator", "--gan", "toyworld"]
        cmd += ["--shards", str(self.shards), "--samples-per-shard", str(self.samples_per_shard)]
        cmd += ["--out", str(out), "--workers", str(self.workers), "--device", self.device]
        cmd += ["--weights", self.weights] if self.weights else []
        cmd += ["--direction", self.direction] if self.direction else []
        cmd += ["--mask", self.mask] if self.mask is not None else []
        cmd += ["--min-fraction", str(self.min_fraction)] if self.min_fraction is not None else []
        cmd += ["--seed", str(self.seed)]
        cmd += ["--filters", self.filters] if self.filters is not None else []
        if self.latents is not None:
            cmd += ["--latents", self.latents]
            cmd += ["--alpha", str(self.alpha)] if self.alpha is not None else []
        cmd += ["--recipe", self.recipe] if self.recipe != "auto" else []
        cmd += ["--image-format", self.image_format] if self.image_format else []
        return cmd


@dataclass(frozen=True)
class Training:
    """What the trainer is asked for (U-Net at the world's resolution, DataLoader in the rank's
    own process). None leaves an option at the trainer's default."""

    width: float
    batch_size: int
    steps: int
    seed: int = 0
    lr_drop_step: int | None = None
    nproc: int = 2  # torchrun processes on this machine
    log_every: int = 50
    recipe: str = "auto"  # the trainer's --recipe; the options above are given over it

    def command(self, shards: str, out: Path, resume: bool) -> list[str]:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        cmd += [f"--nproc_per_node={self.nproc}", "-m", "trainer", "--shards", shards]
        cmd += ["--out", str(out), "--resolution", str(RESOLUTION), "--width", str(self.width)]
        cmd += ["--batch-size", str(self.batch_size), "--steps", str(self.steps)]
        if self.lr_drop_step is not None:
            cmd += ["--lr-drop-step", str(self.lr_drop_step)]
        cmd += ["--workers", "0", "--log-every", str(self.log_every), "--seed", str(self.seed)]
        cmd += ["--recipe", self.recipe] if self.recipe != "auto" else []
        return cmd + (["--resume"] if resume else [])


def world_scenes(folder: Path, count: int, seed: int = TEST_SEED) -> Path:
    """`count` world scenes with their true masks (images/ + masks/); existing ones are kept."""
    return write_folder(folder, count, seed=seed)


def world_embeddings(folder: Path, count: int, weights: str | None = None) -> Path:
    """Encoder embeddings of `count` unlabelled world TRAINING images (TRAIN_SEED, the GAN's
    training distribution, disjoint from the test scenes): the latents of E-BigBiGAN, the paper,
    section 3.2. -> folder/embeddings.npy, made once. The images go to folder/world_train/
    (its masks/ are written too and never read: the encoder reads images/ only)."""
    emb = folder / EMBEDDINGS
    if not emb.exists():
        images = world_scenes(folder / "world_train", count, seed=TRAIN_SEED) / "images"
        cmd = [sys.executable, "-m", "generator.embed", "--gan", "toyworld"]
        cmd += ["--weights", weights] if weights else []
        run_command([*cmd, "--images", str(images), "--out", str(emb)])
    return emb


def generate(generation: Generation, out: Path) -> Path:
    """Mask shards from the toy-world GAN into `out`. The generator resumes a run folder
    itself (finished shards are kept) and refuses one made with another config."""
    run_command(generation.command(out))
    return out


def shard_pattern(shards: Path, count: int) -> str:
    """shards/shard-{000000..count-1}.tar, as the trainer reads it."""
    return schema.shard_brace_pattern(str(shards), 0, count - 1)


def train(training: Training, shards: Path, count: int, out: Path) -> Path:
    """The U-Net on `count` shards with torchrun; out/model.json marks it finished, and a
    checkpoint left by an interrupted run is resumed."""
    if not (out / "model.json").exists():
        resume = (out / "checkpoint.pt").exists()
        run_command(training.command(shard_pattern(shards, count), out, resume))
    return out


def evaluate(model: Path, data: Path, out: Path, name: str | None = None) -> Path:
    """`python -m eval saliency` of the U-Net on a folder of (image, mask) pairs, resized to the
    world's resolution; out/metrics.json marks it finished."""
    if not (out / "metrics.json").exists():
        cmd = [sys.executable, "-m", "eval", "saliency", "--model", str(model)]
        cmd += ["--data", str(data), "--short-side", str(RESOLUTION), "--out", str(out)]
        cmd += ["--name", name] if name else []
        run_command([*cmd, "--no-progress"])
    return out


def train_and_evaluate(
    training: Training, shards: Path, count: int, run: Path, test: Path, name: str | None = None
) -> Path:
    """run/unet from the shards, evaluated on the `test` scenes into run/eval; -> run/eval."""
    unet = train(training, shards, count, run / "unet")
    return evaluate(unet, test, run / "eval", name)


class Clock:
    """`[12s] text` progress lines, seconds since the clock started."""

    def __init__(self, prog: str):
        self.prog, self.start = prog, time.monotonic()

    def __call__(self, text: str) -> None:
        print(f"{self.prog}: [{time.monotonic() - self.start:.0f}s] {text}", flush=True)
