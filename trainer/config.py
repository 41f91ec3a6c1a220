"""The trainer's one typed, frozen config (defaults = PAPER.md section 5) and its CLI.

`python -m trainer --help` lists every option. The resolved config (with the world size)
is written to OUT/config.json and into every checkpoint; `--resume` accepts a checkpoint only
if every key that shapes the weights matches (RESUME_MAY_DIFFER lists the ones that may not).
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

from segcore.cli import UsageError
from segcore.config import config_hash
from trainer.unet import LOSSES

# Keys that do not change the weights a run produces: a resume may change them.
# `steps` may grow (train longer); the lr drop is at a fixed step, not a fraction of `steps`.
RESUME_MAY_DIFFER = frozenset(
    {"out", "steps", "log_every", "val_every", "val_samples", "val_data", "ckpt_every",
     "max_bad_fraction", "device"}
)  # fmt: skip


@dataclass(frozen=True)
class TrainConfig:
    shards: str  # brace pattern(s) of training shards, local or s3://
    out: str  # output folder, local or s3://
    steps: int = 12000  # PAPER.md section 5
    batch_size: int = 95  # global batch (all ranks together)
    per_rank_batch: int = 95  # resolved: batch_size // world_size
    world_size: int = 1
    lr: float = 1e-3  # Adam, default betas
    lr_drop_step: int = 8000  # lr x lr_drop_factor from this step on
    lr_drop_factor: float = 0.2
    width: float = 1.0  # channel multiplier of the U-Net (1.0 = the paper's 13.4 M params)
    loss: str = "ce"  # "ce" (authors' code, 2 classes) or "bce" (paper text, 1 logit)
    resolution: int = 128  # training side; shards at another size are resized in the loader
    seed: int = 0
    workers: int = 4  # DataLoader workers per rank (part of the data stream: fixed on resume)
    amp: str = "auto"  # "auto" = bf16 autocast on CUDA, off on CPU; "bf16"; "off"
    device: str = "auto"  # "auto" = cuda:LOCAL_RANK if available, else cpu
    val_shards: str = "auto"  # "auto" (last shard), "none", indices "490-499", or a pattern
    val_samples: int = 512  # hold-out samples used per validation
    val_every: int = 1000
    val_data: str | None = None  # images/ + masks/ folder of real images (eval.datasets)
    ckpt_every: int = 1000
    log_every: int = 50
    max_bad_fraction: float = 0.05  # stop when more than this fraction of samples fail

    def __post_init__(self):
        checks = [
            (self.steps >= 1, f"--steps must be >= 1, got {self.steps}"),
            (self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}"),
            (self.lr > 0, f"--lr must be > 0, got {self.lr}"),
            (self.width > 0, f"--width must be > 0, got {self.width}"),
            (self.loss in LOSSES, f"--loss must be one of {LOSSES}, got {self.loss!r}"),
            (self.resolution >= 32, f"--resolution must be >= 32, got {self.resolution}"),
            (self.workers >= 0, f"--workers must be >= 0, got {self.workers}"),
            (self.amp in ("auto", "bf16", "off"), f"--amp: auto, bf16 or off, not {self.amp!r}"),
            (self.val_samples >= 1, f"--val-samples must be >= 1, got {self.val_samples}"),
            (min(self.val_every, self.ckpt_every, self.log_every) >= 1, "every-N options >= 1"),
            (0 <= self.max_bad_fraction < 1, "--max-bad-fraction must be in [0, 1)"),
        ]
        for ok, msg in checks:
            if not ok:
                raise UsageError(msg)


def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig(shards="", out="")
    p = argparse.ArgumentParser(
        prog="python -m trainer",
        description="Train the U-Net segmenter on generator shards (single process or torchrun).",
    )
    p.add_argument("--shards", required=True, help="e.g. 's3://b/run/shard-{000000..000499}.tar'")
    p.add_argument("--out", required=True, help="output folder (local path or s3://...)")
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch-size", type=int, default=None, help=f"global batch ({d.batch_size})")
    p.add_argument(
        "--per-rank-batch", type=int, default=None, help="per-rank batch (global = this x ranks)"
    )
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--lr-drop-step", type=int, default=d.lr_drop_step)
    p.add_argument("--lr-drop-factor", type=float, default=d.lr_drop_factor)
    p.add_argument("--width", type=float, default=d.width, help="U-Net channel multiplier")
    p.add_argument("--loss", choices=LOSSES, default=d.loss)
    p.add_argument("--resolution", type=int, default=d.resolution)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--workers", type=int, default=d.workers, help="DataLoader workers per rank")
    p.add_argument("--amp", choices=("auto", "bf16", "off"), default=d.amp)
    p.add_argument("--device", default=d.device)
    p.add_argument("--val-shards", default=d.val_shards)
    p.add_argument("--val-samples", type=int, default=d.val_samples)
    p.add_argument("--val-every", type=int, default=d.val_every)
    p.add_argument("--val-data", default=None, help="folder with images/ and masks/ (real data)")
    p.add_argument("--ckpt-every", type=int, default=d.ckpt_every)
    p.add_argument("--log-every", type=int, default=d.log_every)
    p.add_argument("--max-bad-fraction", type=float, default=d.max_bad_fraction)
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    return p


def split_batch(batch_size: int | None, per_rank: int | None, world: int) -> tuple[int, int]:
    """(global, per-rank) batch. Never truncates: an uneven split is an error with options."""
    if per_rank is not None:
        if per_rank < 1:
            raise UsageError(f"--per-rank-batch must be >= 1, got {per_rank}")
        if batch_size is not None and batch_size != per_rank * world:
            raise UsageError(
                f"--batch-size {batch_size} != --per-rank-batch {per_rank} x {world} ranks; "
                "give one of them"
            )
        return per_rank * world, per_rank
    batch_size = TrainConfig.batch_size if batch_size is None else batch_size
    if batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {batch_size}")
    if batch_size % world:
        lo, hi = (batch_size // world) * world, -(-batch_size // world) * world
        opts = [f"--batch-size {b} ({b // world} per rank)" for b in (lo, hi) if b > 0]
        raise UsageError(
            f"global batch {batch_size} does not split evenly over {world} ranks; use "
            + " or ".join(opts)
            + f", or --per-rank-batch P (global P x {world})"
        )
    return batch_size, batch_size // world


def resolve(args: argparse.Namespace, world_size: int) -> TrainConfig:
    global_batch, per_rank = split_batch(args.batch_size, args.per_rank_batch, world_size)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    given = {k: v for k, v in vars(args).items() if k in fields}
    given.update(batch_size=global_batch, per_rank_batch=per_rank, world_size=world_size)
    return TrainConfig(**given)


def resume_mismatch(saved: dict, current: TrainConfig) -> list[str]:
    """Keys (with both values) that differ and would change the weights."""
    now = dataclasses.asdict(current)
    keys = sorted((set(saved) | set(now)) - RESUME_MAY_DIFFER)
    return [f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in keys if saved.get(k) != now.get(k)]


def run_hash(cfg: TrainConfig) -> str:
    """The run's identity: the hash of every key that shapes the weights (config.json and the
    exported model's sidecar carry the same one, and a resume keeps it)."""
    return config_hash(cfg, exclude=tuple(sorted(RESUME_MAY_DIFFER)))
