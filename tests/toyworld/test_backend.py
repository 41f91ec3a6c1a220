"""The shipped toy-world GAN: strict loading, recorded sample statistics, the protocol."""

import json

import numpy as np
import pytest
import torch

import generator.gans.toyworld as tw
from generator.gans import DEFAULT_GAN, load_gan
from generator.gans.base import GanBackend
from segcore.cli import UsageError


@pytest.fixture(scope="module")
def gan():
    return load_gan("toyworld")


@pytest.fixture(scope="module")
def meta():
    return json.loads(tw.DEFAULT_WEIGHTS.with_suffix(".json").read_text())


def test_toyworld_is_the_default_gan():
    assert DEFAULT_GAN == "toyworld"


def test_shipped_weights_reproduce_the_recorded_sample_statistics(gan, meta):
    # The statistics were recorded by the training run on this seed batch; a wrong file, a
    # wrong architecture or lost BN statistics change them far beyond the tolerance.
    rec = meta["sample_statistics"]
    z = torch.randn(
        rec["n"], gan.latent_dim, generator=torch.Generator().manual_seed(rec["z_seed"])
    )
    with torch.no_grad():
        x = gan.generate(z)
    assert float(x.mean()) == pytest.approx(rec["mean"], abs=1e-4)
    assert float(x.std()) == pytest.approx(rec["std"], abs=1e-4)
    np.testing.assert_allclose(x.mean(dim=(0, 2, 3)).numpy(), rec["channel_mean"], atol=1e-4)
    np.testing.assert_allclose(x[0, :, 0, 0].numpy(), rec["first_pixel"], atol=1e-3)


def test_backend_follows_the_protocol(gan):
    assert isinstance(gan, GanBackend)
    assert gan.name == "toyworld" and gan.differentiable and gan.has_encoder
    assert gan.resolution == 32 and gan.latent_dim == 64
    z = torch.randn(5, gan.latent_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        x = gan.generate(z)
        again = gan.generate(z[:2])  # batch-independent: eval-mode BN
    assert x.shape == (5, 3, 32, 32) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    torch.testing.assert_close(again, x[:2], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="shape"):
        gan.generate(torch.zeros(2, gan.latent_dim + 1))


def test_generate_is_differentiable_in_z(gan):
    z = torch.randn(2, gan.latent_dim, requires_grad=True)
    gan.generate(z).square().mean().backward()
    assert z.grad is not None and float(z.grad.abs().sum()) > 0


def test_encoder_inverts_the_generator(gan):
    from toyworld.world import render_batch

    z = torch.randn(64, gan.latent_dim, generator=torch.Generator().manual_seed(3))
    images, _ = render_batch(4242, 0, 64)  # world scenes the GAN never saw
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        z_hat = gan.encode(gan.generate(z))
        recon = gan.generate(gan.encode(x))
        unrelated = gan.generate(z)
        # any input size is accepted and resized to the GAN's resolution
        big = gan.encode(torch.nn.functional.interpolate(x[:2], size=(64, 48)))
    assert z_hat.shape == (64, gan.latent_dim) and big.shape == (2, gan.latent_dim)
    # latent space: better than the constant guess 0 (squared error 1 per coordinate)
    assert float((z_hat - z).square().mean()) < 0.95
    # image space (what E-BigBiGAN latents need): G(E(x)) is much closer to x than a sample
    assert float((recon - x).abs().mean()) < 0.75 * float((unrelated - x).abs().mean())


def test_shipped_direction_loads(gan):
    d = gan.default_direction()
    assert d.vector.shape == (gan.latent_dim,)
    assert float(np.linalg.norm(d.vector)) == pytest.approx(1.0, abs=1e-4)
    assert d.info.get("gan") == "toyworld"
    # picked by score --pick: it carries its fitted operators, so `--mask auto` uses them
    assert d.operators is not None and d.operators.shape == (2, 3, 4)
    assert d.bright_operator in (0, 1)


def _copy_weights(tmp_path, edit):
    state = torch.load(tw.DEFAULT_WEIGHTS, map_location="cpu", weights_only=True)
    edit(state)
    path = tmp_path / "w.pt"
    torch.save(state, path)
    (tmp_path / "w.json").write_text(tw.DEFAULT_WEIGHTS.with_suffix(".json").read_text())
    return path


def test_loading_is_strict(tmp_path):
    def drop(state):
        state["generator"].pop(next(iter(state["generator"])))

    def add(state):
        state["encoder"]["extra.weight"] = torch.zeros(1)

    for edit, word in ((drop, "Missing"), (add, "Unexpected")):
        with pytest.raises(UsageError, match=word):
            load_gan("toyworld", weights=str(_copy_weights(tmp_path, edit)))


def test_bad_weight_paths_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="do not exist"):
        load_gan("toyworld", weights=str(tmp_path / "none.pt"))
    torch.save({"generator": {}, "encoder": {}}, tmp_path / "lonely.pt")
    with pytest.raises(UsageError, match="sidecar"):
        load_gan("toyworld", weights=str(tmp_path / "lonely.pt"))
    torch.save({"g": {}}, tmp_path / "odd.pt")
    (tmp_path / "odd.json").write_text(tw.DEFAULT_WEIGHTS.with_suffix(".json").read_text())
    with pytest.raises(UsageError, match="expected keys"):
        load_gan("toyworld", weights=str(tmp_path / "odd.pt"))


def test_weights_of_an_older_format_are_refused_by_name(tmp_path):
    path = _copy_weights(tmp_path, lambda state: None)
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["format"] = "gan-objseg/toyworld-weights/v1"  # the 1-layer generator's weights
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(UsageError, match=r"toyworld-weights/v1.*retrain"):
        load_gan("toyworld", weights=str(path))
