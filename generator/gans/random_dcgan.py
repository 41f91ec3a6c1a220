"""A random-weight DCGAN-style backend: the cheap, offline GAN for tests and benchmarks.

It is NOT a trained GAN; its images are smooth random colour fields. It exists so that every
part of the pipeline (latents, masks, filters, shards, Ray) runs on a CPU without downloads,
and so that the benchmark can scale generator cost (`width`) independently of the rest.

Weights come from a fixed seed (same weights in every process, so Ray workers and the driver
agree), the module is in eval mode and differentiable w.r.t. z. There is no encoder.

Options travel in the `weights` string, because the registry's factory signature is
`build(weights, device)`: `--weights "resolution=128,width=64,seed=0"` (every key optional;
defaults: resolution 64, width 16, latent_dim 120, seed 0).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from generator.gans.base import NoEncoderError
from segcore.cli import UsageError

DEFAULTS = {"resolution": 64, "width": 16, "latent_dim": 120, "seed": 0}


def parse_options(spec: str | None) -> dict:
    """`"resolution=128,width=64"` -> {"resolution": 128, "width": 64, ...defaults}."""
    opts = dict(DEFAULTS)
    if not spec:
        return opts
    for item in spec.split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in DEFAULTS:
            raise UsageError(
                f"random GAN: bad option {item!r}; expected key=value with key in "
                f"{', '.join(DEFAULTS)} (e.g. 'resolution=128,width=64')"
            )
        try:
            opts[key] = int(value)
        except ValueError as err:
            raise UsageError(f"random GAN: option {key} must be an integer, got {value!r}") from err
    res = opts["resolution"]
    if res < 8 or res & (res - 1):
        raise UsageError(f"random GAN: resolution must be a power of two >= 8, got {res}")
    if opts["width"] < 1 or opts["latent_dim"] < 1:
        raise UsageError("random GAN: width and latent_dim must be >= 1")
    return opts


class _Net(nn.Module):
    """z -> linear -> 4x4 -> (upsample x2, conv3x3, leaky ReLU)* -> conv3x3 -> tanh."""

    def __init__(self, latent_dim: int, resolution: int, width: int):
        super().__init__()
        n_up = int(math.log2(resolution)) - 2
        chans = [width * min(8, 2 ** (n_up - i)) for i in range(n_up + 1)]
        self.c0 = chans[0]
        self.fc = nn.Linear(latent_dim, chans[0] * 16)
        self.blocks = nn.ModuleList(
            nn.Conv2d(chans[i], chans[i + 1], 3, padding=1) for i in range(n_up)
        )
        self.out = nn.Conv2d(chans[-1], 3, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.fc(z).view(z.shape[0], self.c0, 4, 4), 0.2)
        for conv in self.blocks:
            # bilinear upsampling keeps the random images smooth (blob-like regions)
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = F.leaky_relu(conv(x), 0.2)
        return torch.tanh(self.out(x))


def _init_(net: nn.Module, seed: int) -> None:
    """He-normal weights from a private generator: identical in every process."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.Linear | nn.Conv2d):
                fan_in = module.weight[0].numel()
                std = math.sqrt(2.0 / fan_in)
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * std)
                module.bias.zero_()
        # scale the output layer so tanh is neither saturated nor flat
        net.out.weight.mul_(0.5)


class RandomDCGAN:
    """GAN backend protocol (generator/gans/base.py) over a random-weight DCGAN."""

    name = "random"
    differentiable = True
    has_encoder = False

    def __init__(
        self,
        resolution: int = 64,
        width: int = 16,
        latent_dim: int = 120,
        seed: int = 0,
        device="cpu",
    ):
        self.resolution = int(resolution)
        self.latent_dim = int(latent_dim)
        self.width = int(width)
        self.seed = int(seed)
        self._device = torch.device(device)
        net = _Net(self.latent_dim, self.resolution, self.width)
        _init_(net, self.seed)
        self.net = net.eval().to(self._device)
        for p in self.net.parameters():
            p.requires_grad_(False)

    @property
    def device(self) -> torch.device:
        return self._device

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must be [N, {self.latent_dim}], got {tuple(z.shape)}")
        return self.net(z.to(self._device, torch.float32))

    def encode(self, x):
        raise NoEncoderError("the random GAN has no encoder")

    def default_direction(self):
        """A fixed random unit direction (seed-derived), so the pipeline runs without a file.

        It is not a segmenting direction: it only exercises the code path.
        """
        import numpy as np

        from generator.direction_file import Direction

        rng = np.random.default_rng([self.seed, 1])
        # negated: with the default options this sign gives masks under half the image,
        # so about a quarter of the samples pass the filters (measured, 256 draws)
        vec = -rng.standard_normal(self.latent_dim).astype(np.float32)
        return Direction(vec / np.linalg.norm(vec), shift=5.0, info={"source": "random default"})


def build(weights: str | None = None, device="cpu") -> RandomDCGAN:
    """Registry factory; `weights` carries options (see module docstring), not a file."""
    return RandomDCGAN(**parse_options(weights), device=device)
