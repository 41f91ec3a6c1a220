"""Operator fitting (Appendix B, eq. 6) recovers two known affine colour maps."""

import pytest
import torch

from generator.directions.operators import (
    AffinePair,
    assignment,
    fit_operators,
    pixel_errors,
    restoration_loss,
    separation,
)

# Two hand-written maps, [W | b]: a brightening one and a darkening, channel-mixing one.
A_BRIGHT = torch.tensor([[0.8, 0.1, 0.0, 0.35], [0.0, 0.9, 0.0, 0.30], [0.05, 0.0, 0.7, 0.25]])
A_DARK = torch.tensor([[0.6, 0.0, 0.1, -0.30], [0.1, 0.7, 0.0, -0.25], [0.0, 0.0, 0.8, -0.35]])


def _apply(mat, x):
    return torch.einsum("ij,njhw->nihw", mat[:, :3], x) + mat[:, 3].view(1, 3, 1, 1)


def _synthetic(n, gen):
    x = torch.rand(n, 3, 8, 8, generator=gen) * 1.2 - 0.6
    region = torch.rand(n, 1, 8, 8, generator=gen) < 0.3  # pixels taken by the bright map
    y = torch.where(region, _apply(A_BRIGHT, x), _apply(A_DARK, x))
    return x, y, region[:, 0]


@pytest.mark.slow
def test_fit_recovers_known_maps_and_mask():
    gen = torch.Generator().manual_seed(0)
    data = [_synthetic(4, gen)[:2] for _ in range(400)]
    pair, history = fit_operators(lambda step: data[step], steps=400, lr=5e-3)
    mats = pair.matrices()
    # The brightening initialisation (operator 0) must end on the brightening map.
    assert torch.allclose(mats[0], A_BRIGHT, atol=0.03), mats[0]
    assert torch.allclose(mats[1], A_DARK, atol=0.03), mats[1]
    assert history[-1] < 1e-3 < history[0]

    x, y, region = _synthetic(16, torch.Generator().manual_seed(1))
    with torch.no_grad():
        err = pixel_errors(pair(x), y)
    agree = (assignment(err) == 0) == region
    assert agree.float().mean() > 0.99


def test_losses_are_exact_on_hand_computable_pixels():
    # One pixel, identity maps with biases +0.1 / -0.1, target x + 0.1: L = 0, D = 3 * 0.2^2.
    pair = AffinePair(init_bias=0.1)
    x = torch.zeros(1, 3, 1, 1)
    y = torch.full((1, 3, 1, 1), 0.1)
    with torch.no_grad():
        pred = pair(x)
        err = pixel_errors(pred, y)
    assert float(restoration_loss(err)) == 0.0
    assert abs(float(separation(pred)) - 3 * 0.2**2) < 1e-6
    assert int(assignment(err)[0, 0, 0]) == 0


def test_outputs_are_clamped():
    pair = AffinePair.from_matrices(torch.stack([A_BRIGHT * 4, A_DARK * 4]))
    with torch.no_grad():
        out = pair(torch.ones(1, 3, 2, 2))
    assert out.max() <= 1.0 and out.min() >= -1.0
