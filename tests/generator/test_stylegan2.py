"""`--gan stylegan2`: loading rosinality/stylegan2-pytorch checkpoints (built here with random
weights in that layout), the layers' formulas, W-space sampling and truncation."""

import argparse
import math
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from generator.gans import load_gan
from generator.gans.base import check_prior, map_prior
from generator.gans.stylegan2 import W_AVG_SAMPLES, W_AVG_SEED, build
from generator.gans.stylegan2_layers import (
    ModulatedConv2d,
    Upsample,
    blur_kernel,
    fused_leaky_relu,
    upfirdn2d,
)
from generator.gans.stylegan2_model import (
    StyleGAN2Config,
    StyleGAN2Generator,
    config_from_state_dict,
    port_channels,
    random_state_dict,
)
from segcore.cli import UsageError

# a small model of the same layout: 32 px, style 32, 8 mapping layers, narrow channels
TINY = StyleGAN2Config(resolution=32, style_dim=32, n_mlp=8, channels=(16, 16, 8, 8))


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def save(path, **ckpt):
    torch.save(ckpt, path)
    return str(path)


@pytest.fixture
def tiny_state():
    return random_state_dict(TINY, seed=1)


@pytest.fixture
def converted(tmp_path, tiny_state):
    """A converted release file: g_ema and latent_avg."""
    avg = 0.1 * torch.randn(TINY.style_dim, generator=torch.Generator().manual_seed(2))
    return save(tmp_path / "converted.pt", g_ema=tiny_state, latent_avg=avg), avg


def training_checkpoint(path, g_ema, size=32, multiplier=2):
    """train.py's layout: g, d, g_ema, optimizer states, args (a Namespace), ada_aug_p."""
    g = torch.nn.Linear(3, 2)  # stand-ins: only g_ema is read, the rest must merely unpickle
    opt = torch.optim.Adam(g.parameters(), lr=0.002, betas=(0.0, 0.99))
    g(torch.ones(1, 3)).sum().backward()
    opt.step()
    args = argparse.Namespace(
        size=size, channel_multiplier=multiplier, latent=512, n_mlp=8, path="lmdb", r1=10.0,
        augment=False, ckpt=None, distributed=False,
    )  # fmt: skip
    return save(
        path, g=g.state_dict(), d=g.state_dict(), g_ema=g_ema, g_optim=opt.state_dict(),
        d_optim=opt.state_dict(), args=args, ada_aug_p=0.0,
    )  # fmt: skip


# -- layout ---------------------------------------------------------------------------------


def test_config_f_256_has_the_ports_keys_shapes_and_30_0_M_parameters():
    config = StyleGAN2Config()  # LSUN-Church config-f
    model = StyleGAN2Generator(config)
    state = model.state_dict()
    assert sum(p.numel() for p in model.parameters()) == 30_034_338
    assert len(state) == 135
    shapes = {
        "style.1.weight": [512, 512],
        "style.8.bias": [512],
        "input.input": [1, 512, 4, 4],
        "conv1.conv.weight": [1, 512, 512, 3, 3],
        "conv1.conv.modulation.weight": [512, 512],
        "conv1.noise.weight": [1],
        "conv1.activate.bias": [512],
        "to_rgb1.conv.weight": [1, 3, 512, 1, 1],
        "to_rgb1.bias": [1, 3, 1, 1],
        "convs.0.conv.blur.kernel": [4, 4],
        "convs.10.conv.weight": [1, 128, 256, 3, 3],
        "convs.11.conv.weight": [1, 128, 128, 3, 3],
        "to_rgbs.5.conv.weight": [1, 3, 128, 1, 1],
        "to_rgbs.5.upsample.kernel": [4, 4],
        "noises.noise_0": [1, 1, 4, 4],
        "noises.noise_12": [1, 1, 256, 256],
    }
    assert {k: list(state[k].shape) for k in shapes} == shapes
    assert "style.9.weight" not in state and "convs.12.conv.weight" not in state
    read = config_from_state_dict(state)
    assert read == config and read.channel_multiplier == 2
    assert port_channels(1024, 1) == (512, 512, 512, 512, 256, 128, 64, 32, 16)


def test_config_is_read_from_shapes_and_custom_widths_are_named():
    read = config_from_state_dict(random_state_dict(TINY))
    assert read == TINY and read.channel_multiplier is None
    assert StyleGAN2Config(64, channels=port_channels(64, 1)).channel_multiplier == 1


# -- the layers' formulas --------------------------------------------------------------------


