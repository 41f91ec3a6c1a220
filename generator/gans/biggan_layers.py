"""BigGAN-128 generator layers with ajbrock BigGAN-PyTorch parameter names, SN folded at load.

The module and parameter names match ajbrock/BigGAN-PyTorch `layers.py` (the layout of the
authors' converted checkpoint `BigBiGAN_x1.pth`, anvoynov/BigGANsAreWatching), so a state dict
from that code loads key for key:

    SNConv2d / SNLinear   weight, bias, u0 [1, out], sv0 [1]
    ccbn                  gain.{weight,u0,sv0}, bias.{weight,u0,sv0}, stored_mean, stored_var
    bn                    gain, bias, stored_mean, stored_var
    Attention             theta, phi, g, o (SNConv2d 1x1, no bias), gamma

Spectral norm: in eval mode ajbrock's `SN.W_()` runs one power iteration
from the stored `u0` without updating it, so W / sigma is a constant of the checkpoint. We
compute it once (`fold_spectral_norm`) and then run plain conv/linear: same numbers, no
per-forward power iteration. A layer refuses to run before it is folded, so unfolded weights can
never be used by mistake.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def sn_sigma(weight: torch.Tensor, u: torch.Tensor, eps: float) -> torch.Tensor:
    """sigma of `weight` as ajbrock's `power_iteration(W, [u], update=False, eps)` computes it.

    One step of the power method from the stored left singular vector u [1, out]:
    v = normalize(u W), u' = normalize(v W^T), sigma = v W^T u'^T.
    F.normalize divides by max(||x||, eps), exactly like the reference.
    """
    # float32 like the reference (it runs SN in the weight's dtype at every forward).
    w = weight.detach().float().reshape(weight.shape[0], -1)
    u = u.detach().float().reshape(1, -1)
    v = F.normalize(u @ w, eps=eps)
    u2 = F.normalize(v @ w.t(), eps=eps)
    return (v @ w.t() @ u2.t()).squeeze()


class _SNMixin:
    """Spectral-norm buffers with ajbrock's names; `fold()` divides the weight by sigma once."""

    def _init_sn(self, num_outputs: int, eps: float) -> None:
        self.sn_eps = eps
        self.sn_folded = False
        self.register_buffer("u0", torch.randn(1, num_outputs))
        self.register_buffer("sv0", torch.ones(1))

    @torch.no_grad()
    def fold(self) -> None:
        if self.sn_folded:
            raise RuntimeError("spectral norm already folded")
        sigma = sn_sigma(self.weight, self.u0, self.sn_eps)
        self.weight.copy_(self.weight / sigma.to(self.weight.dtype))
        self.sv0.fill_(float(sigma))
        self.sn_folded = True

    def _check_folded(self) -> None:
        if not self.sn_folded:
            raise RuntimeError(
                "spectral norm not folded: call fold_spectral_norm(model) after loading weights"
            )


class SNConv2d(nn.Conv2d, _SNMixin):
    def __init__(self, in_ch, out_ch, kernel_size=3, padding=1, bias=True, eps=1e-4):
        nn.Conv2d.__init__(self, in_ch, out_ch, kernel_size, padding=padding, bias=bias)
        self._init_sn(out_ch, eps)

    def forward(self, x):
        self._check_folded()
        return F.conv2d(x, self.weight, self.bias, padding=self.padding)


class SNLinear(nn.Linear, _SNMixin):
    def __init__(self, in_features, out_features, bias=True, eps=1e-4):
        nn.Linear.__init__(self, in_features, out_features, bias=bias)
        self._init_sn(out_features, eps)

    def forward(self, x):
        self._check_folded()
        return F.linear(x, self.weight, self.bias)


def fold_spectral_norm(model: nn.Module) -> int:
    """Fold every SN layer of `model` (once); returns how many were folded."""
    n = 0
    for m in model.modules():
        if isinstance(m, _SNMixin):
            m.fold()
            n += 1
    return n


