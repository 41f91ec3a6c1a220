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

import numpy as np
import torch
from torch.nn import functional as F

from generator.components import keep_large_components_batch

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
    batch = torch.from_numpy(np.asarray(mask, dtype=bool)[None])
    return keep_large_components_batch(batch, connectivity, ratio)[0].numpy()


def mask_size_ok(
    masks: np.ndarray, max_fraction: float = 0.5, min_fraction: float = 0.0
) -> np.ndarray:
    """[N, H, W] bool -> [N] bool, min_fraction <= foreground fraction < max_fraction."""
    frac = masks.reshape(len(masks), -1).mean(axis=1)
    return (frac < max_fraction) & (frac >= min_fraction)


def histogram_counts(images: torch.Tensor, bins: int = 12, lo: float = -1.0, hi: float = 1.0):
    """Per-image histogram of all channels pooled, like torch.histc(im, bins, lo, hi) per image:
    values outside [lo, hi] are ignored and hi itself falls in the last bin. -> [N, bins].
    A value's bin is floor((x - lo) * (bins / (hi - lo))) in float32, clamped to the bins."""
    n = images.shape[0]
    if images.device.type == "cpu" and bins * HIST_CHUNK <= 256:
        return _histogram_counts_cpu(images.reshape(n, -1), bins, lo, hi)
    return _histogram_counts_torch(images, bins, lo, hi)


def _histogram_counts_torch(images: torch.Tensor, bins: int, lo: float, hi: float):
    """The whole batch at once in torch (the GPU's path)."""
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


HIST_CHUNK = 4  # images per step of the CPU histogram: the temporaries stay in the cache


def _histogram_counts_cpu(flat: torch.Tensor, bins: int, lo: float, hi: float) -> torch.Tensor:
    """The same counts as the general path, a few images at a time: each value's bin (the same
    float32 arithmetic; NaN is not defined on either path) becomes one byte, offset by bins x
    its image's place in the chunk, and one bincount counts the chunk. A value below lo lands
    in bin 0 and one above hi in the last bin; they are counted apart and taken out (only when
    the chunk has any)."""
    n = flat.shape[0]
    counts = np.empty((n, bins), np.int64)
    for start in range(0, n, HIST_CHUNK):
        x = flat[start : start + HIST_CHUNK].float()
        m = x.shape[0]
        # clamping first, the conversion's truncation is the floor (values are >= 0 then)
        pos = (x - lo).mul_(bins / (hi - lo)).clamp_(0, bins - 1).to(torch.uint8)
        pos += torch.arange(0, m * bins, bins, dtype=torch.uint8).unsqueeze(1)
        chunk = np.bincount(pos.view(-1).numpy(), minlength=m * bins).reshape(m, bins)
        low, high = torch.aminmax(x)
        if not (low >= lo and high <= hi):  # out of range (or NaN): take those values out
            chunk[:, 0] -= (x < lo).sum(dim=1).numpy()
            chunk[:, -1] -= (x > hi).sum(dim=1).numpy()
        counts[start : start + m] = chunk
    return torch.from_numpy(counts).float()


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


def filter_batch(masks: torch.Tensor, shifted: torch.Tensor, settings: FilterSettings):
    """The filters on the masks' device: [N, H, W] bool masks and the shifted images ->
    (edited masks [N, H, W] bool, reason [N] int8: 0 accepted, else REJECTED_BY code), both on
    that device. The mask size is count / (H * W) in float64, the same number numpy's mean
    gives, compared with the same bounds. On the CPU the histogram is computed for the samples
    the first two filters kept only; on a GPU for all of them (no host synchronisation), which
    gives the same counts because each image's histogram is its own."""
    masks = masks.bool()
    n = masks.shape[0]
    if "components" in settings.enabled and n:
        masks = keep_large_components_batch(masks, settings.connectivity, settings.component_ratio)
    reason = torch.zeros(n, dtype=torch.int8, device=masks.device)
    if "mask_size" in settings.enabled and n:
        frac = masks.reshape(n, -1).sum(dim=1).double() / float(masks[0].numel())
        ok = (frac < settings.max_fraction) & (frac >= settings.min_fraction)
        reason.masked_fill_(~ok, REJECTED_BY["mask_size"])
    if "histogram" in settings.enabled and n:
        if masks.device.type == "cpu":
            alive = torch.nonzero(reason == ACCEPTED).squeeze(1)
            if len(alive):
                survivors = shifted if len(alive) == n else shifted.index_select(0, alive)
                bad = ~histogram_ok_tensor(survivors, settings)
                reason[alive[bad]] = REJECTED_BY["histogram"]
        else:
            bad = ~histogram_ok_tensor(shifted, settings) & (reason == ACCEPTED)
            reason.masked_fill_(bad, REJECTED_BY["histogram"])
    return masks, reason


def histogram_ok_tensor(shifted: torch.Tensor, settings: FilterSettings) -> torch.Tensor:
    """[N] bool on the images' device: the histogram filter's verdict."""
    return count_maxima(histogram_counts(shifted, settings.hist_bins)) >= settings.min_maxima


def apply_filters(masks: np.ndarray, shifted: torch.Tensor, settings: FilterSettings):
    """numpy in and out: `filter_batch` on the CPU. -> (edited masks [N, H, W] bool, reason [N]
    int8: 0 accepted, else REJECTED_BY code)."""
    edited, reason = filter_batch(
        torch.from_numpy(np.asarray(masks, dtype=bool)), shifted.cpu(), settings
    )
    return edited.numpy(), reason.numpy()
