"""Generator, discriminator and encoder of the embedded toy-world GAN.

Small on purpose: the shipped weights trained in 260 s on one GPU, about 75 minutes on 2 CPU
cores (docs/toyworld.md).
The shipped generator is 2-layer (LR-GAN / PerturbGAN style): a background, an object shape
(alpha) and the object's colours, composited as alpha * fg + (1 - alpha) * bg, each drawn from
its own third of z (`latent_split=1`). Why: a plain DCGAN generator (`layers=1`) trained 4,450
steps here drew backgrounds but no objects as a latent factor, so the direction search had
nothing to find; a 2-layer generator whose trunks all read the whole z learnt objects, but its
directions changed shape and colour together (synthetic masks IoU 0.66 with its own alpha,
against 0.81 with the split). The layering and the split are inductive biases; training stays
unsupervised (images only, alpha never sees a mask) and the pipeline reads only the composite,
never alpha: its masks come from the discovered direction and the "lighter" rule. The rest
follows what was measured to work: a spectral-norm discriminator without BatchNorm, hinge loss,
Adam (0.0, 0.9), an EMA of the generator (the EMA weights are what ships). The encoder is fitted
afterwards to invert the frozen EMA generator (E(G(z)) ~ z, plus a reconstruction loss on real
images), which is enough for the E-BigBiGAN-style latents of the paper, section 3.2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import spectral_norm

WEIGHTS_FORMAT = "gan-objseg/toyworld-weights/v2"  # v2: the layered generator below


@dataclass(frozen=True)
class ModelConfig:
    resolution: int = 32
    latent_dim: int = 64
    g_width: int = 24  # channels at the output resolution; doubled at each coarser level
    d_width: int = 32
    e_width: int = 48
    layers: int = 2  # 1: plain DCGAN generator; 2: background + foreground/alpha layers
    d_batchnorm: int = 0  # 0: spectral-norm D; 1: DCGAN's BatchNorm D (any --loss)
    # 2-layer only. 0: each trunk reads the whole z. 1: z splits in three parts, one each for
    # the background, the object's shape (alpha) and the object's colours (foreground RGB).
    latent_split: int = 1

    def __post_init__(self):
        if self.layers not in (1, 2):
            raise ValueError(f"layers must be 1 or 2, got {self.layers}")
        if self.latent_split not in (0, 1) or (self.latent_split and self.layers != 2):
            raise ValueError("latent_split must be 0 or 1, and 1 needs layers=2")
        if self.d_batchnorm not in (0, 1):
            raise ValueError(f"d_batchnorm must be 0 or 1, got {self.d_batchnorm}")
        if self.latent_split and self.latent_dim < 3:
            raise ValueError("latent_split=1 needs latent_dim >= 3 (one part per layer)")

    @property
    def levels(self) -> int:
        # 4x4 base, one x2 upsampling per level
        n = int(math.log2(self.resolution // 4))
        if 4 * 2**n != self.resolution:
            raise ValueError(f"resolution must be 4 * 2^k, got {self.resolution}")
        return n


class _Trunk(nn.Module):
    """DCGAN trunk: z [N, d] -> [N, out_channels, R, R] (BatchNorm, ReLU, no output activation)."""

    def __init__(self, cfg: ModelConfig, out_channels: int, in_dim: int | None = None):
        super().__init__()
        ch = cfg.g_width * 2**cfg.levels
        self.fc = nn.Linear(in_dim or cfg.latent_dim, ch * 16)
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
        self.out = nn.Conv2d(ch, out_channels, 3, 1, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn0(self.fc(z).view(z.shape[0], -1, 4, 4)))
        return self.out(self.blocks(h))


class Generator(nn.Module):
    """z [N, d] -> image [N, 3, R, R] in [-1, 1]. Deterministic in eval mode (stored BN stats).

    `layers=1`: one DCGAN trunk draws the image. `layers=2`: the image is
    `alpha * fg + (1 - alpha) * bg` (LR-GAN / PerturbGAN style layering); with `latent_split=0`
    a background trunk and a foreground trunk (RGB + alpha logit) both read the whole z, with
    `latent_split=1` (the shipped model) z = [z_bg | z_shape | z_fg] (`tensor_split` in 3) feeds
    three trunks: background RGB, alpha, foreground RGB. The pipeline reads only the composite
    (`forward`); its masks come from the latent direction. `layered` and `alpha` serve the
    diagnostics that compare those masks with the GAN's own alpha.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg  # ModelConfig validated layers / latent_split
        self.fg = self.shape = None
        if cfg.latent_split:
            bg_d, shape_d, fg_d = (len(c) for c in torch.arange(cfg.latent_dim).tensor_split(3))
            self.bg = _Trunk(cfg, 3, bg_d)
            self.shape = _Trunk(cfg, 1, shape_d)
            self.fg = _Trunk(cfg, 3, fg_d)
        else:
            self.bg = _Trunk(cfg, 3)
            self.fg = _Trunk(cfg, 4) if cfg.layers == 2 else None

    def layered(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(background [N,3,R,R], foreground [N,3,R,R], alpha [N,1,R,R]) of a 2-layer model."""
        if self.fg is None:
            raise ValueError("a 1-layer generator has no layers")
        if self.shape is not None:
            z_bg, z_shape, z_fg = z.tensor_split(3, dim=1)
            bg, fg, logit = self.bg(z_bg), self.fg(z_fg), self.shape(z_shape)
            return torch.tanh(bg), torch.tanh(fg), torch.sigmoid(logit)
        f = self.fg(z)
        return torch.tanh(self.bg(z)), torch.tanh(f[:, :3]), torch.sigmoid(f[:, 3:])

    def alpha(self, z: torch.Tensor) -> torch.Tensor:
        """The object's alpha [N, 1, R, R] in [0, 1] of a 2-layer model: its own soft mask of
        the object it draws. For diagnostics only (the pipeline never reads it): a U-Net
        trained on `alpha > 0.5` measures what the synthetic masks cost. With `latent_split=1`
        only the shape trunk runs; the values are those of `layered(z)[2]`."""
        if self.shape is not None:
            z_shape = z.tensor_split(3, dim=1)[1]
            return torch.sigmoid(self.shape(z_shape))
        return self.layered(z)[2]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.fg is None:
            return torch.tanh(self.bg(z))
        bg, fg, alpha = self.layered(z)
        return alpha * fg + (1 - alpha) * bg


def shift_layer(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Translate each x[i] by shift[i] = (dx, dy) in pixels, zeros coming in at the border."""
    n, _, h, w = x.shape
    theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = 1
    theta[:, 1, 1] = 1
    theta[:, 0, 2] = -2 * shift[:, 0].to(x.dtype) / w
    theta[:, 1, 2] = -2 * shift[:, 1].to(x.dtype) / h
    grid = nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    return nn.functional.grid_sample(x, grid, padding_mode="zeros", align_corners=False)


class Discriminator(nn.Module):
    """image -> unbounded score [N]. Spectral norm (default) or DCGAN BatchNorm layers."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        ch = cfg.d_width
        sn = (lambda m: m) if cfg.d_batchnorm else spectral_norm
        layers = [sn(nn.Conv2d(3, ch, 3, 1, 1)), nn.LeakyReLU(0.1, inplace=True)]
        for _ in range(cfg.levels):
            layers.append(sn(nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=not cfg.d_batchnorm)))
            if cfg.d_batchnorm:
                layers.append(nn.BatchNorm2d(ch * 2))
            layers.append(nn.LeakyReLU(0.1, inplace=True))
            ch *= 2
        self.features = nn.Sequential(*layers)
        self.head = sn(nn.Linear(ch * 16, 1))

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
