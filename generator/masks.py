"""Masks from a latent shift (the paper's rule and Appendix B's), vectorised over the batch, on
any device.

All functions take raw generator outputs in [-1, 1], shape [N, 3, H, W], and return bool masks
[N, H, W] (True = object). `img` is G(z), `shifted` is G(z + r h) with h pointing so that the
object gets LIGHTER, except for "bg-removal", whose h (a conditional BigGAN's "background
removal" direction) whitens the background.
"""

from __future__ import annotations

import torch

from generator.directions.operators import AffinePair, assignment, pixel_errors

MASKS = ("lighter", "mean", "affine", "bg-removal")
# "bg-removal": the default mask threshold of Voynov & Babenko's code (mask_thr, on [0, 1])
BG_THRESHOLD = 0.95

# ITU-R BT.601 luma, the weights of the authors' rgb2gray
GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)


def gray(x: torch.Tensor, channel_dim: int = 1) -> torch.Tensor:
    """Luma on the raw [-1, 1] values (no rescaling): [N, 3, H, W] -> [N, H, W] by default;
    `channel_dim` names the RGB axis of other layouts."""
    r, g, b = GRAY_WEIGHTS
    c = x.unbind(channel_dim)
    return r * c[0] + g * c[1] + b * c[2]


def lighter_mask(img: torch.Tensor, shifted: torch.Tensor) -> torch.Tensor:
    """M = gray(G(z + r h)) > gray(G(z)), strict (the paper's rule, the default)."""
    return gray(shifted) > gray(img)


def mean_mask(shifted: torch.Tensor) -> torch.Tensor:
    """M = gray(G(z')) > mean(gray(G(z'))) per image, strict ("mean threshold", Flowers)."""
    g = gray(shifted)
    return g > g.mean(dim=(1, 2), keepdim=True)


def bg_removal_mask(shifted: torch.Tensor, threshold: float = BG_THRESHOLD) -> torch.Tensor:
    """Voynov & Babenko (2020)'s masks, as their code's default ("intensity") makes them:
    the RGB mean of G(z + r h) brought to [0, 1], strictly below `threshold` is object; the
    background-removal shift has turned the rest (nearly) white. G(z) plays no part."""
    intensity = 0.5 * shifted.mean(dim=1) + 0.5  # their [-1, 1] -> [0, 1], in this order
    return intensity < threshold


def affine_mask(
    img: torch.Tensor, shifted: torch.Tensor, operators: torch.Tensor, bright_operator: int
) -> torch.Tensor:
    """Appendix B, eq. (7): each pixel takes the affine colour map A_k (k in {0, 1}) that best
    maps G(z) to G(z'); the object is the pixels assigned to the brightening map.

    `operators` is [2, 3, 4] ([3x3 | bias] per map), acting on raw [-1, 1] RGB; mapped colours
    are clamped to [-1, 1] exactly as when the operators were fitted
    (generator/directions/operators.py), so saturated pixels get the same choice. A tie goes
    to map 0 (argmin's first index).
    """
    # one implementation of the maps and of eq. 7: the fit's own (directions/operators.py)
    with torch.no_grad():
        pair = AffinePair.from_matrices(operators).to(img.device, img.dtype)
        return assignment(pixel_errors(pair(img), shifted)) == int(bright_operator)


def make_masks(
    kind: str,
    img: torch.Tensor,
    shifted: torch.Tensor,
    operators: torch.Tensor | None = None,
    bright_operator: int | None = None,
    threshold: float = BG_THRESHOLD,
) -> torch.Tensor:
    """`threshold` is the "bg-removal" rule's; the other rules ignore it."""
    if kind == "lighter":
        return lighter_mask(img, shifted)
    if kind == "mean":
        return mean_mask(shifted)
    if kind == "affine":
        if operators is None or bright_operator is None:
            raise ValueError("the affine mask needs the direction file's operators")
        return affine_mask(img, shifted, operators, bright_operator)
    if kind == "bg-removal":
        return bg_removal_mask(shifted, threshold)
    raise ValueError(f"unknown mask {kind!r}; choose one of {', '.join(MASKS)}")
