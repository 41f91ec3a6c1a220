"""benchmarks/pipeline_world.py's own pieces: the shards of parts (b) and (e), written with the
generator's run-folder bookkeeping, and its options."""

import hashlib
import json
import types

import numpy as np
import pytest

from benchmarks.pipeline_world import (
    PairShards,
    gan_alpha_pairs,
    main,
    resolved_mask,
    true_mask_pairs,
    write_pair_shards,
)
from generator.manifest import finished_records
from generator.shards import read_shard
from segcore.cli import UsageError
from toyworld.world import render_scene

ARGS = types.SimpleNamespace(shards=2, per_shard=6, seed=1, weights=None, direction=None)


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_true_mask_shards_carry_a_manifest_and_resume(tmp_path):
    out = tmp_path / "b"
    config = PairShards("true-mask", 2, 6, seed=1)
    write_pair_shards(config, out, true_mask_pairs(ARGS))
    records = finished_records(str(out))
    assert sorted(records) == [0, 1] and records[1]["count"] == 6
    assert records[0]["sha256"] == _sha(out / "shard-000000.tar")
    assert (out / "manifest.jsonl").read_text().count("\n") == 2
    assert json.loads((out / "config.json").read_text())["config"]["source"] == "true-mask"
    samples = read_shard(str(out / "shard-000001.tar"))
    image, mask = render_scene(7 + 1000 * 1, 1 * 6 + 2)  # shard 1, sample 2 of seed 1
    assert samples[2]["__key__"] == "000001_000002"
    assert np.array_equal(samples[2]["mask"], mask)
    assert samples[2]["meta"] == {"shard": 1, "sample": 2, "source": "true-mask"}
    assert np.abs(samples[2]["image"].astype(int) - image).mean() < 8  # JPEG

    first = _sha(out / "shard-000001.tar")
    (out / "manifest" / "shard-000001.json").unlink()  # a shard without its record is redone
    stamp = (out / "shard-000000.tar").stat().st_mtime_ns
    write_pair_shards(config, out, true_mask_pairs(ARGS))
    assert (out / "shard-000000.tar").stat().st_mtime_ns == stamp  # kept
    assert _sha(out / "shard-000001.tar") == first  # remade, byte for byte
    with pytest.raises(UsageError, match=r"seed: 1 -> 2"):
        write_pair_shards(PairShards("true-mask", 2, 6, seed=2), out, true_mask_pairs(ARGS))


def test_gan_alpha_masks_are_the_gans_own_alpha():
    images, masks = gan_alpha_pairs(ARGS)(0)
    assert images.shape == (6, 32, 32, 3) and images.dtype == np.uint8
    assert masks.shape == (6, 32, 32) and masks.dtype == bool
    assert 0.05 < masks.mean() < 0.6  # one object per sample, as the world has


def test_shipped_direction_resolves_auto_to_affine():
    assert resolved_mask(types.SimpleNamespace(mask="auto", weights=None, direction=None)) == (
        "affine"
    )


def test_unknown_parts_and_weights_without_direction_are_refused(tmp_path):
    with pytest.raises(UsageError, match="unknown part"):
        main(["--out", str(tmp_path / "x"), "--parts", "a,z"])
    with pytest.raises(UsageError, match="--weights needs --direction"):
        main(["--out", str(tmp_path / "x"), "--weights", "w.pt"])
    assert not (tmp_path / "x").exists()
