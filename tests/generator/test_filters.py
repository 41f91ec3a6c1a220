"""The paper's filters on hand-built inputs with literal expected answers."""

import numpy as np
import pytest
import torch

from generator.filters import (
    FilterSettings,
    _histogram_counts_torch,
    apply_filters,
    count_maxima,
    filter_batch,
    histogram_counts,
    keep_large_components,
    mask_size_ok,
)


def test_components_drop_small_ones_and_keep_ratio_strictly_above_02():
    m = np.zeros((8, 12), bool)
    m[0:2, 0:5] = True  # area 10 (largest)
    m[5, 0:2] = True  # area 2: 2/10 = 0.2 -> dropped (keep only > 0.2)
    m[5:8, 10] = True  # area 3: 0.3 -> kept
    out = keep_large_components(m, 8, 0.2)
    expected = m.copy()
    expected[5, 0:2] = False
    assert np.array_equal(out, expected)


def test_components_connectivity_8_joins_diagonals_4_does_not():
    m = np.zeros((6, 6), bool)
    m[0:2, 0:2] = True  # area 4
    m[2, 2] = True  # touches the block only diagonally; alone: 1/4 = 0.25 > 0.2
    m[5, 5] = True  # isolated single pixel
    # 8-connectivity: one component of 5; the lone pixel 1/5 = 0.2 -> dropped
    out8 = keep_large_components(m, 8)
    assert out8.sum() == 5 and not out8[5, 5] and out8[2, 2]
    # 4-connectivity: components 4, 1, 1; 1/4 = 0.25 > 0.2 -> all kept
    assert np.array_equal(keep_large_components(m, 4), m)


def test_components_empty_and_bad_connectivity():
    m = np.zeros((4, 4), bool)
    assert not keep_large_components(m).any()
    with pytest.raises(ValueError, match="connectivity"):
        keep_large_components(m, 6)


def test_mask_size_strict_half_and_empty_passes():
    masks = np.zeros((3, 4, 4), bool)
    masks[0].flat[:8] = True  # exactly 0.5 -> rejected (keep < 0.5)
    masks[1].flat[:7] = True  # 7/16 -> kept
    assert mask_size_ok(masks).tolist() == [False, True, True]


def test_mask_size_lower_bound_rejects_near_empty_masks():
    masks = np.zeros((4, 4, 4), bool)  # 16 pixels each
    masks[1].flat[:1] = True  # 1/16 = 0.0625 < 0.1 -> rejected
    masks[2].flat[:2] = True  # 2/16 = 0.125 -> kept
    masks[3].flat[:8] = True  # 0.5 -> still rejected by the upper bound
    assert mask_size_ok(masks, 0.5, 0.1).tolist() == [False, False, True, False]
    assert mask_size_ok(masks, 0.5, 0.125).tolist() == [False, False, True, False]  # >= bound
    assert mask_size_ok(masks).tolist() == [True, True, True, False]  # default: no lower bound
    # through apply_filters: the empty mask counts against the mask-size filter
    shifted = torch.zeros(4, 3, 4, 4)
    settings = FilterSettings(enabled=("mask_size",), min_fraction=0.1)
    _, reason = apply_filters(masks, shifted, settings)
    assert reason.tolist() == [1, 1, 0, 1]


def _image_with_bin_counts(counts):
    """A [1, 3, 1, sum] image whose pooled values put counts[b] values at bin b's centre."""
    centres = -1 + (np.arange(12) + 0.5) * (2 / 12)
    vals = np.concatenate([np.full(c, centres[b]) for b, c in enumerate(counts)])
    pad = (-len(vals)) % 3
    assert pad == 0, "choose counts summing to a multiple of 3"
    return torch.tensor(vals, dtype=torch.float32).view(1, 3, 1, -1)


def test_histogram_counts_match_torch_histc_and_edges():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 3, 7, 9, generator=g) * 2.4 - 1.2  # some values outside [-1, 1]
    x[0, 0, 0, 0] = 1.0  # hi edge -> last bin
    x[0, 0, 0, 1] = -1.0  # lo edge -> first bin
    ours = histogram_counts(x, 12)
    ref = torch.stack([torch.histc(im, 12, -1, 1) for im in x])
    assert torch.equal(ours, ref)


