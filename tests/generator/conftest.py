"""Generator test helpers: a tiny, fast run config and ONE shared in-process Ray session."""

from __future__ import annotations

import os

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
