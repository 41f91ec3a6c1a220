"""Tiny differentiable GAN backends with known latent semantics, for the directions tests.

Loaded by the CLI through the "module:factory" form of --gan, e.g.
`--gan tests.directions.toy_gans:build_planted` (no registry edit needed).

`planted`: 12-d latent, 16x16 images. Coordinate PLANTED (7) is a segmenting direction by
construction: it adds +0.12 per unit to every channel inside a centred disk (the object) and
-0.12 outside (the background). The other coordinates do things a segmenting direction must
not be confused with: weak region colours (0-5), global brightness (6), horizontal and
vertical tilt (8, 9), a moving blob (10), global channel mixing (11).
"""

from __future__ import annotations

import torch

from generator.gans.base import NoEncoderError

PLANTED = 7
RES = 16


def disk(res: int = RES) -> torch.Tensor:
    """The planted object region: bool [res, res], a centred disk of radius 0.3 res."""
    c = (torch.arange(res, dtype=torch.float32) + 0.5) / res - 0.5
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    return (xx**2 + yy**2) < 0.3**2


class _Toy:
    has_encoder = False

    def __init__(self, name, latent_dim, device, differentiable=True):
        self.name = name
        self.latent_dim = latent_dim
        self.resolution = RES
        self.differentiable = differentiable
        self._device = torch.device(device)

    @property
    def device(self):
        return self._device

    def encode(self, x):
        raise NoEncoderError(f"{self.name} has no encoder")

    def generate(self, z):
        if self.differentiable:
            return self._generate(z)
        with torch.no_grad():
            return self._generate(z.detach())


class Planted(_Toy):
    def __init__(self, device="cpu", planted_sign=1.0, differentiable=True):
        super().__init__("toy-planted", 12, device, differentiable)
        dev = self._device
        self.region = disk().to(dev).float()[None, None]  # [1,1,R,R]
        c = (torch.arange(RES, dtype=torch.float32, device=dev) + 0.5) / RES - 0.5
        yy, xx = torch.meshgrid(c, c, indexing="ij")
        self.xx, self.yy = xx[None, None], yy[None, None]
        # a fixed texture so that pixels of one region are not all the same colour
        gen = torch.Generator().manual_seed(123)
        self.texture = (0.15 * torch.randn(1, 3, RES, RES, generator=gen)).to(dev)
        self.planted_sign = planted_sign

    def _generate(self, z):
        z = z.to(self._device, torch.float32)
        n = z.shape[0]
        col_obj = (0.3 + 0.08 * z[:, 0:3]).view(n, 3, 1, 1)
        col_bg = (-0.2 + 0.08 * z[:, 3:6]).view(n, 3, 1, 1)
        pre = self.region * col_obj + (1 - self.region) * col_bg + self.texture
        pre = pre + 0.06 * z[:, 6].view(n, 1, 1, 1)  # global brightness
        sign = 2 * self.region - 1  # +1 object, -1 background
        pre = pre + self.planted_sign * 0.12 * z[:, PLANTED].view(n, 1, 1, 1) * sign
        pre = (
            pre
            + 0.2 * z[:, 8].view(n, 1, 1, 1) * self.xx
            + 0.2 * z[:, 9].view(n, 1, 1, 1) * self.yy
        )
        bx = 0.25 * torch.tanh(z[:, 10]).view(n, 1, 1, 1)
        pre = pre + 0.3 * torch.exp(-((self.xx - bx) ** 2 + (self.yy + 0.3) ** 2) / 0.01)
        mix = torch.tensor([1.0, -1.0, 0.0], device=self._device).view(1, 3, 1, 1)
        pre = pre + 0.05 * z[:, 11].view(n, 1, 1, 1) * mix
        return torch.tanh(pre)


class Factors(_Toy):
    """6-d latent; each coordinate moves the image along its own fixed pattern."""

    def __init__(self, device="cpu"):
        super().__init__("toy-factors", 6, device)
        dev = self._device
        c = (torch.arange(RES, dtype=torch.float32) + 0.5) / RES - 0.5
        yy, xx = torch.meshgrid(c, c, indexing="ij")
        one = torch.ones(RES, RES)
        pats = [
            torch.stack([one, one, one]),  # brightness
            torch.stack([one, -one, 0 * one]),  # red vs green
            torch.stack([2 * xx] * 3),  # horizontal tilt
            torch.stack([2 * yy] * 3),  # vertical tilt
            torch.stack([torch.sign(xx * yy)] * 3),  # quadrants
            torch.stack([torch.exp(-(xx**2 + yy**2) / 0.02)] * 3),  # centre blob
        ]
        self.patterns = torch.stack(pats).to(dev)  # [6, 3, R, R]

    def _generate(self, z):
        z = z.to(self._device, torch.float32)
        return torch.tanh(0.15 * torch.einsum("nk,kchw->nchw", z, self.patterns))


def build_planted(weights=None, device="cpu"):
    return Planted(device)


def build_planted_dark(weights=None, device="cpu"):
    """Same, but +PLANTED darkens the object: the picked vector must be -e_PLANTED."""
    return Planted(device, planted_sign=-1.0)


def build_planted_frozen(weights=None, device="cpu"):
    """Same images, but the backend declares no gradients (like the TF-Hub backend)."""
    return Planted(device, differentiable=False)


def build_factors(weights=None, device="cpu"):
    return Factors(device)


def truth_mask(z):
    """The planted object mask for latents z: the disk, whatever z is ([N, R, R] bool)."""
    return disk()[None].expand(z.shape[0], -1, -1)
