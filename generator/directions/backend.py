"""Backend helpers for the direction tools: gradient checks, freezing, z sampling.

`--gan` is resolved by `generator.gans.load_gan` (a registry name or "module.path:factory"),
`--device` by `segcore.device.resolve_device`.
"""

from __future__ import annotations

import torch

from segcore.cli import UsageError


def require_differentiable(backend, what: str) -> None:
    if not getattr(backend, "differentiable", False):
        raise UsageError(
            f"{what} needs gradients through the generator, but GAN {backend.name!r} is not "
            "differentiable (choose a PyTorch backend)"
        )


def freeze(backend) -> None:
    """Stop gradients from accumulating in G's weights (G is frozen; only z-side moves).

    The protocol does not expose parameters, so every nn.Module attribute of the backend
    (`net`, `generator`, ...) is frozen; gradients w.r.t. z are unaffected.
    """
    for value in vars(backend).values():
        if isinstance(value, torch.nn.Module):
            value.requires_grad_(False)
    if isinstance(backend, torch.nn.Module):
        backend.requires_grad_(False)


def sample_z(n: int, latent_dim: int, gen: torch.Generator, device) -> torch.Tensor:
    """z ~ N(0, I) drawn on the CPU from `gen` (same numbers on every device), then moved."""
    return torch.randn(n, latent_dim, generator=gen).to(device)
