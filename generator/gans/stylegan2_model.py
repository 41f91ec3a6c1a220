"""The StyleGAN2 generator network (rosinality/stylegan2-pytorch's `Generator`, same state-dict
keys) and how its configuration is read back from a state dict.

The port builds its channel table from a multiplier (512 up to 32 px, then 2^14 / r x the
multiplier: config-f = 2, config-e = 1). Here the network is built from the per-resolution
channels themselves, read from the tensor shapes, so a checkpoint of that layout with other
widths (the small test fixtures) loads too; `StyleGAN2Config.channel_multiplier` says whether
the widths are the port's table and for which multiplier.

Only what sampling needs is here: one w for every layer (no style mixing) and the stored
noise buffers (the port's randomize_noise=False).
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from generator.gans.stylegan2_layers import (
    ConstantInput,
    EqualLinear,
    PixelNorm,
    StyledConv,
    ToRGB,
)
from segcore.cli import UsageError

MAPPING_LR_MUL = 0.01  # the port's lr_mlp


def port_channels(resolution: int, multiplier: int) -> tuple[int, ...]:
    """The port's channel table for 4, 8, ..., resolution px."""
    return tuple(
        512 if r <= 32 else (2**14 // r) * multiplier
        for r in (2**i for i in range(2, int(math.log2(resolution)) + 1))
    )


@dataclasses.dataclass(frozen=True)
class StyleGAN2Config:
    resolution: int = 256
    style_dim: int = 512
    n_mlp: int = 8
    channels: tuple[int, ...] = port_channels(256, 2)  # at 4, 8, ..., resolution px

    def __post_init__(self):
        log = math.log2(self.resolution)
        if self.resolution < 8 or log != int(log):
            raise ValueError(f"resolution must be a power of two >= 8, got {self.resolution}")
        if len(self.channels) != int(log) - 1:
            raise ValueError(f"{len(self.channels)} channel widths for {self.resolution} px")

    @property
    def num_layers(self) -> int:
        """Styled convs (and noise buffers): one at 4 px, two per higher resolution."""
        return 2 * len(self.channels) - 1

    @property
    def channel_multiplier(self) -> int | None:
        """The port's multiplier whose table these widths are, else None (custom widths); for
        resolutions <= 32 px every multiplier gives 512 channels and 2 (the default) is named."""
        for m in (2, 1, 4):
            if self.channels == port_channels(self.resolution, m):
                return m
        return None


class StyleGAN2Generator(nn.Module):
    def __init__(self, config: StyleGAN2Config = StyleGAN2Config()):
        super().__init__()
        c = self.config = config
        d = c.style_dim
        mapping = [EqualLinear(d, d, lr_mul=MAPPING_LR_MUL, activate=True) for _ in range(c.n_mlp)]
        self.style = nn.Sequential(PixelNorm(), *mapping)
        self.input = ConstantInput(c.channels[0])
        self.conv1 = StyledConv(c.channels[0], c.channels[0], d)
        self.to_rgb1 = ToRGB(c.channels[0], d, upsample=False)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        for cin, cout in zip(c.channels[:-1], c.channels[1:], strict=True):
            self.convs.append(StyledConv(cin, cout, d, upsample=True))
            self.convs.append(StyledConv(cout, cout, d))
            self.to_rgbs.append(ToRGB(cout, d))
        self.noises = nn.Module()
        for i in range(c.num_layers):
            size = 2 ** ((i + 5) // 2)  # 4, 8, 8, 16, 16, ...
            self.noises.register_buffer(f"noise_{i}", torch.zeros(1, 1, size, size))

    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        """z [N, style_dim] -> w [N, style_dim] (PixelNorm, then n_mlp equalized layers)."""
        return self.style(z)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        """w [N, style_dim] (the same w for every layer) -> RGB [N, 3, R, R], unclamped."""
        noise = [getattr(self.noises, f"noise_{i}") for i in range(self.config.num_layers)]
        x = self.conv1(self.input(w.shape[0]), w, noise[0])
        skip = self.to_rgb1(x, w)
        for j, to_rgb in enumerate(self.to_rgbs):
            x = self.convs[2 * j](x, w, noise[2 * j + 1])
            x = self.convs[2 * j + 1](x, w, noise[2 * j + 2])
            skip = to_rgb(x, w, skip)
        return skip


def _count(state: dict, fmt: str, start: int = 0) -> int:
    """How many consecutive indices i >= start have fmt.format(i) in state."""
    i = start
    while fmt.format(i) in state:
        i += 1
    return i - start


def config_from_state_dict(state: dict) -> StyleGAN2Config:
    """Resolution, style size, mapping depth and channel widths from the keys and shapes of a
    g_ema state dict; UsageError naming the key when it is not this layout. The full key set
    and every shape are checked afterwards by the strict load."""
    for key in ("style.1.weight", "input.input", "to_rgbs.0.conv.weight"):
        if key not in state:
            raise UsageError(f"not a StyleGAN2 generator state dict: missing key {key}")
    style = state["style.1.weight"]
    const = state["input.input"]
    if style.dim() != 2 or const.dim() != 4:
        raise UsageError(
            f"not a StyleGAN2 generator state dict: style.1.weight {list(style.shape)}, "
            f"input.input {list(const.shape)}"
        )
    n_rgb = _count(state, "to_rgbs.{}.conv.weight")
    channels = [const.shape[1]]
    for j in range(n_rgb):
        rgb = state[f"to_rgbs.{j}.conv.weight"]  # [1, 3, C, 1, 1]
        if rgb.dim() != 5:
            raise UsageError(f"to_rgbs.{j}.conv.weight has shape {list(rgb.shape)}")
        channels.append(rgb.shape[2])
    try:
        return StyleGAN2Config(
            resolution=2 ** (n_rgb + 2),
            style_dim=style.shape[1],
            n_mlp=_count(state, "style.{}.weight", start=1),
            channels=tuple(int(c) for c in channels),
        )
    except ValueError as err:
        raise UsageError(f"not a StyleGAN2 generator state dict: {err}") from None


def random_state_dict(config: StyleGAN2Config, seed: int = 0) -> dict[str, torch.Tensor]:
    """A g_ema state dict in the port's layout with random, reproducible values (tests and
    benchmarks): weights and the constant ~ N(0, 1) as the port initialises them, modulation
    biases 1 + small noise, the other biases, noise strengths and noise buffers random too (so
    that every tensor shows in the output); blur kernels as the port computes them."""
    model = StyleGAN2Generator(config)
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith(".kernel"):
            state[key] = value.clone()
        elif key.endswith("modulation.bias"):
            state[key] = 1.0 + 0.1 * torch.randn(value.shape, generator=gen)
        elif key.endswith(("bias", "noise.weight")):
            state[key] = 0.1 * torch.randn(value.shape, generator=gen)
        else:
            state[key] = torch.randn(value.shape, generator=gen)
    return state