class ccbn(nn.Module):
    """Conditional BN: stored statistics, gain = 1 + SNLinear(y), bias = SNLinear(y)."""

    def __init__(self, channels: int, cond_dim: int, bn_eps: float, sn_eps: float):
        super().__init__()
        self.eps = bn_eps
        self.gain = SNLinear(cond_dim, channels, bias=False, eps=sn_eps)
        self.bias = SNLinear(cond_dim, channels, bias=False, eps=sn_eps)
        self.register_buffer("stored_mean", torch.zeros(channels))
        self.register_buffer("stored_var", torch.ones(channels))

    def forward(self, x, y):
        gain = (1 + self.gain(y)).view(y.shape[0], -1, 1, 1)
        bias = self.bias(y).view(y.shape[0], -1, 1, 1)
        # Eval-mode BN with the stored statistics (outputs do not depend
        # on the batch, so z and z + r h can share one batch).
        out = F.batch_norm(x, self.stored_mean, self.stored_var, None, None, False, 0.0, self.eps)
        return out * gain + bias


class bn(nn.Module):
    """Plain BN with stored statistics (the output layer's)."""

    def __init__(self, channels: int, eps: float):
        super().__init__()
        self.eps = eps
        self.gain = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("stored_mean", torch.zeros(channels))
        self.register_buffer("stored_var", torch.ones(channels))

    def forward(self, x):
        return F.batch_norm(
            x, self.stored_mean, self.stored_var, self.gain, self.bias, False, 0.0, self.eps
        )


class GBlock(nn.Module):
    """bn1 -> ReLU -> nearest x2 -> conv1 -> bn2 -> ReLU -> conv2, plus x2 -> 1x1 conv_sc."""

    def __init__(self, in_ch: int, out_ch: int, cond_dim: int, bn_eps: float, sn_eps: float):
        super().__init__()
        self.conv1 = SNConv2d(in_ch, out_ch, 3, 1, eps=sn_eps)
        self.conv2 = SNConv2d(out_ch, out_ch, 3, 1, eps=sn_eps)
        # Every BigGAN-128 G block upsamples, so the shortcut is always learnable.
        self.conv_sc = SNConv2d(in_ch, out_ch, 1, 0, eps=sn_eps)
        self.bn1 = ccbn(in_ch, cond_dim, bn_eps, sn_eps)
        self.bn2 = ccbn(out_ch, cond_dim, bn_eps, sn_eps)

    def forward(self, x, y):
        h = F.relu(self.bn1(x, y))
        h = F.interpolate(h, scale_factor=2, mode="nearest")
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        h = self.conv1(h)
        h = F.relu(self.bn2(h, y))
        h = self.conv2(h)
        return h + self.conv_sc(x)


class Attention(nn.Module):
    """SA-GAN non-local block as in BigGAN (keys/values max-pooled 2x2)."""

    def __init__(self, ch: int, sn_eps: float):
        super().__init__()
        self.ch = ch
        self.theta = SNConv2d(ch, ch // 8, 1, 0, bias=False, eps=sn_eps)
        self.phi = SNConv2d(ch, ch // 8, 1, 0, bias=False, eps=sn_eps)
        self.g = SNConv2d(ch, ch // 2, 1, 0, bias=False, eps=sn_eps)
        self.o = SNConv2d(ch // 2, ch, 1, 0, bias=False, eps=sn_eps)
        self.gamma = nn.Parameter(torch.tensor(0.0))

    def forward(self, x, y=None):
        n, _, h, w = x.shape
        theta = self.theta(x).view(n, self.ch // 8, h * w)
        phi = F.max_pool2d(self.phi(x), [2, 2]).view(n, self.ch // 8, h * w // 4)
        g = F.max_pool2d(self.g(x), [2, 2]).view(n, self.ch // 2, h * w // 4)
        beta = F.softmax(torch.bmm(theta.transpose(1, 2), phi), -1)
        o = self.o(torch.bmm(g, beta.transpose(1, 2)).view(n, self.ch // 2, h, w))
        return self.gamma * o + x
