"""Backend helpers for the direction tools: device, gradient checks, freezing, z sampling.

`--gan` is resolved by `generator.gans.load_gan` (a registry name or "module.path:factory").
"""

from __future__ import annotations

import torch

from segcore.cli import UsageError


def resolve_device(device: str | torch.device | None) -> torch.device:
    """ "auto" (or None) -> cuda if available, else cpu; anything else as given."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as err:
        raise UsageError(f"bad --device {device!r}: {err}") from err


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
