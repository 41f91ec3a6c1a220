"""The authors' test-time protocol around U²-Net (generator/labelers/protocol.py): crafted
inputs with exact answers, the reference libraries' own resizes (skimage for the input, PIL for
the map), and the labeler's masks through a stand-in network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from generator.labelers import protocol
from generator.labelers.protocol import (
    SaliencyLabeler,
    normalise,
    preprocess,
    resize_back,
    resize_weights,
)

MEAN, STD = torch.tensor(protocol.MEAN), torch.tensor(protocol.STD)


def _gan_image(rgb_bytes: np.ndarray) -> torch.Tensor:
    """uint8 [H, W, 3] -> the GAN output [1, 3, H, W] in [-1, 1] that stores those bytes."""
    return torch.from_numpy(rgb_bytes).permute(2, 0, 1)[None].double().div(127.5).sub(1).float()


def test_resize_weights_blend_the_outermost_pixels_with_zero():
    want = [[0.75, 0.0], [0.75, 0.25], [0.25, 0.75], [0.0, 0.75]]
    assert resize_weights(2, 4).tolist() == want
    assert resize_weights(3, 3).tolist() == torch.eye(3, dtype=torch.float64).tolist()


def test_preprocess_of_a_flat_colour_is_exact():
    # bytes (51, 102, 0): the maximum over the image is 102/255, so R -> 0.5, G -> 1, B -> 0
    image = _gan_image(np.tile(np.array([51, 102, 0], np.uint8), (2, 2, 1)))
    x = preprocess(image, size=4)[0]
    inner = (torch.tensor([0.5, 1.0, 0.0]) - MEAN) / STD
    torch.testing.assert_close(x[:, 1, 2], inner, atol=1e-6, rtol=0)
    torch.testing.assert_close(x[:, 2, 1], inner, atol=1e-6, rtol=0)
    # corner: 0.75 x 0.75 of the colour, the rest from outside the image (zero)
    corner = (torch.tensor([0.5, 1.0, 0.0]) * 0.5625 - MEAN) / STD
    torch.testing.assert_close(x[:, 0, 3], corner, atol=1e-6, rtol=0)
    edge = (torch.tensor([0.5, 1.0, 0.0]) * 0.75 - MEAN) / STD
    torch.testing.assert_close(x[:, 0, 1], edge, atol=1e-6, rtol=0)


def test_preprocess_of_a_black_image_has_no_nan():
    x = preprocess(-torch.ones(1, 3, 8, 8))
    assert x.shape == (1, 3, 320, 320)
    torch.testing.assert_close(x[0, :, 5, 7], -MEAN / STD, atol=1e-6, rtol=0)


@pytest.mark.parametrize("resolution", [64, 128, 256])
def test_preprocess_equals_the_authors_skimage_pipeline(resolution):
    """RescaleT(320) and ToTensorLab(flag=0) of data_loader.py, on the stored 8-bit image."""
    from skimage import transform

    rng = np.random.default_rng(resolution)
    image = rng.integers(0, 256, (resolution, resolution, 3), dtype=np.uint8)
    image[..., 2] //= 3
    ref = transform.resize(image, (320, 320), mode="constant")
    ref = ref / np.max(ref)
    ref = (ref - np.array(protocol.MEAN)) / np.array(protocol.STD)
    ours = preprocess(_gan_image(image))[0].permute(1, 2, 0).double().numpy()
    assert np.abs(ours - ref).max() < 2e-6


def test_normalise_and_threshold_on_a_crafted_map():
    prob = torch.tensor([[0.5, 0.625], [0.75, 1.0]]).view(1, 1, 2, 2)
    assert normalise(prob).flatten().tolist() == [0.0, 0.25, 0.5, 1.0]
    # object where the map is > 0.5: the pixel at exactly 0.5 is background
    assert (normalise(prob) > protocol.THRESHOLD).flatten().tolist() == [False] * 3 + [True]
    flat = torch.full((1, 1, 3, 3), 0.7)
    assert normalise(flat).flatten().tolist() == [0.0] * 9  # no 0/0


def test_resize_back_equals_pil_bilinear():
    from PIL import Image

    saliency = normalise(torch.rand(1, 1, 320, 320, generator=torch.Generator().manual_seed(0)))
    for resolution in (64, 128, 256):
        pil = Image.fromarray(saliency[0, 0].numpy(), mode="F")
        want = np.asarray(pil.resize((resolution, resolution), resample=Image.BILINEAR))
        got = resize_back(saliency, resolution)[0, 0].numpy()
        assert np.abs(got - want).max() < 1e-6
    assert resize_back(saliency, 320) is saliency


class RedIsSalient(torch.nn.Module):
    """A stand-in network: d0 = 4 x the normalised red channel (one map of seven)."""

    def forward(self, x):
        return [4 * x[:, :1]] * 7


def test_labeler_masks_on_crafted_images_in_chunks():
    # left half red, right half black: the mask is exactly the left half, in every image of a
    # batch larger than one chunk
    image = np.zeros((8, 8, 3), np.uint8)
    image[:, :4, 0] = 255
    batch = _gan_image(image).repeat(protocol.CHUNK + 2, 1, 1, 1)
    labeler = SaliencyLabeler(RedIsSalient(), "cpu", name="stand-in")
    masks = labeler.masks(batch)
    assert masks.dtype == torch.bool and masks.shape == (protocol.CHUNK + 2, 8, 8)
    want = torch.zeros(8, 8, dtype=torch.bool)
    want[:, :4] = True
    assert all(torch.equal(m, want) for m in masks)
    saliency = labeler.saliency(batch[:1])
    assert float(saliency.min()) >= 0 and float(saliency.max()) <= 1
    assert labeler.masks(batch[:0]).shape == (0, 8, 8)
    with pytest.raises(ValueError, match=r"images must be \[N, 3, R, R\]"):
        labeler.masks(torch.zeros(1, 3, 8, 6))
