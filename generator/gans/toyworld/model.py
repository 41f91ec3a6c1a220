"""Generator, discriminator and encoder of the embedded toy-world GAN.

Small on purpose: trained on 2 CPU cores in about an hour (docs/EMBEDDED-GAN-NOTES.md). The
recipe follows what was measured to work there: a DCGAN-shaped generator with BatchNorm, a
spectral-norm discriminator without BatchNorm, hinge loss, Adam (0.0, 0.9) and an EMA of the
generator (the EMA weights are what ships). The encoder is fitted afterwards to invert the frozen
EMA generator (E(G(z)) ~ z, plus a reconstruction loss on real images), which is enough for the
E-BigBiGAN-style latents of PAPER.md section 4.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import spectral_norm


@dataclass(frozen=True)
class ModelConfig:
    resolution: int = 32
    latent_dim: int = 64
    g_width: int = 48  # channels at the output resolution; doubled at each coarser level
    d_width: int = 32
    e_width: int = 48

    @property
    def levels(self) -> int:
        # 4x4 base, one x2 upsampling per level
        n = int(math.log2(self.resolution // 4))
        if 4 * 2**n != self.resolution:
            raise ValueError(f"resolution must be 4 * 2^k, got {self.resolution}")
        return n


class Generator(nn.Module):
    """z [N, d] -> image [N, 3, R, R] in [-1, 1]. Deterministic in eval mode (stored BN stats)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        ch = cfg.g_width * 2**cfg.levels
        self.fc = nn.Linear(cfg.latent_dim, ch * 16)
        self.bn0 = nn.BatchNorm2d(ch)
        blocks = []
        for _ in range(cfg.levels):
            blocks += [
                nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ch // 2),
                nn.ReLU(inplace=True),
            ]
            ch //= 2
        self.blocks = nn.Sequential(*blocks)
        self.out = nn.Conv2d(ch, 3, 3, 1, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(z.shape[0], -1, 4, 4)
        h = torch.relu(self.bn0(h))
        return torch.tanh(self.out(self.blocks(h)))


class Discriminator(nn.Module):
    """image -> unbounded score [N] (hinge loss). Spectral norm, no BatchNorm."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        ch = cfg.d_width
        layers = [spectral_norm(nn.Conv2d(3, ch, 3, 1, 1)), nn.LeakyReLU(0.1, inplace=True)]
        for _ in range(cfg.levels):
            layers += [
                spectral_norm(nn.Conv2d(ch, ch * 2, 4, 2, 1)),
                nn.LeakyReLU(0.1, inplace=True),
            ]
            ch *= 2
        self.features = nn.Sequential(*layers)
        self.head = spectral_norm(nn.Linear(ch * 16, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1)).squeeze(1)


class Encoder(nn.Module):
    """image [N, 3, R, R] in [-1, 1] -> z [N, d]. Deterministic in eval mode."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        ch = cfg.e_width
        layers = [nn.Conv2d(3, ch, 3, 1, 1), nn.LeakyReLU(0.1, inplace=True)]
        for _ in range(cfg.levels):
            layers += [
                nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ch * 2),
                nn.LeakyReLU(0.1, inplace=True),
            ]
            ch *= 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(ch * 16, cfg.latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))
