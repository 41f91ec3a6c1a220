"""Candidate directions from the command line: a [K, d] file, a discover checkpoint, or "coords"."""

from __future__ import annotations

import io

import numpy as np
import torch

from segcore import storage
from segcore.cli import UsageError

COORDS = "coords"


def load_directions(spec: str, latent_dim: int) -> torch.Tensor:
    """Rows of unit directions, float32 [K, latent_dim], on the CPU.

    `spec` is "coords" (the latent_dim coordinate axes, handy for small GANs whose axes are
    already meaningful), a `.pt` file holding a [K, d] tensor (what `discover` writes) or the
    `discover` checkpoint (a dict with "directions"), or a `.npy` [K, d] / [d] array; a local
    path or an object-store URL.
    """
    if spec == COORDS:
        return torch.eye(latent_dim)
    if not storage.exists(spec):
        raise UsageError(
            f"directions file {storage.redact(spec)} does not exist (or pass --directions coords)"
        )
    try:
        data = io.BytesIO(storage.read_bytes(spec))
        if spec.lower().endswith(".npy"):
            obj = torch.from_numpy(np.load(data, allow_pickle=False))
        else:
            obj = torch.load(data, map_location="cpu", weights_only=True)
    except (OSError, ValueError, RuntimeError) as err:
        raise UsageError(f"cannot read directions file {storage.redact(spec)}: {err}") from err
    if isinstance(obj, dict):
        if "directions" not in obj:
            raise UsageError(f"{spec}: a dict without 'directions' (not a discover checkpoint)")
        obj = obj["directions"]
    if not isinstance(obj, torch.Tensor):
        raise UsageError(f"{spec}: expected a tensor of directions, got {type(obj).__name__}")
    dirs = obj.detach().float()
    if dirs.dim() == 1:
        dirs = dirs[None]
    if dirs.dim() != 2 or dirs.shape[1] != latent_dim:
        raise UsageError(
            f"{spec}: directions have shape {tuple(obj.shape)}, expected [K, {latent_dim}] "
            f"for this GAN (latent size {latent_dim})"
        )
    norms = dirs.norm(dim=1, keepdim=True)
    if dirs.shape[0] == 0 or not torch.isfinite(dirs).all() or (norms == 0).any():
        raise UsageError(f"{spec}: directions are empty, zero or not finite")
    return dirs / norms
