"""The PyTorch BigGAN-128 port: size, spectral norm, strict loading, output contract (no TF)."""

from __future__ import annotations

import pytest
import torch

from generator.gans.bigbigan_torch import (
    BigBiGANTorch,
    BigGANConfig,
    BigGANGenerator,
    build,
    load_strict,
    random_init,
)
from generator.gans.biggan_layers import SNConv2d, fold_spectral_norm, sn_sigma
from segcore.cli import UsageError
from tests.bigbigan.conftest import run_cli


def test_full_config_has_paper_parameter_count():
    model = BigGANGenerator(BigGANConfig())
    n = sum(p.numel() for p in model.parameters())
    # BigGAN-128 (G_ch 96, 1000-row embedding) has about 70.4 M parameters.
    assert round(n / 1e5) == 704, n
    assert model.config.z_chunk == 20 and model.config.shared_dim + 20 == 148
    assert model.blocks[0][0].bn1.gain.weight.shape == (1536, 148)
    assert [len(b) for b in model.blocks] == [1, 1, 1, 2, 1]  # attention after the 64 px block
    assert model.blocks[3][1].theta.weight.shape == (24, 192, 1, 1)


def test_sn_sigma_is_top_singular_value_when_u_is_converged():
    torch.manual_seed(0)
    w = torch.randn(6, 4, 3, 3)
    mat = w.reshape(6, -1)
    u_true = torch.linalg.svd(mat.double())[0][:, 0].float().reshape(1, 6)
    top = torch.linalg.svdvals(mat)[0]
    assert torch.allclose(sn_sigma(w, u_true, 1e-4), top, rtol=1e-5)
    # From a random u one power step underestimates sigma (never overshoots).
    assert sn_sigma(w, torch.randn(1, 6), 1e-4) <= top * (1 + 1e-6)


def test_unfolded_layer_refuses_to_run_and_folds_once():
    layer = SNConv2d(3, 5, 3, 1, eps=1e-4)
    with pytest.raises(RuntimeError, match="not folded"):
        layer(torch.zeros(1, 3, 4, 4))
    w = layer.weight.detach().clone()
    sigma = sn_sigma(w, layer.u0, 1e-4)
    assert fold_spectral_norm(layer) == 1
    assert torch.allclose(layer.weight, w / sigma)
    with pytest.raises(RuntimeError, match="already folded"):
        layer.fold()


