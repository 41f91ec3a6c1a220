"""`--gan biggan`: the conditional BigGAN-128 of ajbrock's ImageNet release, on random weights in
that layout: layout, strict loading, family checks, output contract (CPU, small widths)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from generator.gans import load_gan
from generator.gans.base import generate_images, num_classes
from generator.gans.biggan import BigGANTorch, build, release_config
from generator.gans.biggan_layers import BigGANGenerator, fold_spectral_norm, random_init
from segcore.cli import UsageError

REPO = Path(__file__).resolve().parents[2]
# sha256 of the sorted "key [shape]" lines of ajbrock/BigGAN-PyTorch's `Generator(G_ch=96,
# dim_z=120, resolution=128, G_attn='64', n_classes=1000, G_shared=True, shared_dim=128,
# hier=True)` state dict (BigGAN.py at commit 9845943, computed there): 166 tensors.
RELEASE_LAYOUT_SHA256 = "af8e09df5ebd7f1d04eed2de8fc3137f710db9ac412a6d7f75d757a4170c68d6"


def small_state(ch: int = 4, seed: int = 0) -> dict:
    """A random checkpoint in the release's layout at width `ch` (u0/sv0 and stored BN
    statistics included, all random): what `torch.save(G.state_dict())` writes."""
    model = BigGANGenerator(release_config(ch=ch))
    random_init(model, seed)
    g = torch.Generator().manual_seed(seed + 1)
    state = {}
    for k, v in model.state_dict().items():
        if k.endswith("stored_var"):
            v = torch.rand(v.shape, generator=g) + 0.5
        elif k.endswith("stored_mean"):
            v = 0.1 * torch.randn(v.shape, generator=g)
        elif k.endswith(".u0"):
            v = torch.randn(v.shape, generator=g)
        state[k] = v.clone()
    return state


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("biggan") / "G_ema.pth"
    torch.save(small_state(), path)
    return path


@pytest.fixture(scope="module")
def backend(ckpt) -> BigGANTorch:
    return build(str(ckpt), "cpu")


def test_full_width_layout_is_ajbrocks_release_layout():
    model = BigGANGenerator(release_config())
    state = model.state_dict()
    lines = "\n".join(f"{k} {list(v.shape)}" for k, v in sorted(state.items()))
    assert len(state) == 166
    assert hashlib.sha256(lines.encode()).hexdigest() == RELEASE_LAYOUT_SHA256
    assert sum(p.numel() for p in model.parameters()) == 70_433_988
    c = model.config
    assert (c.bn_eps, c.sn_eps, c.out_bn_eps) == (1e-5, 1e-6, 1e-5)
    assert model.output_layer[0].eps == 1e-5 and model.blocks[0][0].bn1.eps == 1e-5
    assert model.linear.sn_eps == 1e-6 and model.output_layer[2].sn_eps == 1e-6


def test_loads_and_generates_by_class(backend):
    assert (backend.name, backend.latent_dim, backend.resolution) == ("biggan", 120, 128)
    assert backend.num_classes == 1000 and num_classes(backend) == 1000
    assert backend.differentiable and not backend.has_encoder and not backend.random_weights
    z = torch.randn(4, 120, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 7, 7, 999])
    with torch.no_grad():
        x = backend.generate(z, labels)
        again = backend.generate(z, labels)
        other = backend.generate(z, torch.tensor([1, 8, 8, 998]))
    assert x.shape == (4, 3, 128, 128) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1 and x.std() > 0.01
    assert torch.equal(x, again)  # deterministic
    assert (x - other).abs().amax(dim=(1, 2, 3)).min() > 1e-3  # the class changes every image


def test_sample_does_not_depend_on_its_batch(backend):
    z = torch.randn(3, 120, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([3, 500, 42])
    with torch.no_grad():
        x = backend.generate(z, labels)
        x1 = backend.generate(z[1:2], labels[1:2])
    assert torch.allclose(x[1:2], x1, atol=1e-5)


def test_forward_is_ajbrocks_formula_on_the_checkpoint(ckpt, backend):
    """The folded port against a by-hand eval forward of the first linear layer: SN from the
    stored u0 (one power step, eps 1e-6), not from the stored sv0."""
    state = torch.load(ckpt, weights_only=True)
    w, u = state["linear.weight"], state["linear.u0"]
    v = torch.nn.functional.normalize(u @ w, eps=1e-6)
    u2 = torch.nn.functional.normalize(v @ w.t(), eps=1e-6)
    sigma = (v @ w.t() @ u2.t()).squeeze()
    assert torch.allclose(backend.model.linear.weight, w / sigma)
    assert float(sigma) != float(state["linear.sv0"])  # sv0 (logging only) is not what is used


def test_generate_needs_labels_in_range(backend):
    z = torch.zeros(2, 120)
    with pytest.raises(ValueError, match="needs labels"):
        backend.generate(z)
    with pytest.raises(ValueError, match=r"in 0\.\.999"):
        backend.generate(z, torch.tensor([0, 1000]))
    with pytest.raises(ValueError, match="2 latents but 1 labels"):
        backend.generate(z, torch.tensor([0]))
    with pytest.raises(ValueError, match="unconditional"):
        generate_images(load_gan("random", "resolution=32,latent_dim=8"), torch.zeros(1, 8), z)


def test_generate_is_differentiable_wrt_z(backend):
    z = torch.randn(1, 120, requires_grad=True)
    backend.generate(z, torch.tensor([5])).mean().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def _error(weights) -> str:
    with pytest.raises(UsageError) as err:
        build(str(weights), "cpu")
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_strict_load_names_missing_unexpected_and_misshaped_keys(tmp_path):
    state = small_state()
    del state["blocks.1.0.conv2.weight"]
    state["blocks.1.0.extra"] = torch.zeros(1)
    state["output_layer.0.stored_var"] = torch.ones(5)
    torch.save(state, tmp_path / "bad.pth")
    msg = _error(tmp_path / "bad.pth")
    assert "1 missing: blocks.1.0.conv2.weight" in msg
    assert "1 unexpected: blocks.1.0.extra" in msg
    assert "output_layer.0.stored_var [5] (expected [4])" in msg


def test_truncated_and_absent_files_are_one_line_errors(tmp_path, ckpt):
    data = ckpt.read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    assert "cannot read BigGAN checkpoint" in _error(tmp_path / "cut.pth")
    assert "BigGAN checkpoint not found" in _error(tmp_path / "absent.pth")
    with pytest.raises(UsageError, match="needs --weights"):
        build(None)


def test_checkpoints_of_other_families_and_resolutions_are_refused(tmp_path):
    # BigBiGAN_x1.pth: the same keys and shapes, every row of `shared` equal (unconditional)
    state = small_state()
    state["shared.weight"] = state["shared.weight"][:1].repeat(1000, 1)
    torch.save(state, tmp_path / "bigbigan.pth")
    assert "unconditional (BigBiGAN) checkpoint" in _error(tmp_path / "bigbigan.pth")
    # a file written by `python -m generator.convert` (BigBiGAN from TF-Hub)
    torch.save({"state_dict": small_state(), "source": "tf-hub"}, tmp_path / "conv.pth")
    assert "use --gan bigbigan" in _error(tmp_path / "conv.pth")
    # BigGAN-256 has a sixth block
    state = small_state()
    state["blocks.5.0.conv1.weight"] = torch.zeros(4, 4, 3, 3)
    torch.save(state, tmp_path / "b256.pth")
    assert "6 blocks" in _error(tmp_path / "b256.pth")
    # not a BigGAN at all
    torch.save({"weight": torch.zeros(2)}, tmp_path / "other.pth")
    assert "missing key 'linear.weight'" in _error(tmp_path / "other.pth")


@pytest.mark.slow
def test_random_weights_are_labelled_and_reproducible():
    a, b = build("random"), build("random")
    assert a.random_weights and a.model.config.ch == 96
    assert torch.equal(a.model.shared.weight, b.model.shared.weight)


@pytest.mark.slow
def test_cli_bad_checkpoint_exits_2_with_one_line(tmp_path):
    state = small_state()
    del state["linear.bias"]
    torch.save(state, tmp_path / "missing.pth")
    proc = subprocess.run(
        [sys.executable, "-m", "generator", "--gan", "biggan", "--weights",
         str(tmp_path / "missing.pth"), "--shards", "1", "--out", str(tmp_path / "run")],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "1 missing: linear.bias" in lines[0], proc.stderr
    assert not (tmp_path / "run").exists()


def test_folded_model_matches_unfolded_reference_forward():
    """Folding once equals dividing by sigma at every forward (what ajbrock's eval mode does)."""
    state = small_state(seed=3)
    model = BigGANGenerator(release_config(ch=4))
    model.load_state_dict(state)
    ref_w = {}
    from generator.gans.biggan_layers import sn_sigma

    for name, m in model.named_modules():
        if hasattr(m, "u0"):
            ref_w[name] = m.weight.detach() / sn_sigma(m.weight, m.u0, 1e-6)
    fold_spectral_norm(model)
    for name, m in model.named_modules():
        if name in ref_w:
            assert torch.equal(m.weight, ref_w[name]), name


def test_bf16_autocast_is_close_to_fp32_and_options_come_from_the_environment(
    ckpt, backend, monkeypatch
):
    monkeypatch.setenv("BIGGAN_PRECISION", "bf16")
    bf = build(str(ckpt), "cpu")
    assert bf.precision == "bf16" and not bf.compiled
    z = torch.randn(2, 120, generator=torch.Generator().manual_seed(4))
    labels = torch.tensor([10, 20])
    with torch.no_grad():
        a, b = backend.generate(z, labels), bf.generate(z, labels)
    assert b.dtype == torch.float32
    assert 0 < (a - b).abs().mean() < 0.05
    monkeypatch.setenv("BIGGAN_PRECISION", "fp64")
    with pytest.raises(UsageError, match="precision must be one of"):
        build(str(ckpt), "cpu")
