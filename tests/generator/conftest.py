"""Generator test helpers: a tiny, fast run config, ONE shared in-process Ray session, a small
random conditional BigGAN checkpoint and the generator CLI's one-line refusals."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

# the random GAN at 64 px, width 16: about a third of the samples pass the default filters
SMALL = dict(samples_per_shard=4, batch_size=16)


def small_config(shards: int = 4, **overrides):
    from generator.gans import load_gan
    from generator.run import resolve_config

    kwargs = dict(SMALL, **overrides)
    gan_name = kwargs.pop("gan", "random")
    weights = kwargs.pop("weights", None)
    load_gan(gan_name, weights)  # fail here, not in a worker, on a bad test option
    return resolve_config(
        shards=shards,
        gan_name=gan_name,
        weights=weights,
        direction_file=kwargs.pop("direction_file", None),
        shift=kwargs.pop("shift", None),
        latents=kwargs.pop("latents", "prior"),
        **kwargs,
    )


@pytest.fixture(scope="session")
def ray_session():
    """Ray on loopback with 2 CPUs and 2 LOGICAL GPUs (so num_gpus=1 actors can be pinned)."""
    import ray

    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def biggan_ckpt(tmp_path_factory) -> Path:
    """A random BigGAN-128 release checkpoint (G_ema.pth layout) at width 4."""
    import torch

    from tests.generator.test_biggan import small_state

    path = tmp_path_factory.mktemp("biggan") / "G_ema.pth"
    torch.save(small_state(ch=4, seed=5), path)
    return path


def refused_in_one_line(args: list[str], tmp_path: Path) -> list[str]:
    """`python -m generator ARGS --direction D --shards 1 --out tmp_path/run` with a unit
    direction D of 120 dims: asserts exit 2, no traceback and nothing written; -> the error
    lines of stderr."""
    v = np.zeros(120, np.float32)
    v[0] = 1.0
    np.save(tmp_path / "h.npy", v)
    repo = Path(__file__).resolve().parents[2]
    cmd = [sys.executable, "-m", "generator", *args, "--direction", str(tmp_path / "h.npy"),
           "--shards", "1", "--out", str(tmp_path / "run")]  # fmt: skip
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "run").exists()
    return [ln for ln in proc.stderr.splitlines() if "error:" in ln]