@pytest.mark.parametrize(
    ("counts", "maxima"),
    [
        # smoothed: 3 6 9 ... 33 23 -> one peak (bin 10)
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], 1),
        # smoothed: 3 6 9 12 15 17 17 15 12 9 6 3 -> the plateau counts twice (non-strict)
        ([1, 2, 3, 4, 5, 6, 6, 5, 4, 3, 2, 1], 2),
        # smoothed: 3 3 0 0 0 0 0 0 0 0 3 3 -> bins 0,1 and 10,11 and the flat zeros 3..8
        ([3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3], 10),
    ],
)
def test_histogram_maxima_literal(counts, maxima):
    hist = torch.tensor([counts], dtype=torch.float32)
    assert count_maxima(hist).tolist() == [maxima]
    img = _image_with_bin_counts(counts)
    assert histogram_counts(img).tolist() == [counts]


def test_apply_filters_order_and_reasons():
    settings = FilterSettings()
    masks = np.zeros((3, 4, 4), bool)
    masks[0].flat[:10] = True  # too big -> mask_size (even though its histogram is also bad)
    masks[1].flat[:2] = True  # ok size, unimodal shifted image -> histogram
    masks[2].flat[:2] = True  # ok
    unimodal = _image_with_bin_counts([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])  # 1 maximum
    # smoothed 3 6 9 12 15 17 17 15 12 9 42 39: maxima at bins 5, 6, 10 -> kept
    several = _image_with_bin_counts([1, 2, 3, 4, 5, 6, 6, 5, 4, 3, 2, 37])
    shifted = torch.cat([unimodal, unimodal, several])
    _, reason = apply_filters(masks, shifted, settings)
    assert reason.tolist() == [1, 2, 0]
    _, reason = apply_filters(masks, shifted, FilterSettings(enabled=("histogram",)))
    assert reason.tolist() == [2, 2, 0]
    _, reason = apply_filters(masks, shifted, FilterSettings(enabled=()))
    assert reason.tolist() == [0, 0, 0]


def _histogram_reference(images, bins, lo=-1.0, hi=1.0):
    """The histogram's definition, written out: float32 bin position, values outside dropped."""
    flat = images.reshape(len(images), -1).float()
    pos = ((flat - lo) * (bins / (hi - lo))).floor().clamp(0, bins - 1).long()
    inside = (flat >= lo) & (flat <= hi)
    return torch.stack(
        [torch.bincount(p[k], minlength=bins) for p, k in zip(pos, inside, strict=True)]
    ).float()


@pytest.mark.parametrize("bins", [5, 12, 100])  # 100: the general path, not the chunked one
def test_histogram_counts_equal_the_definition_next_to_every_bin_edge(bins):
    edges = np.array([-1 + 2 * k / bins for k in range(bins + 1)], np.float32)
    down, up = np.float32(-2), np.float32(2)
    near = [edges, np.nextafter(edges, down), np.nextafter(edges, up)]
    near += [np.nextafter(near[1], down), np.nextafter(near[2], up), [-1e-9, 1e-9, -1.5, 1.5]]
    values = np.concatenate(near).astype(np.float32)
    rng = np.random.default_rng(bins)
    for clip in (False, True):
        x = rng.uniform(-1.2, 1.2, (9, 3, 6, 10)).astype(np.float32)
        x.reshape(-1)[: len(values)] = values
        x = x.reshape(-1)[rng.permutation(x.size)].reshape(x.shape)
        if clip:
            x = np.clip(x, -1, 1)
        t = torch.from_numpy(x)
        assert torch.equal(histogram_counts(t, bins), _histogram_reference(t, bins))
        # the device path (the whole batch at once), run here on the CPU
        assert torch.equal(_histogram_counts_torch(t, bins, -1.0, 1.0), histogram_counts(t, bins))


def test_filter_batch_mask_size_is_numpys_mean_to_the_last_bit():
    """count / (H * W) in float64 against the bounds: 3/10 == 0.3 is rejected by < 0.3 and
    1/10 == 0.1 kept by >= 0.1, as numpy's mean decides."""
    masks = np.zeros((11, 2, 5), bool)
    for count in range(11):
        masks[count].flat[:count] = True
    settings = FilterSettings(enabled=("mask_size",), max_fraction=0.3, min_fraction=0.1)
    _, reason = filter_batch(torch.from_numpy(masks), torch.zeros(11, 3, 2, 5), settings)
    assert reason.tolist() == [1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1]
    expected = ~mask_size_ok(masks, 0.3, 0.1)
    assert (reason.numpy() == 1).tolist() == expected.tolist()
