"""`--mask labeler` in the generator: options that do not go together are one line, the config
hash is unchanged for every other run, and a run on the `random` GAN with a random-weights
U2NETP file makes valid shards whose masks are the labeler's on G(z), in a run folder that says
the masks are supervised."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from generator.config import HASH_EXCLUDE, HASH_ONLY_WHEN_SET, GeneratorConfig
from generator.labelers.u2net import random_model
from segcore import schema
from segcore.cli import UsageError
from segcore.config import config_hash
from tests.generator.conftest import small_config

# the random GAN at 32 px; U2NETP still labels each image at 320 x 320 (about 40 GFLOP)
TINY = dict(gan="random", weights="resolution=32,width=8", samples_per_shard=2, batch_size=2)


@pytest.fixture(scope="module")
def labeler_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("labeler") / "u2netp.pth"
    torch.save(random_model("u2netp", seed=0).state_dict(), path)
    return str(path)


def test_other_configs_keep_their_hash():
    config = GeneratorConfig(shards=1, direction=(1.0, 0.0))
    fields = ("labeler", "labeler_weights", "labeler_sha256")
    # as if the labeler fields did not exist (config.json files written before them)
    without = config_hash(config, exclude=HASH_EXCLUDE + tuple(HASH_ONLY_WHEN_SET) + fields)
    assert config.hash == without
    labeled = dataclasses.replace(
        config, direction=(), mask="labeler", labeler="u2net", filters=("mask_size",)
    )
    with_sha = dataclasses.replace(labeled, labeler_sha256="ab" * 32)
    assert len({config.hash, labeled.hash, with_sha.hash}) == 3
    moved = dataclasses.replace(with_sha, labeler_weights="/elsewhere/u2netp.pth")
    assert moved.hash == with_sha.hash  # the file's content counts, not its path


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(mask="labeler"), "--mask labeler and --labeler go together"),
        (dict(labeler="u2net"), "--mask labeler and --labeler go together"),
        (
            dict(mask="labeler", labeler="u2net"),
            "the histogram filter judges the shifted image, which --mask labeler does not render",
        ),
    ],
)
def test_config_refuses_a_half_labeler_mode(changes, message):
    with pytest.raises(ValueError, match=message):
        GeneratorConfig(shards=1, direction=(), **changes)


def _refused(argv) -> str:
    from generator.__main__ import main

    with pytest.raises(UsageError) as info:
        main(argv)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_cli_refusals_are_one_line(tmp_path, labeler_file):
    base = ["--shards", "1", "--out", str(tmp_path / "out"), "--gan", "random"]
    assert _refused([*base, "--mask", "labeler"]) == "--mask labeler needs --labeler-weights FILE"
    assert _refused([*base, "--mask", "lighter", "--labeler-weights", labeler_file]) == (
        "--labeler and --labeler-weights go with --mask labeler"
    )
    np.save(tmp_path / "d.npy", np.ones(64, np.float32))
    with_direction = [*base, "--labeler-weights", labeler_file, "--direction", f"{tmp_path}/d.npy"]
    assert "no --direction or --shift is used" in _refused(with_direction)
    other = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, other)
    message = _refused([*base, "--mask", "labeler", "--labeler-weights", str(other)])
    assert message.startswith(f"labeler weights {other} are not a U2NET or U2NETP state dict")
    assert "invalid choice" in _refused([*base, "--labeler", "sam", "--labeler-weights", "x"])
    assert not (tmp_path / "out").exists()


def test_a_changed_labeler_file_is_refused_by_the_shard_maker(tmp_path, labeler_file):
    from generator.shard_maker import ShardMaker

    path = tmp_path / "u2netp.pth"
    path.write_bytes(Path(labeler_file).read_bytes())
    config, _ = small_config(shards=1, mask="labeler", labeler_weights=str(path), **TINY)
    assert config.filters == ("components", "mask_size") and config.direction == ()
    torch.save(random_model("u2netp", seed=1).state_dict(), path)
    with pytest.raises(UsageError, match="changed since the run's config was written"):
        ShardMaker(config)


def _read_tar(path) -> dict[str, dict[str, bytes]]:
    samples: dict[str, dict[str, bytes]] = {}
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            key, field = member.name.split(".", 1)
            samples.setdefault(key, {})[field] = tar.extractfile(member).read()
    return samples


@pytest.mark.slow
def test_shards_carry_the_labelers_masks_of_g_z(tmp_path, labeler_file, capsys):
    import cv2

    from generator.components import keep_large_components_batch
    from generator.labelers import load_labeler
    from generator.labelers.protocol import stored_pixels
    from generator.shard_maker import ShardMaker

    config, embeddings = small_config(
        shards=1, mask="labeler", labeler_weights=labeler_file, **TINY
    )
    assert "this run is NOT unsupervised" in capsys.readouterr().err
    maker = ShardMaker(config, embeddings)
    record = maker.make_shard(0, str(tmp_path))
    assert record["supervised_masks"] is True and record["count"] == 2
    assert record["rejected"] == {"mask_size": 0, "histogram": 0}
    samples = _read_tar(tmp_path / "shard-000000.tar")
    stored = [
        cv2.imdecode(np.frombuffer(s["png"], np.uint8), cv2.IMREAD_GRAYSCALE)
        for _, s in sorted(samples.items())
    ]
    assert all(m.shape == (32, 32) and set(np.unique(m)) <= {0, 255} for m in stored)
    assert [json.loads(s["json"])["draw"] for _, s in sorted(samples.items())] == [0, 1]
    # the same draws again, with their 8-bit images: the masks are the labeler's on those
    # images, after the components filter, and the same as in the shard
    images, masks, _, _, _ = maker.samples(0)
    gan_images = torch.from_numpy(images).permute(0, 3, 1, 2).double().div(127.5).sub(1).float()
    assert torch.equal(
        stored_pixels(gan_images), torch.from_numpy(images).permute(0, 3, 1, 2) / 255
    )
    labeler = load_labeler("u2net", labeler_file)
    want = keep_large_components_batch(labeler.masks(gan_images), 8, 0.2).numpy()
    assert np.array_equal(masks, want)
    assert np.array_equal(np.stack(stored) == 255, masks)
    assert 0 < masks.mean() < 0.5


@pytest.mark.slow
def test_cli_run_says_supervised(tmp_path, labeler_file):
    out = tmp_path / "run"
    argv = ["--shards", "1", "--samples-per-shard", "2", "--batch-size", "2", "--workers", "1"]
    argv += ["--gan", "random", "--weights", "resolution=32,width=8", "--out", str(out)]
    argv += ["--mask", "labeler", "--labeler", "u2net", "--labeler-weights", labeler_file]
    done = subprocess.run(
        [sys.executable, "-m", "generator", *argv],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ},
    )
    assert done.returncode == 0, done.stderr
    assert "a SUPERVISED saliency model" in done.stderr and "NOT unsupervised" in done.stderr
    assert "the histogram filter is left out" in done.stderr
    doc = json.loads((out / "config.json").read_text())
    assert doc["supervised_masks"] is True
    assert doc["config"]["labeler"] == "u2net" and doc["config"]["direction"] == []
    assert doc["config"]["labeler_sha256"] == _sha256(labeler_file)
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [(r["index"], r["count"], r["supervised_masks"]) for r in records] == [(0, 2, True)]
    samples = _read_tar(out / "shard-000000.tar")
    assert sorted(samples) == [schema.sample_key(0, 0), schema.sample_key(0, 1)]
    assert all({"jpg", "png", "json"} <= set(s) for s in samples.values())


def _sha256(path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
