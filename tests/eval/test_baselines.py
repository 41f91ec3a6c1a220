"""Classic baselines: the center prior by hand, RBD on an image whose answer is obvious."""

import numpy as np
import pytest

from eval.baselines import RBD, CenterPrior, center_prior, rbd_saliency
from eval.metrics import SaliencyMetrics


def test_center_prior_by_hand():
    m = center_prior(4, 6, sigma_frac=0.25)
    assert m.shape == (4, 6) and m.dtype == np.float32
    # pixel centres at y = 1.5 (0.5 px from the middle 2.0), sy = 1: exp(-0.5 * 0.25)
    assert m[1, 2] == pytest.approx(np.exp(-0.5 * (0.5**2 + (0.5 / 1.5) ** 2)), rel=1e-6)
    np.testing.assert_array_equal(m, m[::-1, ::-1])  # symmetric about the centre
    assert m.max() < 1 and m.min() > 0
    assert CenterPrior().predict(np.zeros((4, 6, 3), np.uint8)).shape == (4, 6)


def test_rbd_finds_a_distinct_object_away_from_the_border():
    rng = np.random.default_rng(0)
    img = np.empty((90, 120, 3), np.uint8)
    img[:] = (60, 120, 60)  # green background touching every border
    img += rng.integers(0, 12, img.shape, dtype=np.uint8)
    gt = np.zeros((90, 120), bool)
    gt[30:65, 40:85] = True
    img[gt] = (200, 40, 40)  # red object in the middle
    sal = rbd_saliency(img, n_segments=100)
    assert sal.shape == gt.shape and sal.dtype == np.float32
    assert sal.min() >= 0.0 and sal.max() <= 1.0
    m = SaliencyMetrics()
    m.update(sal, gt)
    r = m.compute()
    assert r["iou"] > 0.9 and r["max_fbeta"] > 0.95
    assert sal[gt].mean() > 0.8 and sal[~gt].mean() < 0.1


def test_rbd_downscales_large_images_and_keeps_size():
    img = np.random.default_rng(1).integers(0, 256, (700, 500, 3), dtype=np.uint8)
    out = RBD(n_segments=50, max_side=120).predict(img)
    assert out.shape == (700, 500) and np.isfinite(out).all()
