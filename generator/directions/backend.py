"""Resolve `--gan` to a backend: a registry name, or a "module.path:factory" spec.

The spec form lets tests and experiments plug in a GAN without editing the registry
(`generator/gans/__init__.py`); the factory has the registry's signature
`factory(weights=None, device="cpu") -> GanBackend`.
"""

from __future__ import annotations

import importlib

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


def load_backend(name: str, weights: str | None = None, device="cpu"):
    """A backend by registry name, or by "module:factory" when the name contains ':'."""
    from generator.gans import _REGISTRY, load_gan

    if name in _REGISTRY or ":" not in name:
        try:
            return load_gan(name, weights=weights, device=device)
        except ImportError as err:
            raise UsageError(f"cannot import the backend of GAN {name!r}: {err}") from err
    module_name, _, factory_name = name.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), factory_name)
    except (ImportError, AttributeError) as err:
        raise UsageError(f"cannot load GAN factory {name!r}: {err}") from err
    return factory(weights=weights, device=device)


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