def test_fused_leaky_relu_values():
    x = torch.tensor([[-2.0, 0.0, 3.0]]).reshape(1, 3)
    out = fused_leaky_relu(x, torch.tensor([1.0, 0.0, -1.0]))
    expected = torch.tensor([[-0.2, 0.0, 2.0]]) * math.sqrt(2)
    torch.testing.assert_close(out, expected)


def test_blur_kernel_and_upsample_keep_a_constant_image():
    k = blur_kernel()
    assert k[0].tolist() == [v / 64 for v in (1, 3, 3, 1)] and float(k.sum()) == pytest.approx(1)
    up = Upsample()
    assert up.pad == (2, 1)
    out = up(torch.full((1, 2, 4, 4), 3.0))
    assert out.shape == (1, 2, 8, 8)
    # away from the zero padding of the border, a constant stays that constant
    torch.testing.assert_close(out[..., 2:-2, 2:-2], torch.full((1, 2, 4, 4), 3.0))


def test_upfirdn2d_zero_insertion_and_padding_by_hand():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    ident = torch.tensor([[1.0]])
    out = upfirdn2d(x, ident, up=2, pad=(0, 0))
    assert out[0, 0].tolist() == [[1, 0, 2, 0], [0, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0]]
    # the kernel is flipped (a true convolution): a tap at (1, 1) moves the image one pixel
    # down and right (a cross-correlation would give x back)
    shift = upfirdn2d(x, torch.tensor([[0.0, 0.0], [0.0, 1.0]]), pad=(1, 0))
    assert shift[0, 0].tolist() == [[0, 0], [0, 1]]


def test_modulated_conv_equals_modulating_the_input():
    """Fused form (one grouped conv of modulated weights) == scale the input by the style,
    convolve, scale the output by the demodulation: the StyleGAN2 paper's identity."""
    torch.manual_seed(0)
    conv = ModulatedConv2d(4, 5, 3, style_dim=6)
    for p in conv.parameters():
        torch.nn.init.normal_(p)
    x, w = torch.randn(2, 4, 6, 6), torch.randn(2, 6)
    s = conv.modulation(w)  # [2, 4]
    weight = conv.scale * conv.weight[0]
    demod = torch.rsqrt((weight[None] * s[:, None, :, None, None]).pow(2).sum([2, 3, 4]) + 1e-8)
    expected = F.conv2d(x * s[:, :, None, None], weight, padding=1) * demod[:, :, None, None]
    torch.testing.assert_close(conv(x, w), expected, atol=1e-5, rtol=1e-5)


# -- loading ---------------------------------------------------------------------------------


