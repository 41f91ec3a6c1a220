"""The layers of the StyleGAN2 generator in rosinality/stylegan2-pytorch's module layout,
written with plain torch ops (no compiled extension), so the same code runs on CPU and GPU.

Module and parameter names are the port's, so its state dicts load key for key:
    style.{1..n_mlp}.weight/bias                  mapping network (style.0 is the PixelNorm)
    input.input                                   [1, C4, 4, 4] learned constant
    conv1.conv.{weight, modulation.weight, modulation.bias}, conv1.noise.weight,
    conv1.activate.bias                           the 4 px styled conv
    to_rgb1.conv.{weight, modulation.*}, to_rgb1.bias
    convs.{2j}  (upsampling, + conv.blur.kernel), convs.{2j+1}, to_rgbs.j (+ upsample.kernel)
    noises.noise_{i}                              [1, 1, r, r] fixed per-layer noise

The formulas (Karras et al. 2020, as the port computes them):
- equalized learning rate: a layer stores W and multiplies it by lr_mul / sqrt(fan_in) when
  used; its bias is multiplied by lr_mul (lr_mul 0.01 in the mapping network, 1 elsewhere);
- "fused" leaky ReLU: sqrt(2) * leaky_relu(x + b, 0.2);
- PixelNorm: x / sqrt(mean(x^2 over features) + 1e-8);
- modulated conv: s = A(w) (bias initialised to 1 in the port), W' = W * s / sqrt(fan_in),
  demodulated by 1 / sqrt(sum W'^2 + 1e-8) per output channel (not for ToRGB); one grouped
  convolution per batch;
- FIR resampling (upfirdn2d): zero insertion by `up`, padding (pad0, pad1) on each side, then
  a 2-d convolution with the flipped kernel; the kernel is outer([1, 3, 3, 1]) / 64, x4 when
  it follows an upsampling, stored as a buffer in the checkpoint.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)
EPS = 1e-8
BLUR_TAPS = (1, 3, 3, 1)


def fused_leaky_relu(x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """sqrt(2) * leaky_relu(x + bias, 0.2); bias [C] broadcast over dim 1."""
    if bias is not None:
        x = x + bias.view(1, -1, *([1] * (x.dim() - 2)))
    return F.leaky_relu(x, LRELU_SLOPE) * LRELU_GAIN


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, pad=(0, 0)) -> torch.Tensor:
    """Upsample by zero insertion (factor `up`), pad (pad0 before, pad1 after, both axes),
    then filter with the flipped FIR `kernel` [kh, kw], each channel on its own."""
    n, c, h, w = x.shape
    if up > 1:
        # each input pixel followed by up - 1 zeros, along both axes
        x = F.pad(x.reshape(n, c, h, 1, w, 1), [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(n, c, h * up, w * up)
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    k = torch.flip(kernel, [0, 1]).to(x.dtype)
    weight = k[None, None].expand(c, 1, *k.shape)
    return F.conv2d(x, weight, groups=c)


def blur_kernel(factor: int = 1) -> torch.Tensor:
    """outer(taps) / sum, times factor^2 (the gain that keeps the mean after upsampling)."""
    taps = torch.tensor(BLUR_TAPS, dtype=torch.float32)
    k = taps[:, None] * taps[None, :]
    return k / k.sum() * factor**2


class PixelNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + EPS)


class EqualLinear(nn.Module):
    """Linear layer with equalized learning rate; `activate`: fused leaky ReLU after it."""

    def __init__(self, in_dim: int, out_dim: int, lr_mul: float = 1.0, activate: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(out_dim, in_dim))
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activate:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), self.bias * self.lr_mul)
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class Blur(nn.Module):
    """The FIR low-pass filter after a transposed convolution, with its kernel buffer."""

    def __init__(self, pad: tuple[int, int], factor: int = 1):
        super().__init__()
        self.register_buffer("kernel", blur_kernel(factor))
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    """x2 FIR upsampling of the RGB skip branch."""

    factor = 2

    def __init__(self):
        super().__init__()
        self.register_buffer("kernel", blur_kernel(self.factor))
        p = len(BLUR_TAPS) - self.factor
        self.pad = ((p + 1) // 2 + self.factor - 1, p // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class ModulatedConv2d(nn.Module):
    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        style_dim: int,
        demodulate: bool = True,
        upsample: bool = False,
    ):
        super().__init__()
        self.in_channel, self.out_channel, self.kernel_size = in_channel, out_channel, kernel_size
        self.weight = nn.Parameter(
            torch.zeros(1, out_channel, in_channel, kernel_size, kernel_size)
        )
        self.modulation = EqualLinear(style_dim, in_channel)
        self.scale = 1.0 / math.sqrt(in_channel * kernel_size**2)
        self.demodulate = demodulate
        self.upsample = upsample
        if upsample:
            # transposed conv (stride 2) gives 2H + k - 2 pixels; the blur trims them to 2H
            p = (len(BLUR_TAPS) - 2) - (kernel_size - 1)
            self.blur = Blur(((p + 1) // 2 + 1, p // 2 + 1), factor=2)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        n, cin, h, wd = x.shape
        cout, k = self.out_channel, self.kernel_size
        style = self.modulation(w).view(n, 1, cin, 1, 1)
        weight = self.scale * self.weight * style  # [n, cout, cin, k, k]
        if self.demodulate:
            demod = torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + EPS)
            weight = weight * demod.view(n, cout, 1, 1, 1)
        x = x.reshape(1, n * cin, h, wd)
        if self.upsample:
            # conv_transpose2d wants [in, out / groups, k, k] per group
            weight = weight.transpose(1, 2).reshape(n * cin, cout, k, k)
            out = F.conv_transpose2d(x, weight, stride=2, groups=n)
            return self.blur(out.view(n, cout, *out.shape[-2:]))
        out = F.conv2d(x, weight.reshape(n * cout, cin, k, k), padding=k // 2, groups=n)
        return out.view(n, cout, *out.shape[-2:])


class NoiseInjection(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return x + self.weight * noise


class FusedLeakyReLU(nn.Module):
    def __init__(self, channel: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channel))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fused_leaky_relu(x, self.bias)


class StyledConv(nn.Module):
    """Modulated 3x3 conv, then the layer's noise, then bias + leaky ReLU."""

    def __init__(self, in_channel: int, out_channel: int, style_dim: int, upsample: bool = False):
        super().__init__()
        self.conv = ModulatedConv2d(in_channel, out_channel, 3, style_dim, upsample=upsample)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channel)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.activate(self.noise(self.conv(x, w), noise))


class ToRGB(nn.Module):
    """1x1 modulated conv (no demodulation) + bias, added to the upsampled skip image."""

    def __init__(self, in_channel: int, style_dim: int, upsample: bool = True):
        super().__init__()
        if upsample:
            self.upsample = Upsample()
        self.conv = ModulatedConv2d(in_channel, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, w: torch.Tensor, skip: torch.Tensor | None = None):
        out = self.conv(x, w) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out


class ConstantInput(nn.Module):
    def __init__(self, channel: int):
        super().__init__()
        self.input = nn.Parameter(torch.zeros(1, channel, 4, 4))

    def forward(self, n: int) -> torch.Tensor:
        return self.input.expand(n, -1, -1, -1)
