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


# appended to each key of `sample_labels`, so class draws are a stream of their own
_LABEL_SALT = 0x636C6173


def backend_classes(backend, spec: str | None) -> tuple[int, ...] | None:
    """`--classes SPEC` parsed for `backend` (generator/classes.py); UsageError when SPEC is
    given for an unconditional backend or names a class it does not have."""
    from generator.classes import parse_classes
    from generator.gans.base import num_classes

    return parse_classes(spec, num_classes(backend))


def sample_labels(backend, classes, n: int, key: tuple[int, ...], device) -> torch.Tensor | None:
    """The classes of n samples of a class-conditional backend (LongTensor [n] on `device`),
    uniform over `classes` (None: all), drawn as the generator draws them
    (generator.classes.draw_labels) from numpy's SeedSequence([*key, salt]): a stream apart
    from the z draws, which stay as they are. None, drawing nothing, for an unconditional one."""
    import numpy as np

    from generator.classes import draw_labels
    from generator.gans.base import num_classes

    k = num_classes(backend)
    if not k:
        return None
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([*key, _LABEL_SALT])))
    return torch.from_numpy(draw_labels(rng, n, k, classes)).to(device)