def test_converted_file_loads_with_shapes_range_determinism_and_batch_independence(converted):
    path, avg = converted
    gan = load_gan("stylegan2", path, "cpu")
    assert (gan.name, gan.latent_dim, gan.resolution) == ("stylegan2", 32, 32)
    assert gan.differentiable and not gan.has_encoder
    xi = torch.randn(5, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        w = gan.map_prior(xi)
        img = gan.generate(w)
        again = gan.generate(w)
        rows = torch.cat([gan.generate(w[i : i + 1]) for i in range(5)])
    assert img.shape == (5, 3, 32, 32) and img.dtype == torch.float32
    assert img.min() >= -1 and img.max() <= 1
    assert (img.abs() == 1).any() and (img.abs() < 1).float().mean() > 0.3  # clamped, not flat
    assert torch.equal(img, again)
    torch.testing.assert_close(rows, img, atol=1e-5, rtol=0)
    assert gan.w_avg_source == "latent_avg of the checkpoint"
    torch.testing.assert_close(gan.w_avg(), avg)


def test_generate_uses_the_stored_noise_buffers(converted, tiny_state, tmp_path):
    path, avg = converted
    gan = build(path)
    w = gan.map_prior(torch.randn(2, 32))
    state = dict(tiny_state)
    state["noises.noise_3"] = state["noises.noise_3"] + 1.0
    other = build(save(tmp_path / "noise.pt", g_ema=state, latent_avg=avg))
    with torch.no_grad():
        assert not torch.allclose(gan.generate(w), other.generate(w))


def test_training_checkpoint_with_args_namespace_loads_like_the_converted_file(
    converted, tiny_state, tmp_path
):
    path, _ = converted
    train = training_checkpoint(tmp_path / "000100.pt", tiny_state)
    with pytest.raises(Exception, match=r"Weights only load failed|Unsupported global"):
        torch.load(train, weights_only=True)  # the Namespace must be allow-listed
    a, b = build(path), build(train)
    w = a.map_prior(torch.randn(3, 32))
    with torch.no_grad():
        assert torch.equal(a.generate(w), b.generate(w))
    bad = training_checkpoint(tmp_path / "bad.pt", tiny_state, size=64)
    with pytest.raises(UsageError, match=r"args\.size is 64, g_ema is 32 px"):
        build(bad)


def one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize(
    "edit, needle",
    [
        (lambda s: s.pop("noises.noise_3"), "1 missing: noises.noise_3"),
        (lambda s: s.__setitem__("convs.9.extra", torch.zeros(1)), "1 unexpected: convs.9.extra"),
        (
            lambda s: s.__setitem__("conv1.activate.bias", torch.zeros(15)),
            "1 wrong shape: conv1.activate.bias [15] (expected [16])",
        ),
        (
            lambda s: s.__setitem__("noises.noise_6", torch.zeros(1, 1, 64, 64)),
            "noises.noise_6 [1, 1, 64, 64] (expected [1, 1, 32, 32])",
        ),
        (lambda s: s.pop("style.1.weight"), "missing key style.1.weight"),
    ],
)
def test_strict_load_names_the_key(tmp_path, tiny_state, edit, needle):
    edit(tiny_state)
    with pytest.raises(UsageError) as err:
        build(save(tmp_path / "g.pt", g_ema=tiny_state))
    assert needle in one_line(err)


def test_bad_files_are_one_line_errors(tmp_path, converted):
    path, _ = converted
    data = Path(path).read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    nan_state = random_state_dict(TINY)
    nan_state["convs.2.conv.weight"][0, 0, 0, 0, 0] = float("nan")
    cases = {
        str(tmp_path / "cut.pt"): "cannot read StyleGAN2 checkpoint",
        str(tmp_path / "none.pt"): "StyleGAN2 checkpoint not found",
        # a BigGAN-style plain state dict (another family)
        save(tmp_path / "plain.pt", **{"linear.weight": torch.zeros(2, 2)}): "no 'g_ema'",
        save(tmp_path / "extra.pt", g_ema={}, extra=1): "unexpected top-level key(s) extra",
        save(tmp_path / "avg.pt", g_ema=random_state_dict(TINY), latent_avg=torch.zeros(7)): (
            "latent_avg is [7], expected [32]"
        ),
        save(tmp_path / "nan.pt", g_ema=nan_state): "g_ema holds NaN or inf in convs.2.conv.weight",
    }
    for bad, needle in cases.items():
        with pytest.raises(UsageError) as err:
            build(bad)
        assert needle in one_line(err), bad
    with pytest.raises(UsageError, match="needs --weights"):
        build(None)


# -- W space and truncation ------------------------------------------------------------------


def test_map_prior_is_mapping_then_truncation_toward_latent_avg(converted):
    path, avg = converted
    gan = build(path)
    xi = torch.randn(4, 32)
    with torch.no_grad():
        w = gan.model.mapping(xi)
        torch.testing.assert_close(gan.map_prior(xi), w, atol=0, rtol=0)
        torch.testing.assert_close(gan.map_prior(xi, 0.5), avg + 0.5 * (w - avg))
    # PixelNorm first: the mapping does not see the scale of xi
    torch.testing.assert_close(gan.map_prior(3 * xi), gan.map_prior(xi), atol=1e-5, rtol=1e-5)
    for bad in (0.0, -0.5, 1.5, float("nan")):
        with pytest.raises(UsageError, match=r"--truncation must be in \(0, 1\]"):
            gan.map_prior(xi, bad)


def test_w_avg_without_latent_avg_is_estimated_from_recorded_seeded_draws(tiny_state, tmp_path):
    gan = build(save(tmp_path / "g.pt", g_ema=tiny_state))
    assert gan.w_avg_source == (
        f"mean mapping of {W_AVG_SAMPLES} z ~ N(0, I), torch seed {W_AVG_SEED}, on CPU"
    )
    z = torch.randn(W_AVG_SAMPLES, 32, generator=torch.Generator().manual_seed(W_AVG_SEED))
    with torch.no_grad():
        expected = gan.model.mapping(z).mean(0)
    torch.testing.assert_close(gan.w_avg(), expected)
    assert torch.equal(build(save(tmp_path / "h.pt", g_ema=tiny_state)).w_avg(), gan.w_avg())


def test_prior_helpers_leave_other_backends_alone():
    gan = load_gan("random", "resolution=8,width=2,latent_dim=4", "cpu")
    xi = torch.randn(3, 4)
    assert map_prior(gan, xi) is xi
    with pytest.raises(UsageError, match="needs a GAN with a prior mapping"):
        map_prior(gan, xi, 0.7)
    with pytest.raises(UsageError, match=r"must be in \(0, 1\]"):
        check_prior(gan, 2.0)
