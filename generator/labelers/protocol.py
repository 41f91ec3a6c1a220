"""The test-time protocol of U²-Net's authors (their u2net_test.py and data_loader.py), batched
on any device, around a model that maps a normalised 320x320 image to saliency logits.

Pre-processing, per image ([N, 3, R, R] GAN output in [-1, 1]):
1. the 8-bit image the shard stores, round((clamp(x) + 1) * 127.5), as floats in [0, 1]: the
   authors' script reads 8-bit files, and the labeler sees the very pixels a sample carries;
2. resized to 320x320 as `skimage.transform.resize(image, (320, 320), mode="constant")` does
   it when it enlarges (bilinear, half-pixel centres, zero beyond the border: the outermost
   output pixels blend with 0), here as two matrix products. When it shrinks (a GAN
   above 320 px) skimage first smooths with a Gaussian; this port does not;
3. divided by its own maximum over all channels (ToTensorLab, flag 0); an all-black image
   (maximum 0) is left at 0 instead of the reference's 0/0;
4. per channel (x - mean) / std with ImageNet's mean (0.485, 0.456, 0.406) and std
   (0.229, 0.224, 0.225).

Post-processing: sigmoid of the fused output d0, min-max normalised per image (normPRED; a
constant map, whose range is 0, becomes 0 instead of 0/0), resized to the GAN's resolution
as the authors' save_output does with PIL's bilinear filter (torch's antialiased bilinear
resize computes the same filter; the authors' 8-bit rounding of the map is not done), and
thresholded: object where the map is > 0.5.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

SIZE = 320
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
THRESHOLD = 0.5
CHUNK = 8  # images per labeler forward: bounds the memory of U2NET's 320x320 activations


def stored_pixels(images: torch.Tensor) -> torch.Tensor:
    """[N, 3, H, W] in [-1, 1] -> the stored 8-bit values / 255 (float32 in [0, 1])."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round() / 255


def resize_weights(n_in: int, n_out: int) -> torch.Tensor:
    """[n_out, n_in] float64 weights of a 1-D linear resize with half-pixel centres and zero
    outside the input: output i reads the input at (i + 0.5) * n_in / n_out - 0.5."""
    src = (torch.arange(n_out, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5
    left = src.floor()
    frac = src - left
    w = torch.zeros(n_out, n_in + 2, dtype=torch.float64)  # columns 0 and n_in + 1: outside
    rows = torch.arange(n_out)
    w[rows, (left + 1).long().clamp(0, n_in + 1)] += 1 - frac
    w[rows, (left + 2).long().clamp(0, n_in + 1)] += frac
    return w[:, 1:-1]


def resize_zero_border(x: torch.Tensor, size: int) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, size, size]: bilinear with half-pixel centres and zero outside
    the image (skimage's order-1 resize, mode "constant", cval 0, without anti-aliasing), as
    two matrix products with weights computed in float64."""
    wy = resize_weights(x.shape[2], size).to(x.device, x.dtype)
    wx = resize_weights(x.shape[3], size).to(x.device, x.dtype)
    return wy @ x @ wx.T


def preprocess(images: torch.Tensor, size: int = SIZE) -> torch.Tensor:
    """GAN images [N, 3, R, R] in [-1, 1] -> the network's input [N, 3, size, size]."""
    x = resize_zero_border(stored_pixels(images), size)
    peak = x.amax(dim=(1, 2, 3), keepdim=True)
    x = x / torch.where(peak > 0, peak, torch.ones_like(peak))
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def normalise(prob: torch.Tensor) -> torch.Tensor:
    """[N, 1, H, W] -> (p - min) / (max - min) per image; 0 where max == min."""
    lo = prob.amin(dim=(1, 2, 3), keepdim=True)
    span = prob.amax(dim=(1, 2, 3), keepdim=True) - lo
    return torch.where(span > 0, (prob - lo) / torch.where(span > 0, span, 1.0), 0.0)


def resize_back(saliency: torch.Tensor, resolution: int) -> torch.Tensor:
    """[N, 1, S, S] -> [N, 1, R, R], PIL's bilinear resize (antialiased when shrinking)."""
    if saliency.shape[-1] == resolution and saliency.shape[-2] == resolution:
        return saliency
    return F.interpolate(
        saliency, size=(resolution, resolution), mode="bilinear", align_corners=False,
        antialias=True,
    )  # fmt: skip


class SaliencyLabeler:
    """A labeler (generator/labelers/__init__.py): `masks(images)` -> bool [N, H, W] on the
    images' device; `saliency(images)` -> the normalised map at the images' resolution.

    Every image is labelled on its own (eval-mode BatchNorm), CHUNK images per forward."""

    def __init__(self, model: torch.nn.Module, device, name: str):
        self.name = name
        self._device = torch.device(device)
        self.model = model.to(self._device).eval().requires_grad_(False)

    @property
    def device(self) -> torch.device:
        return self._device

    @torch.no_grad()
    def saliency(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] != 3 or images.shape[2] != images.shape[3]:
            raise ValueError(f"images must be [N, 3, R, R], got {list(images.shape)}")
        resolution = images.shape[-1]
        out = []
        for start in range(0, len(images), CHUNK):
            x = preprocess(images[start : start + CHUNK].to(self._device))
            prob = torch.sigmoid(self.model(x)[0])
            out.append(resize_back(normalise(prob), resolution)[:, 0])
        if not out:
            return images.new_zeros((0, resolution, resolution), device=self._device)
        return torch.cat(out)

    def masks(self, images: torch.Tensor) -> torch.Tensor:
        return self.saliency(images) > THRESHOLD
