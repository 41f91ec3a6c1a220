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

`generate` is deterministic for a given z (eval-mode BN, no noise), so G(z) and G(z + r h)
may be computed in one batch. Tensors are torch on `device`; backends that run elsewhere
(TF-Hub) convert at the boundary.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


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
