"""The paper's sample filters, in the order of the authors' code:

1. connected components - EDITS the mask: zero every component whose area is <= `ratio` x the
   largest one (keep `area / largest > ratio`); never rejects.
2. mask size - rejects a sample whose foreground fraction is >= `max_fraction` (keep
   `fraction < max_fraction`). The authors' code has no lower bound, so an empty mask passes;
   `min_fraction` (default 0, the code's behaviour) adds one: keep `fraction >= min_fraction`.
   An empty mask on an image that has an object says "this object is background", the same
   noisy supervision the upper bound is there to remove (docs/toyworld.md).
3. histogram - on the SHIFTED image G(z'), the 3 channels pooled, values in [-1, 1], `bins`
   bins; a moving sum of window 3 (zero padding 1); local maxima with non-strict comparisons
   (an end bin compares with its one neighbour); keep the sample if it has >= `min_maxima`.

A rejected sample counts against the FIRST filter that rejects it, so per-filter counts add up
to the number of rejected samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.nn import functional as F

FILTERS = ("components", "mask_size", "histogram")
ACCEPTED = 0
REJECTED_BY = {"mask_size": 1, "histogram": 2}  # reason codes returned by apply_filters


@dataclass(frozen=True)
class FilterSettings:
    enabled: tuple[str, ...] = FILTERS
    connectivity: int = 8  # the code's choice; the paper's text reads as 4
    component_ratio: float = 0.2
    max_fraction: float = 0.5
    min_fraction: float = 0.0  # not in the paper or its code (0 = no lower bound, as there)
    hist_bins: int = 12
    min_maxima: int = 2


def keep_large_components(mask: np.ndarray, connectivity: int = 8, ratio: float = 0.2):
    """One [H, W] bool mask -> a copy without components of area <= ratio x the largest."""
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    n, labels, stats, _ = cv2.connectedComponentsWithStats(
        mask.astype(np.uint8), connectivity=connectivity
    )
    if n <= 1:  # background only
        return mask.copy()
    areas = stats[1:, cv2.CC_STAT_AREA].astype(np.float64)
    keep = np.concatenate([[False], areas / areas.max() > ratio])
    return keep[labels]


def mask_size_ok(
    masks: np.ndarray, max_fraction: float = 0.5, min_fraction: float = 0.0
) -> np.ndarray:
    """[N, H, W] bool -> [N] bool, min_fraction <= foreground fraction < max_fraction."""
    frac = masks.reshape(len(masks), -1).mean(axis=1)
    return (frac < max_fraction) & (frac >= min_fraction)


def histogram_counts(images: torch.Tensor, bins: int = 12, lo: float = -1.0, hi: float = 1.0):
    """Per-image histogram of all channels pooled, like torch.histc(im, bins, lo, hi) per image:
    values outside [lo, hi] are ignored and hi itself falls in the last bin. -> [N, bins]."""
    n = images.shape[0]
    flat = images.reshape(n, -1).float()
    pos = ((flat - lo) * (bins / (hi - lo))).floor_().clamp_(0, bins - 1).long()
    # values outside [lo, hi] go to an extra "dump" bin per image, dropped below
    pos.masked_fill_((flat < lo) | (flat > hi), bins)
    pos += torch.arange(n, device=flat.device).unsqueeze(1) * (bins + 1)
    if pos.device.type == "cpu":  # numpy's bincount is ~10x faster than torch's on CPU
        counts = torch.from_numpy(np.bincount(pos.view(-1).numpy(), minlength=n * (bins + 1)))
    else:
        counts = torch.bincount(pos.view(-1), minlength=n * (bins + 1))
    return counts.view(n, bins + 1)[:, :bins].float()


def count_maxima(hist: torch.Tensor) -> torch.Tensor:
    """[N, B] histograms -> [N] number of local maxima of the window-3 moving sum (padding 1),
    with non-strict comparisons (`>=`); the first/last bin only compare with their neighbour."""
    n = hist.shape[0]
    smooth = F.conv1d(hist.unsqueeze(1), torch.ones(1, 1, 3, device=hist.device), padding=1)
    s = smooth.squeeze(1)
    true = torch.ones(n, 1, dtype=torch.bool, device=hist.device)
    left = torch.cat([true, s[:, 1:] >= s[:, :-1]], dim=1)
    right = torch.cat([s[:, :-1] >= s[:, 1:], true], dim=1)
    return (left & right).sum(dim=1)


def histogram_ok(shifted: torch.Tensor, bins: int = 12, min_maxima: int = 2) -> np.ndarray:
    return (count_maxima(histogram_counts(shifted, bins)) >= min_maxima).cpu().numpy()


def apply_filters(masks: np.ndarray, shifted: torch.Tensor, settings: FilterSettings):
    """-> (edited masks [N, H, W] bool, reason [N] int8: 0 accepted, else REJECTED_BY code)."""
    masks = np.asarray(masks, dtype=bool)
    if "components" in settings.enabled:
        masks = (
            np.stack(
                [
                    keep_large_components(m, settings.connectivity, settings.component_ratio)
                    for m in masks
                ]
            )
            if len(masks)
            else masks
        )
    reason = np.zeros(len(masks), dtype=np.int8)
    if "mask_size" in settings.enabled:
        bad = ~mask_size_ok(masks, settings.max_fraction, settings.min_fraction)
        reason[bad & (reason == ACCEPTED)] = REJECTED_BY["mask_size"]
    if "histogram" in settings.enabled:
        # only for the samples still in (as in the authors' code); saves work on rejects
        alive = np.flatnonzero(reason == ACCEPTED)
        if len(alive):
            idx = torch.from_numpy(alive).to(shifted.device)
            ok = histogram_ok(shifted[idx], settings.hist_bins, settings.min_maxima)
            reason[alive[~ok]] = REJECTED_BY["histogram"]
    return masks, reason
