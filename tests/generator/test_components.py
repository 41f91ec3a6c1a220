"""The torch connected-component filter equals OpenCV's labelling followed by the paper's rule
(keep a component when area / largest > ratio), for 4- and 8-connectivity, on random and
adversarial masks. The torch path is what runs on a GPU; here it runs on the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from generator.components import (
    _keep_large_cv2,
    _keep_large_cv2_batch,
    _keep_large_torch,
    keep_large_components_batch,
    label_components,
)


def serpentine(n: int) -> np.ndarray:
    """One 1-pixel-wide path snaking down the image (rows 0, 2, 4, ... joined at alternate
    ends): a single component whose chain is about n * n / 2 pixels long."""
    m = np.zeros((n, n), bool)
    m[::2, :] = True
    for row in range(1, n, 2):
        m[row, -1 if row % 4 == 1 else 0] = True
    return m


def adversarial(n: int = 48) -> np.ndarray:
    eye = np.eye(n, dtype=bool)
    checker = (np.add.outer(np.arange(n), np.arange(n)) % 2).astype(bool)  # 8-conn: one piece
    comb = np.zeros((n, n), bool)
    comb[::2, :] = True
    comb[:, 0] = True  # a comb: every tooth joined through one column
    dots = np.zeros((n, n), bool)
    dots[::3, ::3] = True  # many equal components: none is dropped
    tiny = np.zeros((n, n), bool)
    tiny[2:12, 2:12] = True
    tiny[-2, -2] = True  # one big square and one pixel: the pixel goes
    edge = np.zeros((n, n), bool)
    edge[0, :] = edge[:, -1] = True  # components touching the border
    return np.stack(
        [serpentine(n), eye, eye[::-1], checker, comb, dots, tiny, edge, np.zeros((n, n), bool),
         np.ones((n, n), bool)]
    )  # fmt: skip


def reference(masks: np.ndarray, connectivity: int, ratio: float) -> np.ndarray:
    return np.stack([_keep_large_cv2(m, connectivity, ratio) for m in masks])


@pytest.mark.parametrize("connectivity", [4, 8])
def test_torch_equals_opencv_on_random_masks(connectivity):
    rng = np.random.default_rng(connectivity)
    for _ in range(40):
        n, h, w = int(rng.integers(1, 6)), int(rng.integers(1, 40)), int(rng.integers(1, 40))
        masks = rng.random((n, h, w)) < rng.uniform(0.05, 0.95)
        for ratio in (0.0, 0.2, 0.5):
            got = _keep_large_torch(torch.from_numpy(masks), connectivity, ratio).numpy()
            np.testing.assert_array_equal(got, reference(masks, connectivity, ratio))


@pytest.mark.parametrize("connectivity", [4, 8])
def test_torch_equals_opencv_on_adversarial_masks(connectivity):
    masks = adversarial()
    got = _keep_large_torch(torch.from_numpy(masks), connectivity, 0.2).numpy()
    np.testing.assert_array_equal(got, reference(masks, connectivity, 0.2))


def test_labels_are_per_component_and_never_cross_images():
    masks = np.zeros((2, 4, 4), bool)
    masks[0, 0, 0] = masks[0, 1, 1] = True  # diagonal neighbours
    masks[1, 0, 0] = True  # same place in the next image: another component
    labels = label_components(torch.from_numpy(masks), connectivity=8).numpy()
    assert labels[0, 0, 0] == labels[0, 1, 1] == 0
    assert labels[1, 0, 0] == 16  # its own flat index: not merged with image 0
    assert (labels[~masks] == -1).all()
    four = label_components(torch.from_numpy(masks), connectivity=4).numpy()
    assert four[0, 0, 0] != four[0, 1, 1]  # not 4-connected


def test_the_serpentine_is_one_component():
    s = serpentine(32)
    labels = label_components(torch.from_numpy(s[None]), connectivity=4).numpy()
    assert len(np.unique(labels[0][s])) == 1


def test_batch_entry_point_and_bad_connectivity():
    masks = adversarial(24)
    got = keep_large_components_batch(torch.from_numpy(masks), 8, 0.2)
    assert got.dtype == torch.bool and got.device.type == "cpu"
    np.testing.assert_array_equal(got.numpy(), reference(masks, 8, 0.2))
    assert keep_large_components_batch(torch.zeros(0, 5, 5, dtype=torch.bool)).shape == (0, 5, 5)
    with pytest.raises(ValueError, match="connectivity"):
        keep_large_components_batch(torch.from_numpy(masks), 6)


@pytest.mark.parametrize("connectivity", [4, 8])
def test_one_opencv_call_per_batch_equals_one_call_per_mask(connectivity):
    """The CPU path stacks a batch into one image (an empty row between masks)."""
    rng = np.random.default_rng(10 + connectivity)
    batches = [adversarial(n) for n in (5, 16, 33)]
    for _ in range(20):
        n, h, w = int(rng.integers(1, 9)), int(rng.integers(1, 30)), int(rng.integers(1, 30))
        batches.append(rng.random((n, h, w)) < rng.uniform(0.05, 0.95))
    for masks in batches:
        for ratio in (0.0, 0.2, 0.5):
            got = _keep_large_cv2_batch(masks, connectivity, ratio)
            np.testing.assert_array_equal(got, reference(masks, connectivity, ratio))
    assert not _keep_large_cv2_batch(np.zeros((3, 4, 4), bool), connectivity, 0.2).any()
