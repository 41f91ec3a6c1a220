"""Two per-pixel affine colour operators that explain a latent shift (Appendix B, eq. 3-7).

A latent shift h is "segmenting" when every pixel of G(z + h) is one of two fixed affine maps
A1, A2 (3x3 matrix + bias, 24 parameters in all) applied to the same pixel of G(z) (eq. 3).
We fit A1, A2 by minimising the restoration loss (eq. 5-6)

    L_h = mean over pixels of  min_j || A_j G(z)_xy - G(z + h)_xy ||^2

and measure how different the two maps are by the separation

    D_h = mean over pixels of  || A_1 G(z)_xy - A_2 G(z)_xy ||^2 .

Conventions (named, since the numbers depend on them): images are in [-1, 1] (the paper quotes its
operators for [0, 1] pixels, so its numbers are 1/4 of ours for the squared distances);
|| . ||^2 sums the 3 channels and "mean" averages pixels and images; operator outputs are
clamped to [-1, 1]; the mask (eq. 7) is each pixel's argmin j, ties going to operator 0.
Initialisation is near identity, one brightening (bias +init_bias) and one darkening (bias
-init_bias), which breaks the symmetry between the two maps.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class AffinePair(nn.Module):
    """A1, A2: R^3 -> R^3, applied to every pixel; `forward` gives [N, 2, 3, H, W]."""

    def __init__(self, init_bias: float = 0.1):
        super().__init__()
        self.weight = nn.Parameter(torch.eye(3).repeat(2, 1, 1))  # [2, 3, 3]
        self.bias = nn.Parameter(torch.tensor([[init_bias] * 3, [-init_bias] * 3]))  # [2, 3]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.einsum("kij,njhw->nkihw", self.weight, x)
        return (out + self.bias[None, :, :, None, None]).clamp(-1.0, 1.0)

    def matrices(self) -> torch.Tensor:
        """[2, 3, 4]: [W | b] for each operator (the direction file's `operators`)."""
        return torch.cat([self.weight, self.bias[:, :, None]], dim=2).detach().cpu()

    @classmethod
    def from_matrices(cls, mats) -> AffinePair:
        mats = torch.as_tensor(mats, dtype=torch.float32).reshape(2, 3, 4)
        pair = cls()
        with torch.no_grad():
            pair.weight.copy_(mats[:, :, :3])
            pair.bias.copy_(mats[:, :, 3])
        return pair


def pixel_errors(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """||A_j x - y||^2 per operator and pixel: pred [N,2,3,H,W], target [N,3,H,W] -> [N,2,H,W]."""
    return (pred - target[:, None]).pow(2).sum(2)


def restoration_loss(err: torch.Tensor) -> torch.Tensor:
    """Eq. 5: each pixel is explained by the better of the two maps."""
    return err.min(dim=1).values.mean()


def separation(pred: torch.Tensor) -> torch.Tensor:
    """D_h: how far apart the two maps send the same pixels."""
    return (pred[:, 0] - pred[:, 1]).pow(2).sum(1).mean()


def assignment(err: torch.Tensor) -> torch.Tensor:
    """Eq. 7: the index (0 or 1) of the map that better explains each pixel, [N, H, W]."""
    return (err[:, 1] < err[:, 0]).long()


def approximation(pred: torch.Tensor, assign: torch.Tensor) -> torch.Tensor:
    """S_{A1,A2} . G(z) (eq. 4): each pixel through its chosen map, [N, 3, H, W]."""
    idx = assign[:, None, None].expand(-1, 1, 3, -1, -1)
    return pred.gather(1, idx)[:, 0]


def fit_operators(
    batches: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
    *,
    steps: int = 200,
    lr: float = 5e-3,
    init_bias: float = 0.1,
    device="cpu",
) -> tuple[AffinePair, list[float]]:
    """Minimise L_h (eq. 6) with Adam; `batches(step)` returns (G(z), G(z + h)) [N,3,H,W].

    Appendix B: mini-batch 4, 200 Adam steps, lr 0.005 (the caller draws the batch).
    Returns the fitted pair and the per-step loss.
    """
    pair = AffinePair(init_bias).to(device)
    opt = torch.optim.Adam(pair.parameters(), lr=lr)
    history = []
    for step in range(steps):
        x, y = batches(step)
        loss = restoration_loss(pixel_errors(pair(x), y))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
    return pair.eval(), history
