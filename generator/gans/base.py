"""The GAN backend protocol (see docs/gan-backends.md).

A backend is an object with:
    name: str
    latent_dim: int                 size of z
    resolution: int                 H == W of generated images
    device: torch.device
    differentiable: bool            True if generate() supports autograd w.r.t. z
                                    (needed by direction discovery/scoring)
    has_encoder: bool
    generate(z: Tensor[N, latent_dim]) -> Tensor[N, 3, R, R], float32, RGB, in [-1, 1]
    encode(x: Tensor[N, 3, H, W] in [-1, 1]) -> Tensor[N, latent_dim]   (only if has_encoder)
    default_direction() -> generator.direction_file.Direction   OPTIONAL: a direction shipped
                                    with the GAN; `python -m generator` uses it when no
                                    --direction is given (and refuses to run if it is absent)
    map_prior(xi: Tensor[N, latent_dim], truncation: float = 1.0) -> Tensor[N, latent_dim]
                                    OPTIONAL: the prior mapping. Latent codes are drawn as
                                    xi ~ N(0, I) and passed through it (on `device`) before
                                    G(z) and G(z + r h); absent = identity, z = xi. StyleGAN2
                                    maps to W (mapping network, then truncation toward the mean
                                    w for truncation < 1), so its directions live in W.
    num_classes: int                OPTIONAL: > 0 for a class-conditional GAN (absent or 0:
                                    unconditional). Its generate takes the class of each
                                    sample, generate(z, labels: LongTensor[N]); callers go
                                    through `generate_images`, which passes labels only then.

`generate` is deterministic for a given z (eval-mode BN, no noise), so G(z) and G(z + r h)
may be computed in one batch. Tensors are torch on `device`; backends that run elsewhere
(TF-Hub) convert at the boundary.
"""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

from segcore.cli import UsageError


@runtime_checkable
class GanBackend(Protocol):
    name: str
    latent_dim: int
    resolution: int
    differentiable: bool
    has_encoder: bool

    @property
    def device(self): ...

    def generate(self, z): ...

    def encode(self, x): ...


class NoEncoderError(RuntimeError):
    """Raised by `encode` on a backend without an encoder."""


def check_prior(backend, truncation: float = 1.0) -> None:
    """UsageError (one line) unless `truncation` is in (0, 1] and, when below 1, the backend
    has a prior mapping to truncate."""
    t = float(truncation)
    if not (math.isfinite(t) and 0 < t <= 1):
        raise UsageError(f"--truncation must be in (0, 1] (1: none), got {truncation}")
    if t < 1 and getattr(backend, "map_prior", None) is None:
        raise UsageError(
            f"--truncation {t} needs a GAN with a prior mapping (e.g. stylegan2); "
            f"GAN {backend.name!r} samples z ~ N(0, I) directly"
        )


def map_prior(backend, xi, truncation: float = 1.0):
    """The backend's latent codes for prior draws xi ~ N(0, I) [N, latent_dim]: its
    `map_prior` (on its device) when it has one, else xi itself."""
    mapping = getattr(backend, "map_prior", None)
    if mapping is None:
        check_prior(backend, truncation)
        return xi
    return mapping(xi, truncation)


def num_classes(backend) -> int:
    """The backend's class count: > 0 for a class-conditional GAN, 0 for an unconditional one."""
    return int(getattr(backend, "num_classes", 0) or 0)


def generate_images(backend, z, labels=None):
    """G(z) for any backend: `generate(z, labels)` for a conditional one (labels LongTensor [N]),
    `generate(z)` otherwise (labels must then be None)."""
    if num_classes(backend):
        if labels is None:
            raise ValueError(f"GAN {backend.name!r} is class-conditional: it needs labels")
        return backend.generate(z, labels)
    if labels is not None:
        raise ValueError(f"GAN {backend.name!r} is unconditional: it takes no labels")
    return backend.generate(z)
