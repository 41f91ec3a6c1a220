"""The trainer's one typed, frozen config (defaults: the paper, section 3.4) and its CLI.

Every option of `python -m trainer` is a field of TrainConfig with its default stated there
once; `--help` shows them all. The resolved config (with the world size) is written to
OUT/config.json and into every checkpoint; `--resume` accepts a checkpoint only if every key
that shapes the weights matches (RESUME_MAY_DIFFER lists the ones that may not). Options:
docs/trainer.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from dataclasses import dataclass

from segcore import options, recipes
from segcore.cli import UsageError
from segcore.config import config_hash
from trainer import adapt_config
from trainer.unet import LOSSES

AMP_MODES = ("auto", "bf16", "off")
# --workers auto: the CPUs of this process's share of the node, less one for the main process,
# at most MAX_AUTO_WORKERS on a GPU (one worker decodes about 2,200 samples/s, so 8 are several
# times what a U-Net step on an H200 consumes: docs/benchmarks.md#trainer-throughput) and at
# most CPU_AUTO_WORKERS on a CPU, where the step, not decoding, is the bottleneck.
MAX_AUTO_WORKERS = 8
CPU_AUTO_WORKERS = 1

# Keys that do not change the weights a run produces: a resume may change them.
# `steps` may grow (train longer); the lr drop is at a fixed step, not a fraction of `steps`.
RESUME_MAY_DIFFER = frozenset(
    {"out", "steps", "log_every", "val_every", "val_samples", "val_data", "ckpt_every",
     "max_bad_fraction", "device", "collective_timeout"}
)  # fmt: skip
# how the config was resolved (the values a recipe sets are fields of their own)
RESUME_MAY_DIFFER |= {"recipe", "overrides"}
# Seeds feed numpy's legacy seeding (seed + rank), which takes at most 2**32 - 1.
MAX_SEED = 2**31 - 1
# Adam divides the lr by its bias correction (x10 at the first step): far above this the
# float32 step overflows inside the optimizer instead of being caught as non-finite weights.
MAX_LR = 1e30


@dataclass(frozen=True)
class TrainConfig:
    shards: str
    out: str
    steps: int = 12000
    batch_size: int = 95  # global batch (all ranks together)
    per_rank_batch: int = 95  # resolved: batch_size // world_size
    world_size: int = 1  # resolved from torchrun's environment
    lr: float = 1e-3  # Adam, default betas
    lr_drop_step: int = 8000
    lr_drop_factor: float = 0.2
    width: float = 1.0  # 1.0 = the authors' U-Net, 13.4 M parameters
    loss: str = "ce"  # "ce" (authors' code, 2 classes) or "bce" (paper text, 1 logit)
    resolution: int = 128
    seed: int = 0
    workers: int | None = None  # None: auto (resolve_workers); part of the data stream
    threads: int | None = None  # None: auto (resolve_workers); CPU results depend on it
    amp: str = "auto"
    tf32: bool | None = None  # TF32 matmuls/convolutions on CUDA; None: on (False: float32)
    recipe: str = "auto"  # the named recipe the options were resolved with (segcore.recipes)
    overrides: tuple[str, ...] = ()  # "name=value" of each option given over the recipe's value
    device: str = "auto"
    val_shards: str = "auto"
    val_samples: int = 512
    val_every: int = 1000
    val_data: str | None = None
    ckpt_every: int = 1000
    log_every: int = 50
    max_bad_fraction: float = 0.05
    collective_timeout: float = 300.0  # seconds a collective waits for a peer
    # self-training on unlabelled target images (trainer/adapt_config.py)
    adapt_images: str | None = None
    adapt_rounds: int = 3
    adapt_steps: int = 200
    adapt_margin: float = 0.3
    adapt_keep: float = 0.8
    adapt_mix: float = 0.5
    adapt_flip_tta: bool = True
    adapt_min_scale: float = 0.5
    adapt_schedule: str = "cosine"
    adapt_jitter: float = 0.4
    adapt_refine: str = "crf"

    def __post_init__(self):
        floats = ("lr", "lr_drop_factor", "width", "max_bad_fraction", "collective_timeout")
        for name in floats:
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value)):
                raise ValueError(f"--{name.replace('_', '-')} must be a finite number, got {value}")
        checks = [
            (self.steps >= 1, f"--steps must be >= 1, got {self.steps}"),
            (self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}"),
            (0 < self.lr <= MAX_LR, f"--lr must be in (0, {MAX_LR:g}], got {self.lr}"),
            (self.lr_drop_step >= 0, f"--lr-drop-step must be >= 0, got {self.lr_drop_step}"),
            (
                0 < self.lr_drop_factor <= 1,
                f"--lr-drop-factor must be in (0, 1], got {self.lr_drop_factor}",
            ),
            (self.width > 0, f"--width must be > 0, got {self.width}"),
            (0 <= self.seed <= MAX_SEED, f"--seed must be in [0, {MAX_SEED}], got {self.seed}"),
            (self.loss in LOSSES, f"--loss must be one of {LOSSES}, got {self.loss!r}"),
            (self.resolution >= 32, f"--resolution must be >= 32, got {self.resolution}"),
            (
                self.workers is None or self.workers >= 0,
                f"--workers must be >= 0 or auto, got {self.workers}",
            ),
            (
                self.threads is None or self.threads >= 1,
                f"--threads must be >= 1 or auto, got {self.threads}",
            ),
            (self.amp in AMP_MODES, f"--amp: auto, bf16 or off, not {self.amp!r}"),
            (self.val_samples >= 1, f"--val-samples must be >= 1, got {self.val_samples}"),
            (min(self.val_every, self.ckpt_every, self.log_every) >= 1, "every-N options >= 1"),
            (
                0 <= self.max_bad_fraction < 1,
                f"--max-bad-fraction must be in [0, 1), got {self.max_bad_fraction}",
            ),
            (
                self.collective_timeout > 0,
                f"--collective-timeout must be > 0 seconds, got {self.collective_timeout}",
            ),
        ]
        for ok, msg in checks + adapt_config.check(self):
            if not ok:
                raise ValueError(msg)


HELP = {
    "shards": "brace pattern(s) of training shards, local or s3://, "
    "e.g. 's3://b/run/shard-{000000..000499}.tar'",
    "out": "output folder (local path or s3://...)",
    "steps": "optimizer steps (the paper, section 3.4)",
    "lr": "Adam learning rate (default betas)",
    "lr_drop_step": "from this step on the lr is multiplied by --lr-drop-factor",
    "lr_drop_factor": "lr multiplier from --lr-drop-step on",
    "width": "U-Net channel multiplier (1.0 = the authors' U-Net, 13.4 M parameters)",
    "loss": "ce: 2-class cross-entropy (authors' code); bce: one logit (paper text)",
    "resolution": "training side; shards at another size are resized in the loader",
    "seed": "seed of the initial weights and of the data stream",
    "amp": "auto: bf16 autocast on CUDA, off on CPU",
    "tf32": "TF32 matmuls and convolutions on CUDA (none: on; --no-tf32: full float32, as on "
    "the paper's GTX 1080 Ti)",
    "device": "auto: cuda:LOCAL_RANK if available, else cpu",
    "val_shards": "hold-out shards: auto (the last shard), none, indices of the --shards "
    "list ('490-499'), or a shard pattern",
    "val_samples": "hold-out samples used per validation",
    "val_every": "validate every N steps",
    "val_data": "folder with images/ and masks/ of real images, also scored at each validation",
    "ckpt_every": "write OUT/checkpoint.pt every N steps",
    "log_every": "log loss and throughput every N steps",
    "max_bad_fraction": "stop when more than this fraction of the samples read are bad "
    "(undecodable, a mask outside {0, 255}, or missing from an unreadable shard)",
    "collective_timeout": "seconds a rank waits in a collective for its peers before failing "
    "(a dead peer is an error, not a hang); must exceed the longest validation on rank 0",
}
HELP.update(adapt_config.HELP)


def build_parser() -> argparse.ArgumentParser:
    p = options.Parser(
        prog="python -m trainer",
        description="Train the U-Net segmenter on generator shards (single process or torchrun).",
    )
    options.add_options(p, TrainConfig, only=["shards", "out", "steps"], help=HELP)
    # The batch is given either globally or per rank; split_batch resolves the pair with the
    # world size, so neither flag has a parser default.
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help=f"global batch, all ranks together; must split evenly over the ranks "
        f"(default: {TrainConfig.batch_size})",
    )
    p.add_argument(
        "--per-rank-batch",
        type=int,
        default=None,
        help="per-rank batch, global = this x ranks (default: --batch-size / ranks)",
    )
    # The rest in field order; the world size is no option (torchrun's environment sets it),
    # and --workers takes "auto" besides a number.
    added = {"shards", "out", "steps", "batch_size", "per_rank_batch", "world_size", "workers",
             "threads", "recipe", "overrides"}  # fmt: skip
    choices = {
        "loss": LOSSES,
        "amp": AMP_MODES,
        "adapt_schedule": adapt_config.SCHEDULES,
        "adapt_refine": adapt_config.REFINEMENTS,
    }
    options.add_options(p, TrainConfig, skip=added, help=HELP, choices=choices)
    p.add_argument(
        "--workers",
        type=workers_option,
        default=None,
        help=f"DataLoader workers per rank, or auto: this rank's share of the node's CPUs "
        f"less one, at most {MAX_AUTO_WORKERS} on a GPU and {CPU_AUTO_WORKERS} on a CPU. Part "
        "of the data stream: a resume needs the same number, so a resume on another machine "
        "passes the recorded number (config.json) (default: auto)",
    )
    p.add_argument(
        "--threads",
        type=workers_option,
        default=None,
        help="torch CPU threads per rank, or auto: this rank's share of the node's CPUs less "
        "its loader workers, at least 1. CPU results depend on it, so it is recorded and a "
        "resume needs the same number (default: auto)",
    )
    recipes.add_option(p, "trainer")  # applied by trainer/recipe.py
    p.add_argument(
        "--resume",
        action="store_true",
        help="require OUT/checkpoint.pt and continue from it (default: off; without it an OUT "
        "whose checkpoint has the same config is continued too, one with another config is "
        "refused)",
    )
    return p


def workers_option(text: str) -> int | None:
    """--workers: 'auto' (None) or a number >= 0."""
    if text == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto or a number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 or auto, got {value}")
    return value


def auto_workers(cuda: bool, cpus: int, ranks_per_node: int, gpus_per_node: int) -> int:
    """Loader workers per rank for `--workers auto` (a pure function of the machine).

    A rank's share is the node's usable CPUs divided by the ranks on the node (on CUDA: by
    at least the node's GPUs, one rank per GPU); one CPU of it runs the main process.
    """
    share = cpus // max(1, ranks_per_node, gpus_per_node if cuda else 1)
    cap = MAX_AUTO_WORKERS if cuda else CPU_AUTO_WORKERS
    return max(0, min(cap, share - 1))


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. a container's or Slurm's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # platforms without sched_getaffinity
        return os.cpu_count() or 1


def auto_threads(cuda: bool, cpus: int, ranks_per_node: int, gpus_per_node: int, workers: int):
    """torch threads per rank for `--threads auto`: the rank's CPU share less its workers."""
    share = cpus // max(1, ranks_per_node, gpus_per_node if cuda else 1)
    return max(1, share - workers)


def resolve_workers(cfg: TrainConfig, device_type: str) -> TrainConfig:
    """The config with `workers` and `threads` resolved: a given number is kept, auto is
    derived from the machine (torchrun's LOCAL_WORLD_SIZE ranks share this node)."""
    if cfg.workers is not None and cfg.threads is not None:
        return cfg
    cuda = device_type == "cuda"
    gpus = 0
    if cuda:
        import torch

        gpus = torch.cuda.device_count()
    ranks = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    cpus = usable_cpus()
    workers = cfg.workers
    if workers is None:
        workers = auto_workers(cuda, cpus, ranks, gpus)
    threads = cfg.threads
    if threads is None:
        threads = auto_threads(cuda, cpus, ranks, gpus, workers)
    return dataclasses.replace(cfg, workers=workers, threads=threads)


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
    """The frozen config of the parsed flags and the world size (UsageError if invalid)."""
    global_batch, per_rank = split_batch(args.batch_size, args.per_rank_batch, world_size)
    return options.config_from_args(
        TrainConfig, args, batch_size=global_batch, per_rank_batch=per_rank, world_size=world_size
    )


def run_hash(cfg: TrainConfig) -> str:
    """The run's identity: the hash of every key that shapes the weights (config.json and the
    exported model's sidecar carry the same one, and a resume keeps it)."""
    return config_hash(cfg, exclude=tuple(sorted(RESUME_MAY_DIFFER)))
