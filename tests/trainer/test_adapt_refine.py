"""--adapt-refine crf: label borders move onto the image's colour borders, nothing else moves."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from trainer.adapt_refine import refine, window

CPU = torch.device("cpu")


def scene(side: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A flat-coloured square on a flat background, with a little pixel noise."""
    img = np.empty((side, side, 3), np.float32)
    img[:] = rng.uniform(0, 255, 3)
    mask = np.zeros((side, side), bool)
    a, b = rng.integers(side // 5, side // 3), rng.integers(side // 2, side - side // 6)
    mask[a:b, a + 2 : b + 1] = True
    img[mask] = (img[0, 0] + 128) % 256  # far from the background in every channel
    img += rng.normal(0, 2, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), mask


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_a_shifted_blurred_label_moves_onto_the_colour_border():
    rng = np.random.default_rng(0)
    images, masks, q = [], [], []
    for _ in range(6):
        img, mask = scene(32, rng)
        shifted = np.roll(mask, 1, axis=1).astype(np.float32)  # the model's border: 1 px off
        soft = cv2.GaussianBlur(shifted, (5, 5), 1.2) * 0.8 + 0.1
        images.append(img), masks.append(mask), q.append(np.rint(soft * 255).astype(np.uint8))
    images, masks, q = np.stack(images), np.stack(masks), np.stack(q)
    out = refine(q, images, CPU)
    before = np.mean([iou(a >= 128, m) for a, m in zip(q, masks, strict=True)])
    after = np.mean([iou(a >= 128, m) for a, m in zip(out, masks, strict=True)])
    assert before < 0.9 and after > 0.97, (before, after)
    sure = np.abs(out.astype(np.float32) / 255 - 0.5) >= 0.3
    assert sure.mean() > np.mean(np.abs(q.astype(np.float32) / 255 - 0.5) >= 0.3)


def test_refine_is_deterministic_and_keeps_a_uniform_image_as_it_is():
    rng = np.random.default_rng(1)
    images = np.stack([scene(40, rng)[0] for _ in range(3)])
    q = rng.integers(0, 256, (3, 40, 40), dtype=np.uint8)
    assert np.array_equal(refine(q, images, CPU), refine(q, images, CPU))
    flat = np.full((2, 32, 32, 3), 90, np.uint8)
    sure = np.full((2, 32, 32), 250, np.uint8)
    sure[1] = 5
    out = refine(sure, flat, CPU)
    assert (out[0] >= 250).all() and (out[1] <= 5).all()  # agreement everywhere: no change
    assert refine(q[:0], images[:0], CPU).shape == (0, 40, 40)


def test_window_grows_with_the_side_up_to_its_cap():
    assert window(32)[1] == 7 and window(16)[1] == 6 and window(512)[1] == 7
    assert abs(window(500)[0] - 80) < 1e-9
