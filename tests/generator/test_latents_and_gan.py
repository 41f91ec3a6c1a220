"""Latent streams (prior and E-BigBiGAN) and the random test backend."""

import numpy as np
import pytest
import torch

from generator.gans import load_gan
from generator.latents import ShardLatents, load_embeddings
from segcore.cli import UsageError


def test_shard_stream_depends_only_on_seed_and_shard_not_on_batching():
    emb = np.arange(35, dtype=np.float32).reshape(7, 5)
    a = ShardLatents(3, 4, 5, emb, alpha=0.2)
    b = ShardLatents(3, 4, 5, emb, alpha=0.2)
    z1, i1 = a.draw(10)
    parts = [b.draw(3), b.draw(1), b.draw(6)]
    assert np.array_equal(z1, np.concatenate([p[0] for p in parts]))
    assert np.array_equal(i1, np.concatenate([p[1] for p in parts]))
    z_other, _ = ShardLatents(3, 5, 5, emb).draw(10)
    assert not np.array_equal(z1, z_other)
    z_seed, _ = ShardLatents(4, 4, 5, emb).draw(10)
    assert not np.array_equal(z1, z_seed)


def test_embeddings_latents_are_rows_plus_alpha_noise():
    emb = np.arange(35, dtype=np.float32).reshape(7, 5)
    z0, idx0 = ShardLatents(1, 2, 5, emb, alpha=0.0).draw(20)
    assert np.array_equal(z0, emb[idx0]) and idx0.min() >= 0 and idx0.max() < 7
    z, idx = ShardLatents(1, 2, 5, emb, alpha=0.2).draw(20)
    noise = ShardLatents(1, 2, 5, None).draw(20)[0]  # same noise stream, the prior
    assert np.array_equal(idx, idx0)
    assert np.allclose(z, emb[idx] + 0.2 * noise, atol=1e-6)
    _, src = ShardLatents(1, 2, 5, None).draw(3)
    assert src.tolist() == [-1, -1, -1]


def test_load_embeddings_validates(tmp_path):
    good = tmp_path / "e.npy"
    np.save(good, np.zeros((4, 120), np.float32))
    assert load_embeddings(str(good), 120).shape == (4, 120)
    with pytest.raises(UsageError, match=r"expected \[N >= 1, 64\]"):
        load_embeddings(str(good), 64)
    with pytest.raises(UsageError, match="cannot read"):
        load_embeddings(str(tmp_path / "missing.npy"), 120)
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"not numpy")
    with pytest.raises(UsageError, match="cannot read"):
        load_embeddings(str(bad), 120)


def test_random_gan_is_deterministic_bounded_and_differentiable():
    g1 = load_gan("random", "resolution=32,width=8")
    g2 = load_gan("random", "resolution=32,width=8")
    assert (g1.latent_dim, g1.resolution, g1.differentiable, g1.has_encoder) == (
        120,
        32,
        True,
        False,
    )
    z = torch.randn(3, 120, generator=torch.Generator().manual_seed(0), requires_grad=True)
    x = g1.generate(z)
    assert x.shape == (3, 3, 32, 32) and x.min() >= -1 and x.max() <= 1
    assert torch.equal(x, g2.generate(z))
    x.sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert not torch.equal(x, load_gan("random", "resolution=32,width=8,seed=1").generate(z))
    d = g1.default_direction()
    assert d.vector.shape == (120,) and abs(np.linalg.norm(d.vector) - 1) < 1e-6


@pytest.mark.parametrize("spec", ["resolution=48", "depth=3", "width", "width=x"])
def test_random_gan_bad_options(spec):
    with pytest.raises(UsageError, match="random GAN"):
        load_gan("random", spec)
