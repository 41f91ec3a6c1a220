"""The orthogonal deformator of Voynov & Babenko 2020: A = expm(S - S^T).

A maps the one-hot code eps e_k (k < K) to the latent shift A (eps e_k) = eps A[:, k]; with
A orthogonal the K directions are orthonormal, which is why K may not exceed the latent size.
S starts near 0, so A starts near the identity (the coordinate axes).
"""

from __future__ import annotations

import torch
from torch import nn


class OrthogonalDeformator(nn.Module):
    def __init__(self, latent_dim: int, k: int, init_scale: float = 1e-3, seed: int = 0):
        super().__init__()
        if not 1 <= k <= latent_dim:
            raise ValueError(f"an orthogonal deformator needs 1 <= K <= {latent_dim}, got {k}")
        self.k = k
        gen = torch.Generator().manual_seed(seed)
        self.log_half = nn.Parameter(
            init_scale * torch.randn(latent_dim, latent_dim, generator=gen)
        )

    def matrix(self) -> torch.Tensor:
        return torch.linalg.matrix_exp(self.log_half - self.log_half.T)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        """code [N, K] (eps at position k, zeros elsewhere) -> latent shift [N, latent_dim]."""
        return code @ self.matrix()[:, : self.k].T

    @torch.no_grad()
    def directions(self) -> torch.Tensor:
        """The K unit directions as rows, [K, latent_dim], on the CPU."""
        return self.matrix()[:, : self.k].T.detach().cpu().contiguous()
