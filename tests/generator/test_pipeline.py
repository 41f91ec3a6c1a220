"""The overlapped shard pipeline (render thread, stage thread, encoder pool, two shards at once)
gives the pinned bytes whatever the pool size and the GAN's speed; a failed publish or stage
fails the shard; the benchmark stand-in GAN behaves as documented."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from generator import shard_maker
from generator.gans import load_gan
from generator.gans.standin import build as build_standin
from generator.manifest import record_url
from generator.pipeline import _to_uint8_bgr_torch, to_uint8_bgr
from generator.shard_maker import ShardMaker
from segcore import storage
from segcore.cli import UsageError
from tests.generator.conftest import small_config
from tests.generator.test_shard_bytes import PINNED

STANDIN = "generator.gans.standin:build"


class Paced:
    """A GAN wrapper whose calls take a pseudo-random 0..`max_ms` extra, or none."""

    def __init__(self, gan, max_ms: float, seed: int = 0):
        self.gan, self.max_ms = gan, max_ms
        self.rng = np.random.default_rng(seed)
        self.lock = threading.Lock()
        self.latent_dim, self.device = gan.latent_dim, gan.device

    def generate(self, z):
        with self.lock:
            wait = self.rng.uniform(0, self.max_ms) / 1000
        time.sleep(wait)
        return self.gan.generate(z)


@pytest.mark.parametrize("cpus", [1, 3])
@pytest.mark.parametrize("max_ms", [0, 30])
@pytest.mark.parametrize("pinned", ["random-default", "random-4conn-mean"])
def test_overlapped_path_gives_the_pinned_bytes(pinned, cpus, max_ms, tmp_path):
    overrides, *expected = PINNED[pinned]
    config, _ = small_config(shards=2, **overrides)
    gan = Paced(load_gan(config.gan, config.weights), max_ms)
    maker = ShardMaker(config, gan=gan, cpus_per_worker=cpus)
    # two shards at once on one maker, as the threaded Ray actor runs them
    with ThreadPoolExecutor(2) as calls:
        records = list(calls.map(lambda i: maker.make_shard(i, str(tmp_path)), (0, 1)))
    assert [r["sha256"] for r in records] == expected
    assert maker.cpus_per_worker == cpus


def test_samples_equal_with_and_without_a_slow_gan():
    config, _ = small_config(samples_per_shard=20, batch_size=8)
    fast = ShardMaker(config).samples(3)
    slow = ShardMaker(config, gan=Paced(load_gan(config.gan, config.weights), 20)).samples(3)
    assert np.array_equal(fast[0], slow[0]) and np.array_equal(fast[1], slow[1])
    assert fast[2:] == slow[2:]
    assert fast[3] == fast[2][-1]["draw"] + 1  # attempts end at the last kept draw


def test_failed_publish_fails_the_shard_and_writes_no_record(tmp_path, monkeypatch):
    config, _ = small_config()
    maker = ShardMaker(config)

    def broken(samples, out, index, deadline_s):
        raise OSError("upload refused")

    monkeypatch.setattr(shard_maker, "publish_shard", broken)
    with pytest.raises(OSError, match="upload refused"):
        maker.make_shard(0, str(tmp_path))
    assert not storage.exists(record_url(str(tmp_path), 0))


def test_a_stage_error_reaches_the_caller():
    config, _ = small_config()

    class Broken:
        latent_dim, device = 120, torch.device("cpu")

        def generate(self, z):
            return torch.zeros(len(z), 3, 8)  # not [N, 3, H, W]

    with pytest.raises((RuntimeError, IndexError, ValueError)):
        ShardMaker(config, gan=Broken()).samples(0)


def test_to_uint8_bgr_is_the_rgb_convention_reversed():
    x = torch.from_numpy(np.random.default_rng(0).uniform(-1.2, 1.2, (3, 3, 5, 7)))
    x = x.float()
    expected = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)
    got = to_uint8_bgr(x)
    assert got.is_contiguous() and torch.equal(got.flip(-1), expected)
    on_gpu = _to_uint8_bgr_torch(x)  # the device path, run here on the CPU
    assert on_gpu.is_contiguous() and torch.equal(on_gpu, got)


def test_standin_images_masks_and_options():
    gan = build_standin("wait_ms=30,resolution=32,latent_dim=4")
    assert (gan.resolution, gan.latent_dim) == (32, 4)
    direction = gan.default_direction().vector
    assert direction.tolist() == [1.0, 0.0, 0.0, 0.0]
    z = torch.zeros(2, 4)
    z[1, 0] = 1.0
    t0 = time.perf_counter()
    out = gan.generate(torch.cat([z, z + 5 * torch.from_numpy(direction)]))
    assert time.perf_counter() - t0 >= 0.03
    assert out.shape == (4, 3, 32, 32) and out.min() >= -1 and out.max() <= 1
    lighter = out[2:].mean(1) > out[:2].mean(1)
    # the object, and only it, gets lighter; the background does not depend on z
    assert torch.equal(lighter[0], lighter[1]) and 0.1 < lighter[0].float().mean() < 0.3
    assert torch.equal(out[0, :, 0], out[1, :, 0])
    for bad in ("wait_ms=-1", "speed=3", "resolution=x", "wait_ms"):
        with pytest.raises(UsageError, match="standin GAN"):
            build_standin(bad)


def test_standin_through_a_shard_keeps_every_draw(tmp_path):
    config, _ = small_config(gan=STANDIN, weights="resolution=64", samples_per_shard=8)
    record = ShardMaker(config).make_shard(0, str(tmp_path))
    assert record["count"] == record["attempts"] == 8


def test_default_cpus_per_worker():
    from generator.ray_runner import default_cpus_per_worker

    nodes = [{"CPU": 32, "GPU": 2}, {"CPU": 20, "GPU": 4}, {"CPU": 64}]
    assert default_cpus_per_worker(nodes, use_gpu=True) == 5  # the fewest: 20 // 4
    assert default_cpus_per_worker([{"CPU": 2, "GPU": 8}], use_gpu=True) == 1  # at least 1
    assert default_cpus_per_worker(nodes, use_gpu=False) == 1  # CPU actors: one CPU each


def test_packed_transfer_splits_back_into_images_and_masks():
    """The one device-to-host copy of a GPU batch; the packing itself runs anywhere."""
    from generator.pipeline import packed_to_host

    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, (3, 4, 5, 3), dtype=np.uint8))
    masks = torch.from_numpy(rng.random((6, 4, 5)) < 0.5)[::2]  # not contiguous
    got_images, got_masks = packed_to_host(images, masks)
    assert torch.equal(got_images, images) and torch.equal(got_masks, masks)
    assert got_masks.dtype == torch.bool and got_images.shape == (3, 4, 5, 3)
