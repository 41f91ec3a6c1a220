"""Masks (the paper's rule, Appendix B eq. 7) on hand-made pixels."""

import pytest
import torch

from generator.masks import affine_mask, gray, lighter_mask, make_masks, mean_mask


def _img(rgb_rows):
    """[[(r,g,b), ...]] (one row of pixels) -> [1, 3, 1, W]."""
    return torch.tensor(rgb_rows, dtype=torch.float32).permute(2, 0, 1).unsqueeze(0)


def test_gray_weights_on_raw_values():
    x = _img([[(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (-1.0, -1.0, -1.0)]])
    assert torch.allclose(gray(x)[0, 0], torch.tensor([0.2989, 0.5870, 0.1140, -0.9999]))


def test_lighter_is_strict():
    img = _img([[(0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (0.5, 0.5, 0.5)]])
    shifted = _img([[(0.1, 0.1, 0.1), (0.0, 0.0, 0.0), (0.4, 0.4, 0.4)]])
    assert lighter_mask(img, shifted)[0, 0].tolist() == [True, False, False]


def test_mean_threshold_per_image_strict():
    shifted = _img([[(-1.0, -1.0, -1.0), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)]])
    # gray ~ -1, 0, 1; mean 0 -> only the last pixel is strictly above
    assert mean_mask(shifted)[0, 0].tolist() == [False, False, True]


def test_affine_assignment_picks_the_better_operator():
    ident = torch.cat([torch.eye(3), torch.zeros(3, 1)], dim=1)
    bright = torch.cat([torch.eye(3), torch.full((3, 1), 0.5)], dim=1)  # adds 0.5
    ops = torch.stack([ident, bright])
    img = _img([[(0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (0.2, 0.2, 0.2)]])
    # pixel 0 unchanged (identity), pixel 1 +0.5 (bright), pixel 2 +0.25: a tie -> map 0
    shifted = _img([[(0.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.45, 0.45, 0.45)]])
    assert affine_mask(img, shifted, ops, 1)[0, 0].tolist() == [False, True, False]
    assert affine_mask(img, shifted, ops, 0)[0, 0].tolist() == [True, False, True]


def test_make_masks_affine_needs_operators():
    x = torch.zeros(1, 3, 2, 2)
    with pytest.raises(ValueError, match="operators"):
        make_masks("affine", x, x)
    with pytest.raises(ValueError, match="unknown mask"):
        make_masks("darker", x, x)


def test_affine_assignment_clamps_like_the_fit():
    # A pixel at 0.9 that ends at 1.0: map 0 (x3) overshoots to 2.7 but clamps to 1.0, an exact
    # fit; map 1 (identity) misses by 0.1. Without the clamp map 1 would win.
    img = torch.full((1, 3, 1, 1), 0.9)
    shifted = torch.ones(1, 3, 1, 1)
    ops = torch.zeros(2, 3, 4)
    ops[0, :, :3] = 3 * torch.eye(3)
    ops[1, :, :3] = torch.eye(3)
    assert affine_mask(img, shifted, ops, 0).item() is True
