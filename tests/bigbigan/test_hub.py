"""The TF-Hub backend on locally built TF1 Hub-format modules (the real one is not downloadable)."""

from __future__ import annotations

import hashlib
import time

import numpy as np
import pytest
import torch

from generator.gans import bigbigan_hub, load_gan
from segcore.cli import UsageError
from tests.bigbigan.conftest import run_cli

pytestmark = pytest.mark.slow

URL = "https://tfhub.dev/deepmind/bigbigan-resnet50/1"
LOAD = (
    "import sys; from segcore.cli import run_cli; from generator.gans import load_gan\n"
    "run_cli(lambda argv: load_gan('bigbigan-hub', sys.argv[1]) and 0, 'python -m generator')"
)


def test_signatures_shapes_and_ranges(hub_backend):
    g = hub_backend
    assert (g.name, g.latent_dim, g.resolution, g.encoder_resolution) == (
        "bigbigan-hub",
        120,
        128,
        256,
    )
    assert g.has_encoder and not g.differentiable
    assert {"z_sample", "z_mean", "z_stdev", "default"} <= set(g.encode_outputs)
    z = torch.randn(3, 120, generator=torch.Generator().manual_seed(0))
    x = g.generate(z)
    assert x.shape == (3, 3, 128, 128) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1 and x.std() > 0.05
    img = torch.rand(2, 3, 256, 256, generator=torch.Generator().manual_seed(1)) * 2 - 1
    m1, m2 = g.encode(img, output="z_mean"), g.encode(img, output="z_mean")
    s1, s2 = g.encode(img), g.encode(img)  # z_sample: stochastic, like BigBiGAN's
    assert m1.shape == (2, 120) and torch.equal(m1, m2)
    assert s1.shape == (2, 120) and not torch.equal(s1, s2)
    with pytest.raises(ValueError, match=r"\[N, 3, 256, 256\]"):
        g.encode(torch.zeros(1, 3, 128, 128))


def test_nchw_boundary_matches_the_signature(hub_backend):
    """Our NCHW output is the module's NHWC `default` output, transposed, unchanged."""
    import tensorflow as tf

    z = np.random.default_rng(3).normal(size=(2, 120)).astype(np.float32)
    raw = hub_backend._generate(z=tf.constant(z))["default"].numpy()
    ours = hub_backend.generate(torch.from_numpy(z)).numpy()
    np.testing.assert_array_equal(ours, raw.transpose(0, 3, 1, 2))


def test_url_without_cached_copy_fails_fast_naming_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(bigbigan_hub.DOWNLOAD_ENV, raising=False)
    start = time.monotonic()
    with pytest.raises(UsageError) as err:
        bigbigan_hub.build(None)
    assert time.monotonic() - start < 2  # no network attempt
    expected_dir = tmp_path / "cache" / hashlib.sha1(URL.encode()).hexdigest()
    assert str(expected_dir) in str(err.value) and "\n" not in str(err.value)


def test_url_resolves_through_tfhub_cache_dir(hub_module, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / hashlib.sha1(URL.encode()).hexdigest()).symlink_to(hub_module[0])
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(cache))
    g = load_gan("bigbigan-hub", None)
    assert g.handle == URL and g.latent_dim == 120


@pytest.fixture(scope="module")
def incomplete_modules(tmp_path_factory):
    from tests.bigbigan.hub_fixture import build_module

    root = tmp_path_factory.mktemp("bad_hub")
    build_module(root / "no_encode", ch=4, signatures=("generate",))
    build_module(root / "no_z_sample", ch=4, encode_outputs=("z_mean", "default"))
    (root / "empty").mkdir()
    return root


def test_missing_signatures_are_named(incomplete_modules):
    with pytest.raises(UsageError, match=r"lacks: signature 'encode'$"):
        bigbigan_hub.build(str(incomplete_modules / "no_encode"))
    with pytest.raises(UsageError, match=r"lacks: encode output 'z_sample'$"):
        bigbigan_hub.build(str(incomplete_modules / "no_z_sample"))


@pytest.mark.integration
def test_bad_handles_exit_2_with_one_line(incomplete_modules, tmp_path):
    env = {"TFHUB_CACHE_DIR": str(tmp_path / "empty_cache"), bigbigan_hub.DOWNLOAD_ENV: "0"}
    cases = [
        (str(incomplete_modules / "no_encode"), "lacks: signature 'encode'"),
        (str(incomplete_modules / "empty"), "is not a TF-Hub module"),
        (str(tmp_path / "nowhere"), "module directory not found"),
        (URL, "is not available offline"),
    ]
    for handle, expect in cases:
        proc = run_cli("-c", LOAD, handle, env=env)
        assert proc.returncode == 2, proc.stderr[-1500:]
        ours = [ln for ln in proc.stderr.splitlines() if ln.startswith("python -m generator:")]
        assert len(ours) == 1 and expect in ours[0], proc.stderr[-1500:]
        assert "Traceback" not in proc.stderr


def test_tensorflow_is_imported_only_by_the_hub_backend():
    code = (
        "import sys\n"
        "import generator, generator.gans, generator.gans.bigbigan_torch, generator.convert\n"
        "import generator.embed, generator.gans.bigbigan_hub\n"
        "from generator.gans import load_gan\n"
        "load_gan('bigbigan', 'random')\n"
        "print('tensorflow' in sys.modules)\n"
    )
    proc = run_cli("-c", code)
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert proc.stdout.strip().splitlines()[-1] == "False"
