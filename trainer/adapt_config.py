"""The self-training options of the trainer (`--adapt-*`): their checks, help and step count.

After the synthetic steps the segmenter labels the user's unlabelled target images itself and
trains further on them, in rounds (trainer/adapt.py). The fields live in `TrainConfig` (so they
are recorded in config.json and checked on resume); this module holds what only they need, so
the trainer's config stays one list of fields. Light: no torch import.

How each default was chosen, before any run was scored against the world's true masks (only
label-free signals: the agreement between rounds, the confidence statistics of the
pseudo-labels and the synthetic hold-out; docs/self-training.md gives the numbers).
"""

from __future__ import annotations

import math

# Options that may be added (or changed) when a run continues from a checkpoint taken before
# the first self-training step: a finished synthetic run can be adapted later, and ends with
# the same weights as a run that had the options from the start.
ADAPT_KEYS = frozenset(
    {"adapt_images", "adapt_rounds", "adapt_steps", "adapt_margin", "adapt_keep", "adapt_mix",
     "adapt_flip_tta", "adapt_min_scale", "adapt_schedule", "adapt_jitter",
     "adapt_refine"}
)  # fmt: skip

HELP = {
    "adapt_images": "folder of the user's unlabelled target images (or a dataset folder: only "
    "its images/ is read, never a mask); after --steps the segmenter labels them itself and "
    "trains on them for --adapt-rounds rounds (docs/self-training.md). Local folders only",
    "adapt_rounds": "self-training rounds: each labels the target images with the current "
    "model, then trains --adapt-steps steps",
    "adapt_steps": "optimizer steps per self-training round (beyond --steps)",
    "adapt_margin": "pixels whose foreground probability is within this margin of 0.5 are "
    "ignored by the loss",
    "adapt_keep": "fraction of the target images kept each round: those with the most pixels "
    "outside the margin",
    "adapt_mix": "fraction of each self-training batch taken from the pseudo-labelled target "
    "images (the rest: synthetic samples)",
    "adapt_flip_tta": "label with the mean of the image's and its mirror image's prediction",
    "adapt_min_scale": "random resized crop of the target images: the smallest area kept",
    "adapt_jitter": "the student's noise: random brightness, contrast and saturation factors in "
    "[1 - J, 1 + J] on the target images it trains on (their labels come from the clean "
    "images); 0: none",
    "adapt_refine": "refine each round's labels by the target image's colours: 'crf' runs a "
    "windowed dense CRF's mean field (trainer/adapt_refine.py), so label borders follow colour "
    "borders; images are still kept by the model's own confidence",
    "adapt_schedule": "the lr within each self-training round: 'cosine' falls from the run's "
    "lr at the round's first step towards 0 at its last (so each round's labels, and the final "
    "model, come from the end of a decay); 'constant' keeps the run's lr",
}

SCHEDULES = ("cosine", "constant")
REFINEMENTS = ("crf", "none")


def check(cfg) -> list[tuple[bool, str]]:
    """(ok, message) for each self-training option of a TrainConfig."""
    floats = ("adapt_margin", "adapt_keep", "adapt_mix", "adapt_min_scale", "adapt_jitter")
    for name in floats:
        value = getattr(cfg, name)
        if not (isinstance(value, int | float) and math.isfinite(value)):
            raise ValueError(f"--{name.replace('_', '-')} must be a finite number, got {value}")
    return [
        (
            cfg.adapt_schedule in SCHEDULES,
            f"--adapt-schedule must be one of {SCHEDULES}, got {cfg.adapt_schedule!r}",
        ),
        (
            cfg.adapt_refine in REFINEMENTS,
            f"--adapt-refine must be one of {REFINEMENTS}, got {cfg.adapt_refine!r}",
        ),
        (cfg.adapt_rounds >= 1, f"--adapt-rounds must be >= 1, got {cfg.adapt_rounds}"),
        (cfg.adapt_steps >= 1, f"--adapt-steps must be >= 1, got {cfg.adapt_steps}"),
        (
            0 <= cfg.adapt_margin < 0.5,
            f"--adapt-margin must be in [0, 0.5), got {cfg.adapt_margin}",
        ),
        (0 < cfg.adapt_keep <= 1, f"--adapt-keep must be in (0, 1], got {cfg.adapt_keep}"),
        (0 < cfg.adapt_mix <= 1, f"--adapt-mix must be in (0, 1], got {cfg.adapt_mix}"),
        (0 <= cfg.adapt_jitter < 1, f"--adapt-jitter must be in [0, 1), got {cfg.adapt_jitter}"),
        (
            0 < cfg.adapt_min_scale <= 1,
            f"--adapt-min-scale must be in (0, 1], got {cfg.adapt_min_scale}",
        ),
        (
            cfg.adapt_images is None or round(cfg.adapt_mix * cfg.per_rank_batch) >= 1,
            f"--adapt-mix {cfg.adapt_mix} takes no target image from a per-rank batch of "
            f"{cfg.per_rank_batch}",
        ),
    ]


def total_steps(cfg) -> int:
    """All optimizer steps of the run: --steps, then the self-training rounds (if any)."""
    if cfg.adapt_images is None:
        return cfg.steps
    return cfg.steps + cfg.adapt_rounds * cfg.adapt_steps


def lr_factor(cfg, step: int) -> float:
    """The self-training lr multiplier at optimizer step `step` (>= --steps): a pure function
    of the step, so a resumed run uses the same lr. 'cosine' runs 0.5 (1 + cos(pi i / n)) over
    the round's steps i = 0 .. n-1 (1 at the round's first step, about (pi / 2n)^2 at its last)."""
    if cfg.adapt_schedule == "constant":
        return 1.0
    into_round = (step - cfg.steps) % cfg.adapt_steps
    return 0.5 * (1.0 + math.cos(math.pi * into_round / cfg.adapt_steps))


def target_count(cfg) -> int:
    """Target images in each rank's self-training batch (the rest are synthetic samples)."""
    return min(cfg.per_rank_batch, max(1, round(cfg.adapt_mix * cfg.per_rank_batch)))


def resume_rule(saved: dict, step: int, cfg, may_differ: frozenset) -> tuple[frozenset, int]:
    """(keys a resume may change, last step it may start from) for a checkpoint at `step`
    whose config is `saved`. Before the first self-training step the --adapt-* options may be
    added or changed (the synthetic steps do not depend on them) and the checkpoint must not
    be past --steps; once self-training has begun every key that shapes the weights is fixed,
    --steps included (the rounds start there)."""
    adapting = bool(saved.get("adapt_images")) and step > int(saved.get("steps", step))
    if adapting:
        return frozenset(may_differ - {"steps"}), total_steps(cfg)
    return frozenset(may_differ | ADAPT_KEYS), cfg.steps
