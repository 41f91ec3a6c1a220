"""The options of the toy-world GAN's training (`python -m toyworld.train`), as one frozen
dataclass: its fields are the CLI's flags and their defaults, its checks the CLI's errors.

The architecture's options are `toyworld.model.ModelConfig`. A run resumes from its checkpoint
only with the same values of both, except for the fields in `RESUME_MAY_CHANGE`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

LOSSES = ("hinge", "ns")  # hinge; ns: the non-saturating logistic loss of DCGAN


def _opt(default, help: str):
    return dataclasses.field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class GanTrainConfig:
    steps: int = _opt(8000, "phase 1: generator/discriminator steps")
    encoder_steps: int = _opt(3000, "phase 2: encoder steps")
    batch: int = _opt(64, "images per step")
    lr_g: float = _opt(2e-4, "generator learning rate")
    lr_d: float = _opt(4e-4, "discriminator learning rate")
    lr_e: float = _opt(5e-4, "encoder learning rate")
    beta1: float = _opt(0.0, "Adam (beta1, 0.9) for G and D; DCGAN uses 0.5")
    loss: str = _opt("hinge", "hinge, or ns: the non-saturating logistic loss of DCGAN")
    ema_decay: float = _opt(0.998, "decay of the generator's EMA (the EMA weights ship)")
    recon_weight: float = _opt(1.0, "weight of the encoder's ||G(E(x)) - x||_1 term")
    # 2-layer generator only (PerturbGAN): the foreground and its alpha are shifted by up to
    # --shift pixels before compositing, so a realistic image needs a real object/background
    # split; the mean of the SHIFTED alpha (what the composite shows: pixels pushed past the
    # border are gone) is kept within [--min-area, --max-area] by a hinge penalty.
    shift: int = _opt(4, "2-layer model: random shift of the foreground, in pixels")
    min_area: float = _opt(0.05, "2-layer model: lower bound of the mean shifted alpha")
    max_area: float = _opt(0.5, "2-layer model: upper bound of the mean shifted alpha")
    area_weight: float = _opt(1.0, "2-layer model: weight of the alpha area penalty")
    n_train: int = _opt(60000, "world images to train on (scenes 0..N-1 of TRAIN_SEED)")
    seed: int = _opt(0, "initial weights and every random draw")
    threads: int = _opt(2, "torch CPU threads")
    device: str = _opt("cpu", "cpu, cuda, cuda:N or auto")
    render_workers: int = _opt(1, "processes rendering the training images (once; cached)")
    ckpt_every: int = _opt(250, "steps between checkpoints")
    sample_every: int = _opt(500, "GAN steps between sample grids")
    log_every: int = _opt(50, "steps between log records")

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be hinge or ns, got {self.loss!r}")
        if not 0 <= self.beta1 < 1:
            raise ValueError(f"beta1 must be in [0, 1), got {self.beta1}")
        if self.shift < 0 or not 0 <= self.min_area <= self.max_area <= 1:
            raise ValueError("shift must be >= 0 and 0 <= min_area <= max_area <= 1")
        if self.render_workers < 1:
            raise ValueError(f"render_workers must be >= 1, got {self.render_workers}")
        if self.steps < 1 or self.batch < 2 or self.n_train < self.batch:
            raise ValueError("steps must be >= 1, batch >= 2 and n_train >= batch")
        if min(self.threads, self.ckpt_every, self.sample_every, self.log_every) < 1:
            raise ValueError("threads, ckpt_every, sample_every and log_every must be >= 1")


# What may change between the runs of one folder: extending or cutting a run short, logging,
# threads and the device. Everything else changes the math, so a resume must agree on it.
RESUME_MAY_CHANGE = (
    "steps",
    "encoder_steps",
    "threads",
    "device",
    "render_workers",
    "ckpt_every",
    "sample_every",
    "log_every",
)