@pytest.mark.slow
def test_full_width_random_weights_output_contract():
    g = build("random", "cpu")
    assert (g.name, g.latent_dim, g.resolution) == ("bigbigan", 120, 128)
    assert g.differentiable and not g.has_encoder and g.random_weights
    z = torch.randn(2, 120, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        x = g.generate(z)
    assert x.shape == (2, 3, 128, 128) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1 and x.std() > 0.01


@pytest.fixture(scope="module")
def random_backend():
    """A reduced-width (ch=8) port with random weights: same code path, CPU-cheap."""
    model = BigGANGenerator(BigGANConfig(ch=8))
    random_init(model, seed=0)
    fold_spectral_norm(model)
    return BigBiGANTorch(model, "cpu", random_weights=True)


def test_sample_does_not_depend_on_batch(random_backend):
    z = torch.randn(3, 120, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        x = random_backend.generate(z)
        x1 = random_backend.generate(z[1:2])
    assert x.shape == (3, 3, 128, 128) and x.min() >= -1 and x.max() <= 1
    # eval-mode BN: z and z + r h can share a batch
    assert torch.allclose(x[1:2], x1, atol=1e-5)
    assert not torch.allclose(x[0], x[1], atol=1e-3)


def test_generate_is_differentiable_wrt_z(random_backend):
    z = torch.randn(1, 120, requires_grad=True)
    random_backend.generate(z).mean().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_bf16_autocast_is_close_to_fp32(random_backend):
    z = torch.randn(2, 120, generator=torch.Generator().manual_seed(2))
    bf = BigBiGANTorch(random_backend.model, "cpu", precision="bf16")
    with torch.no_grad():
        a, b = random_backend.generate(z), bf.generate(z)
    assert b.dtype == torch.float32
    assert (a - b).abs().mean() < 0.05


def test_weights_none_or_absent_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="needs --weights"):
        build(None)
    with pytest.raises(UsageError, match="checkpoint not found"):
        build(str(tmp_path / "absent.pth"))


def _small_state():
    model = BigGANGenerator(BigGANConfig(ch=4))
    return model, dict(model.state_dict())


def test_strict_load_lists_missing_unexpected_and_wrong_shapes():
    _, state = _small_state()
    del state["blocks.2.0.conv1.weight"]
    state["blocks.9.0.extra"] = torch.zeros(1)
    state["output_layer.0.gain"] = torch.zeros(7)
    with pytest.raises(UsageError) as err:
        load_strict(BigGANGenerator(BigGANConfig(ch=4)), state, "x.pth")
    msg = str(err.value)
    assert "\n" not in msg
    assert "1 missing: blocks.2.0.conv1.weight" in msg
    assert "1 unexpected: blocks.9.0.extra" in msg
    assert "output_layer.0.gain [7] (expected [4])" in msg


def test_strict_load_accepts_checkpoint_without_logging_only_sv0():
    model, state = _small_state()
    state = {k: v for k, v in state.items() if not k.endswith(".sv0")}
    target = BigGANGenerator(BigGANConfig(ch=4))
    load_strict(target, state, "x.pth")
    assert torch.equal(target.blocks[0][0].conv1.weight, model.blocks[0][0].conv1.weight)


@pytest.mark.slow
def test_bad_checkpoints_exit_2_with_one_line(tmp_path):
    _, state = _small_state()
    del state["linear.bias"]
    torch.save(state, tmp_path / "missing.pth")
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    code = (
        "import sys; from segcore.cli import run_cli; from generator.gans import load_gan\n"
        "run_cli(lambda argv: load_gan('bigbigan', sys.argv[1]) and 0, 'python -m generator')"
    )
    for name, expect in (
        ("missing.pth", "1 missing: linear.bias"),
        ("garbage.pth", "cannot read BigBiGAN checkpoint"),
    ):
        proc = run_cli("-c", code, str(tmp_path / name))
        assert proc.returncode == 2, proc.stderr
        lines = [ln for ln in proc.stderr.splitlines() if "error:" in ln]
        assert len(lines) == 1 and expect in lines[0], proc.stderr
        assert "Traceback" not in proc.stderr


def test_output_bn_eps_follows_the_recorded_source(tmp_path):
    """A plain state dict runs ajbrock's output BN (eps 1e-5), a file written by the converter
    TF-Hub's (1e-4); an unknown or missing record is a one-line error."""
    _, state = _small_state()
    state["output_layer.0.stored_var"] = torch.full((4,), 2e-5)  # small: the eps shows
    torch.save(state, tmp_path / "plain.pth")
    torch.save({"state_dict": state, "source": "tf-hub"}, tmp_path / "hub.pth")
    plain, hub = build(str(tmp_path / "plain.pth")), build(str(tmp_path / "hub.pth"))
    assert plain.model.config.out_bn_eps == 1e-5 and hub.model.config.out_bn_eps == 1e-4
    assert plain.model.output_layer[0].eps == 1e-5 and hub.model.output_layer[0].eps == 1e-4
    z = torch.randn(2, 120, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert (plain.generate(z) - hub.generate(z)).abs().max() > 1e-2
    torch.save({"state_dict": state, "source": "somewhere"}, tmp_path / "odd.pth")
    with pytest.raises(UsageError, match="records source 'somewhere'"):
        build(str(tmp_path / "odd.pth"))
    torch.save({"state_dict": state}, tmp_path / "bare.pth")
    with pytest.raises(UsageError, match="no 'source' string"):
        build(str(tmp_path / "bare.pth"))
