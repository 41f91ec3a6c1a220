"""StyleGAN2 in W space through the generator: `--truncation` in the config (hash-neutral at
1), prior latents mapped on the actor before G(z) and G(z + r h), embeddings left alone, and
the command line's one-line errors."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from generator.config import HASH_EXCLUDE, HASH_ONLY_WHEN_SET, GeneratorConfig
from generator.gans.stylegan2 import build
from generator.gans.stylegan2_model import StyleGAN2Config, random_state_dict
from generator.latents import ShardLatents
from generator.manifest import open_run
from generator.masks import make_masks
from generator.pipeline import to_uint8
from generator.run import resolve_config
from generator.shard_maker import ShardMaker
from segcore.cli import UsageError
from segcore.config import config_hash

TINY = StyleGAN2Config(resolution=32, style_dim=32, n_mlp=8, channels=(16, 16, 8, 8))


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sg2")
    torch.save(
        {"g_ema": random_state_dict(TINY, seed=1), "latent_avg": torch.zeros(32) + 0.05},
        folder / "g.pt",
    )
    direction = np.zeros(32, np.float32)
    direction[3] = 1.0
    np.save(folder / "dir.npy", direction)
    return folder


def config(weights, **kw):
    cfg, _ = resolve_config(
        shards=1,
        gan_name="stylegan2",
        weights=str(weights / "g.pt"),
        direction_file=str(weights / "dir.npy"),
        shift=2.0,
        latents="prior",
        samples_per_shard=3,
        batch_size=3,
        filters=(),
        **kw,
    )
    return cfg


def test_truncation_is_hash_neutral_at_1_and_checked():
    cfg = GeneratorConfig(shards=1, direction=(1.0, 0.0))
    assert cfg.truncation == 1.0 and HASH_ONLY_WHEN_SET["truncation"] == 1.0
    # at 1 the field is left out of the hash: the hash of a config.json written before it
    without = config_hash(cfg, exclude=HASH_EXCLUDE + tuple(HASH_ONLY_WHEN_SET))
    assert cfg.hash == without
    assert dataclasses.replace(cfg, truncation=0.7).hash != cfg.hash
    for bad in (0.0, 1.5, -1.0):
        with pytest.raises(ValueError, match=r"--truncation must be in \(0, 1\]"):
            GeneratorConfig(shards=1, direction=(1.0,), truncation=bad)
    with pytest.raises(ValueError, match="applies to prior latents"):
        GeneratorConfig(shards=1, direction=(1.0,), latents="emb.npy", truncation=0.5)


def test_resolve_config_refuses_truncation_for_a_gan_without_prior_mapping():
    with pytest.raises(UsageError, match="needs a GAN with a prior mapping"):
        resolve_config(
            shards=1, gan_name="random", weights=None, direction_file=None, shift=None,
            latents="prior", truncation=0.5,
        )  # fmt: skip


@pytest.mark.parametrize("psi", [1.0, 0.6])
def test_shard_samples_are_g_of_mapped_prior_draws(weights, psi):
    cfg = config(weights, truncation=psi)
    assert cfg.truncation == psi
    images, masks, _, attempts, _ = ShardMaker(cfg).samples(0)
    assert attempts == 3 and images.shape == (3, 32, 32, 3)
    # by hand: the shard's prior draws, mapped to W (and truncated), then G
    gan = build(str(weights / "g.pt"))
    xi, _ = ShardLatents(cfg.seed, 0, 32).draw(3)
    with torch.no_grad():
        w = gan.map_prior(torch.from_numpy(xi), psi)
        expected = to_uint8(gan.generate(w))
        shifted = gan.generate(w + 2.0 * torch.eye(32)[3])
    assert np.array_equal(images, expected)
    # the masks are those of G(w) vs G(w + r h): the shift is applied in W, after the mapping
    lighter = make_masks("lighter", gan.generate(w), shifted).numpy()
    assert masks.dtype == bool and 0 < masks.mean() < 1
    assert np.array_equal(masks, lighter)
    # a pure function of (config, index)
    again, *_ = ShardMaker(cfg).samples(0)
    assert np.array_equal(again, images)


def test_embeddings_latents_are_not_mapped(weights, tmp_path):
    emb = np.random.default_rng(0).standard_normal((4, 32)).astype(np.float32)
    np.save(tmp_path / "emb.npy", emb)
    cfg, embeddings = resolve_config(
        shards=1, gan_name="stylegan2", weights=str(weights / "g.pt"),
        direction_file=str(weights / "dir.npy"), shift=2.0, latents=str(tmp_path / "emb.npy"),
        samples_per_shard=2, batch_size=2, filters=(), alpha=0.2,
    )  # fmt: skip
    images, *_ = ShardMaker(cfg, embeddings).samples(0)
    z, _ = ShardLatents(cfg.seed, 0, 32, embeddings, cfg.alpha).draw(2)
    gan = build(str(weights / "g.pt"))
    with torch.no_grad():
        expected = to_uint8(gan.generate(torch.from_numpy(z)))  # the rows are already w's
    assert np.array_equal(images, expected)


@pytest.mark.slow
def test_cli_bad_input_is_one_line_exit_2(weights, tmp_path):
    data = (weights / "g.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 3])
    base = ["--shards", "1", "--out", str(tmp_path / "out")]
    cases = {
        "cannot read StyleGAN2 checkpoint": [
            "--gan", "stylegan2", "--weights", str(tmp_path / "cut.pt"),
        ],
        "--truncation must be in (0, 1]": [
            "--gan", "stylegan2", "--weights", str(weights / "g.pt"),
            "--direction", str(weights / "dir.npy"), "--truncation", "1.5",
        ],
        "needs a GAN with a prior mapping": ["--gan", "random", "--truncation", "0.5"],
    }  # fmt: skip
    for needle, args in cases.items():
        r = subprocess.run(
            [sys.executable, "-m", "generator", *base, *args],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert r.returncode == 2, r.stderr
        assert len(lines) == 1 and needle in lines[0], r.stderr
        assert not (tmp_path / "out").exists()


def test_run_config_records_truncation_and_refuses_another(weights, tmp_path):
    out = str(tmp_path / "run")
    cfg = config(weights, truncation=0.6)
    open_run(out, cfg)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["config"]["truncation"] == 0.6 and saved["config_hash"] == cfg.hash
    with pytest.raises(UsageError, match=r"truncation: 0\.6 -> 1\.0"):
        open_run(out, config(weights))
