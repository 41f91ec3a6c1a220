"""One frozen config per command; each is written (with the version) next to its outputs."""

from __future__ import annotations

from dataclasses import dataclass

from segcore import config as cfgio

# Fields added after runs were first written, hashed only when set away from these values, so
# that a run started before they existed (its hash made without them) still resumes.
HASH_ONLY_WHEN_SET = {"truncation": 1.0, "classes": None}


def resume_hash(cfg, exclude: tuple[str, ...]) -> str:
    """The config hash a resumed run must match: `exclude` (the options free to change) and
    the HASH_ONLY_WHEN_SET fields at their neutral value are left out."""
    unset = tuple(k for k, v in HASH_ONLY_WHEN_SET.items() if getattr(cfg, k, v) == v)
    return cfgio.config_hash(cfg, exclude=tuple(exclude) + unset)


@dataclass(frozen=True)
class ScoreConfig:
    gan: str
    directions: str  # [K, d] .pt/.npy, a discover checkpoint, or "coords"
    out: str  # output folder (local path or fsspec URL)
    weights: str | None = None
    shift: float = 5.0  # Appendix B: directions scaled to norm 5
    steps: int = 200  # Appendix B
    lr: float = 5e-3  # Appendix B
    batch: int = 4  # Appendix B
    pool_size: int = 0  # 0 = fresh z every step (paper); N = batches drawn from N fixed z's
    eval_batch: int = 16
    init_bias: float = 0.1
    keep_top: float = 0.2  # Appendix B: top 20% by D_h
    dominant_max: float = 0.99  # Appendix B: drop if >= 99% of pixels in one class
    sheets: int = 10  # Appendix B: "the top-10 with the lowest L_h"
    sheet_images: int = 6
    pick: bool = False
    pick_direction: int | None = None  # a person's override of the best-ranked direction
    gen_batch: int = 32
    seed: int = 0
    device: str = "auto"
    truncation: float = 1.0  # psi of the GAN's prior mapping (StyleGAN2: toward mean w); 1: none
    classes: str | None = None  # a conditional GAN's --classes SPEC (generator/classes.py)


@dataclass(frozen=True)
class DiscoverConfig:
    gan: str
    out: str  # directions tensor [K, d]; checkpoint at out + ".ckpt"
    k: int
    steps: int
    weights: str | None = None
    batch: int = 32  # Voynov & Babenko 2020
    lr: float = 1e-4  # both deformator and reconstructor
    shift_scale: float = 6.0  # eps = 6 U(-1, 1)
    min_shift: float = 0.5  # |eps| >= 0.5
    shift_weight: float = 0.25  # weight of the L1 eps loss
    width: int = 64  # reconstructor base width (64 = ResNet-18)
    init_scale: float = 1e-3  # S ~ init_scale * N(0, 1), A = expm(S - S^T) ~ identity
    ckpt_every: int = 500
    log_every: int = 50
    seed: int = 0
    device: str = "auto"
    truncation: float = 1.0  # psi of the GAN's prior mapping (StyleGAN2: toward mean w); 1: none
    classes: str | None = None  # a conditional GAN's --classes SPEC (generator/classes.py)


@dataclass(frozen=True)
class OptimizeConfig:
    gan: str
    out: str  # output folder: direction.json, optimize.json, sheet, config.json
    weights: str | None = None
    shift: float = 5.0
    steps: int = 500
    batch: int = 8
    lr: float = 1e-2  # direction
    op_lr: float = 5e-3  # operators (Appendix B's rate)
    sep_weight: float = 0.1  # small: D_h is bounded by the clamp (optimize.py docstring)
    area_weight: float = 10.0
    area_min: float = 0.1
    area_max: float = 0.5
    temperature: float = 0.02  # soft assignment for the differentiable area term
    restarts: int = 4
    init: str | None = None  # a direction file to start from (else random)
    seed: int = 0
    device: str = "auto"
    truncation: float = 1.0  # psi of the GAN's prior mapping (StyleGAN2: toward mean w); 1: none
    classes: str | None = None  # a conditional GAN's --classes SPEC (generator/classes.py)
    # the final operator fit / scoring of the found direction (Appendix B settings)
    fit_steps: int = 200
    eval_batch: int = 16
    sheet_images: int = 6
