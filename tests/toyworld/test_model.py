"""The toy-world networks: the 2-layer generator composites, the shift used in training."""

import pytest
import torch

from toyworld.model import Discriminator, Generator, ModelConfig, shift_layer

SMALL = dict(resolution=16, latent_dim=8, g_width=4, d_width=4, e_width=4)


@pytest.mark.parametrize("split", [0, 1])
def test_two_layer_image_is_the_alpha_composite_of_its_layers(split):
    torch.manual_seed(0)
    g = Generator(ModelConfig(**SMALL, layers=2, latent_split=split))
    g = g.eval().requires_grad_(False)
    z = torch.randn(5, 8)
    bg, fg, alpha = g.layered(z)
    assert bg.shape == fg.shape == (5, 3, 16, 16) and alpha.shape == (5, 1, 16, 16)
    assert not torch.allclose(bg, fg)
    # push the alpha logit to +-50: the image must become exactly the foreground / background
    alpha_bias = g.shape.out.bias if split else g.fg.out.bias[3:]
    for logit, layer in ((50.0, fg), (-50.0, bg)):
        alpha_bias.fill_(logit)
        torch.testing.assert_close(g(z), layer, atol=1e-6, rtol=0)
    alpha_bias.fill_(0.0)
    mixed = g(z)  # in between: strictly inside the two layers' range wherever they differ
    lo, hi = torch.minimum(bg, fg), torch.maximum(bg, fg)
    assert bool(((mixed >= lo - 1e-6) & (mixed <= hi + 1e-6)).all())


def test_one_layer_generator_has_no_layers():
    g = Generator(ModelConfig(**SMALL, layers=1, latent_split=0)).eval()
    assert g(torch.randn(2, 8)).shape == (2, 3, 16, 16)
    with pytest.raises(ValueError, match="no layers"):
        g.layered(torch.randn(2, 8))
    with pytest.raises(ValueError, match="layers must be 1 or 2"):
        ModelConfig(**SMALL, layers=3, latent_split=0)


def test_shift_layer_moves_pixels_by_whole_steps_and_fills_zeros():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6) + 1
    out = shift_layer(x, torch.tensor([[2, 0], [-1, 3]]))
    # sample 0: 2 px to the right; sample 1: 1 px left and 3 px down
    torch.testing.assert_close(out[0, 0, :, 2:], x[0, 0, :, :4])
    assert float(out[0, 0, :, :2].abs().max()) < 1e-4  # bilinear at integer offsets
    torch.testing.assert_close(out[1, 0, 3:, :5], x[1, 0, :3, 1:])
    assert float(out[1, 0, :3].abs().max()) < 1e-4
    assert float(out[1, 0, :, 5].abs().max()) < 1e-4
    torch.testing.assert_close(shift_layer(x, torch.zeros(2, 2, dtype=torch.long)), x)


@pytest.mark.parametrize("batchnorm", [0, 1])
def test_discriminator_variants_score_each_image(batchnorm):
    d = Discriminator(ModelConfig(**SMALL, d_batchnorm=batchnorm))
    assert d(torch.randn(3, 3, 16, 16)).shape == (3,)
    has_bn = any(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules())
    assert has_bn == bool(batchnorm)


def test_split_latent_gives_each_layer_its_own_part_of_z():
    g = Generator(ModelConfig(**SMALL, layers=2, latent_split=1)).eval().requires_grad_(False)
    z = torch.randn(4, 8)
    bg, fg, alpha = g.layered(z)
    for part in range(3):  # 8 = 3 + 3 + 2: bg, shape (alpha), fg colours
        z2 = z.clone()
        z2[:, [range(0, 3), range(3, 6), range(6, 8)][part]] += 1.0
        bg2, fg2, alpha2 = g.layered(z2)
        pairs = ((bg, bg2), (alpha, alpha2), (fg, fg2))
        changed = [not torch.equal(a, b) for a, b in pairs]
        assert changed == [i == part for i in range(3)]
    with pytest.raises(ValueError, match="latent_split"):
        ModelConfig(**SMALL, layers=1, latent_split=1)


@pytest.mark.parametrize("split", [0, 1])
def test_alpha_is_the_layered_alpha(split):
    torch.manual_seed(0)
    g = Generator(ModelConfig(**SMALL, layers=2, latent_split=split)).eval().requires_grad_(False)
    z = torch.randn(4, 8)
    alpha = g.alpha(z)
    assert alpha.shape == (4, 1, 16, 16)
    torch.testing.assert_close(alpha, g.layered(z)[2], atol=0, rtol=0)
    with pytest.raises(ValueError, match="no layers"):
        Generator(ModelConfig(**SMALL, layers=1, latent_split=0)).alpha(z)
