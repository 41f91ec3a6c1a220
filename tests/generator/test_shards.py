"""One shard end to end without Ray: samples -> tar -> publish (local and real S3) -> read."""

import json

import numpy as np
import pyarrow.json as paj
import pytest
import torch

from generator.manifest import finished_records, open_run, write_jsonl
from generator.shard_maker import ShardMaker, to_uint8
from generator.shards import read_shard
from segcore import schema, storage
from segcore.cli import UsageError
from tests.generator.conftest import small_config


@pytest.fixture(scope="module")
def maker():
    config, _ = small_config()
    return ShardMaker(config)


def test_round_trip_local(maker, tmp_path):
    out = str(tmp_path / "run")
    images, masks, metas, attempts, _ = maker.samples(1)
    record = maker.make_shard(1, out)
    assert record["count"] == 4 and record["attempts"] == attempts
    assert record["attempts"] == 4 + sum(record["rejected"].values())
    assert set(record) >= set(schema.MANIFEST_FIELDS)
    got = read_shard(storage.join(out, "shard-000001.tar"))
    assert [s["__key__"] for s in got] == [schema.sample_key(1, i) for i in range(4)]
    for i, s in enumerate(got):
        assert s["meta"] == metas[i] and s["meta"]["shard"] == 1 and s["meta"]["sample"] == i
        assert set(np.unique(s["mask_raw"])) <= {0, 255}
        assert np.array_equal(s["mask"], masks[i])  # PNG is lossless
        assert s["image"].shape == (64, 64, 3)
        err = np.abs(s["image"].astype(int) - images[i].astype(int)).mean()
        assert err < 3, err  # JPEG q95
    # the draws recorded in meta are the accepted positions of the latent stream
    assert [m["draw"] for m in metas] == sorted(m["draw"] for m in metas)
    assert metas[-1]["draw"] == attempts - 1
    on_disk = json.loads((tmp_path / "run" / "manifest" / "shard-000001.json").read_text())
    assert on_disk == record
    assert (tmp_path / "run" / "shard-000001.tar").stat().st_size == record["bytes"]


def test_shard_is_reproducible_and_shards_differ(maker, tmp_path):
    config = maker.config
    other = ShardMaker(config)  # a second "worker" with its own copy of the model
    a = maker.make_shard(0, str(tmp_path / "a"))
    b = other.make_shard(0, str(tmp_path / "b"))
    assert a["sha256"] == b["sha256"] and a["bytes"] == b["bytes"]
    c = other.make_shard(2, str(tmp_path / "b"))
    assert c["sha256"] != a["sha256"]


def test_to_uint8_convention():
    x = torch.tensor([-1.0, -0.5, 0.0, 1.0, 1.5]).view(1, 1, 1, 5).expand(1, 3, 1, 5)
    assert to_uint8(x)[0, 0, :, 0].tolist() == [
        0,
        64,
        128,
        255,
        255,
    ]  # 63.75 -> 64, 127.5 -> 128 (half to even)


def test_manifest_jsonl_readable_with_pyarrow(maker, tmp_path):
    out = str(tmp_path / "run")
    open_run(out, maker.config)
    for i in (0, 2):
        maker.make_shard(i, out)
    records = finished_records(out)
    assert sorted(records) == [0, 2]
    write_jsonl(out, records)
    table = paj.read_json(str(tmp_path / "run" / "manifest.jsonl"))
    assert table.column("index").to_pylist() == [0, 2]
    assert table.column("count").to_pylist() == [4, 4]
    assert "rejected" in table.column_names and "sha256" in table.column_names
    doc = json.loads((tmp_path / "run" / "config.json").read_text())
    assert doc["config_hash"] == maker.config.hash and doc["version"]
    assert open_run(out, maker.config) == records  # same config: resume
    with pytest.raises(UsageError, match="--no-resume"):
        open_run(out, maker.config, resume=False)


@pytest.mark.integration
def test_round_trip_s3(maker, s3_env):
    out = f"s3://{s3_env.bucket}/gen/run1"
    open_run(out, maker.config)
    record = maker.make_shard(3, out)
    got = read_shard(f"{out}/shard-000003.tar")
    assert [s["meta"]["sample"] for s in got] == [0, 1, 2, 3]
    assert finished_records(out) == {3: record}
    fs, path = storage.filesystem(out)
    names = sorted(p.rsplit("/", 1)[-1] for p in fs.ls(path, detail=False))
    assert names == ["config.json", "manifest", "shard-000003.tar"]


def test_embeddings_latents_and_affine_mask_through_a_shard(tmp_path):
    """The direction-file contract (operators) and embeddings reach the samples."""
    from generator.direction_file import save_direction

    ident = np.concatenate([np.eye(3), np.zeros((3, 1))], axis=1)
    brighter = np.concatenate([np.eye(3), np.full((3, 1), 0.3)], axis=1)
    direction = tmp_path / "d.json"
    vec = np.random.default_rng(0).standard_normal(120)
    save_direction(
        str(direction),
        vec,
        gan="random",
        shift=5.0,
        index=3,
        sign=1,
        operators=np.stack([ident, brighter]),
        bright_operator=1,
    )
    emb = tmp_path / "emb.npy"
    np.save(emb, np.random.default_rng(1).standard_normal((6, 120)).astype(np.float32))
    config, embeddings = small_config(
        direction_file=str(direction), latents=str(emb), alpha=0.2, mask="affine", filters=()
    )
    assert config.operators is not None and config.bright_operator == 1
    assert config.latents_sha256 is not None and embeddings.shape == (6, 120)
    _, masks, metas, attempts, _ = ShardMaker(config, embeddings).samples(0)
    assert attempts == 4  # no filters: every draw is kept
    assert all(0 <= m["source_index"] < 6 for m in metas)
    assert masks.dtype == bool and masks.shape == (4, 64, 64)


def test_mask_auto_follows_the_direction_file(tmp_path):
    """auto = affine (Appendix B) for a picked direction with operators, lighter for a vector."""
    from generator.direction_file import save_direction

    vec = np.random.default_rng(0).standard_normal(120)
    ident = np.concatenate([np.eye(3), np.zeros((3, 1))], axis=1)
    picked, plain = tmp_path / "picked.json", tmp_path / "plain.npy"
    save_direction(
        str(picked),
        vec,
        gan="random",
        shift=5.0,
        index=0,
        sign=1,
        operators=np.stack([ident, ident * 2]),
        bright_operator=1,
    )
    np.save(plain, vec)
    assert small_config(direction_file=str(picked), mask="auto")[0].mask == "affine"
    assert small_config(direction_file=str(plain), mask="auto")[0].mask == "lighter"
    assert small_config(direction_file=str(picked), mask="lighter")[0].mask == "lighter"


def test_cli_and_library_default_to_mask_auto():
    from generator.__main__ import parse_args

    assert parse_args(["--shards", "1", "--out", "x"]).mask == "auto"
    config, _ = small_config()  # no mask given: auto, which the random GAN's vector makes lighter
    assert config.mask == "lighter"


def test_samples_hands_pixels_over_without_keeping_them(maker):
    seen = []
    images, masks, metas, _, _ = maker.samples(0, on_accept=lambda i, m, meta: seen.append((i, m)))
    assert images is None and masks is None  # not held twice: make_shard encodes what it gets
    kept_images, kept_masks, kept_metas, _, _ = maker.samples(0)
    assert len(seen) == len(metas) == len(kept_metas)
    for (img, mask), ref_img, ref_mask in zip(seen, kept_images, kept_masks, strict=True):
        assert (img == ref_img).all() and (mask == ref_mask).all()


def test_min_fraction_hashes_only_when_set_so_runs_without_the_key_resume():
    """A run folder whose config.json has no min_fraction key resumes: with the bound unset the
    hash is that of the config without the field; set, the hash changes."""
    import dataclasses
    import json

    from generator.config import HASH_EXCLUDE
    from generator.manifest import _differences

    config, _ = small_config()
    # the pinned hash of this config without the min_fraction field (as commit 6fef3e0 wrote it)
    assert config.hash == "1554930857d91293"
    old_fields = {
        k: v
        for k, v in dataclasses.asdict(config).items()
        if k not in HASH_EXCLUDE and k != "min_fraction"
    }
    bounded, _ = small_config(min_fraction=0.02)
    assert bounded.hash != config.hash
    # a run without the key, refused for another reason, does not list min_fraction
    old_run = json.loads(json.dumps(old_fields, default=str))
    old_run["seed"] = 5
    assert _differences(old_run, config) == ["seed: 5 -> 0"]
    assert "min_fraction: 0.0 -> 0.02" in _differences(old_run, bounded)


def test_tar_bytes_equal_the_webdataset_writer(tmp_path):
    """The in-memory tar is byte for byte webdataset's, for any sizes and for names a plain
    ustar header cannot hold (long, non-ASCII), which go through tarfile."""
    import webdataset as wds

    from generator.shards import tar_bytes

    def write_tar(path, samples):  # the reference: webdataset's writer with the same headers
        with open(path, "wb") as f:
            writer = wds.TarWriter(f, user="gan-objseg", group="gan-objseg", mtime=0.0)
            for sample in samples:
                writer.write(sample)
            writer.close()

    rng = np.random.default_rng(0)
    cases = [[]]
    for trial in range(12):
        cases.append(
            [
                {
                    "__key__": schema.sample_key(trial, i),
                    "jpg": rng.bytes(int(rng.integers(0, 2000))),
                    "png": rng.bytes(int(rng.choice([0, 1, 511, 512, 513, 1024]))),
                    "json": json.dumps({"i": i}).encode(),
                }
                for i in range(int(rng.integers(1, 5)))
            ]
        )
    cases.append([{"__key__": "k" * 120, "jpg": b"a"}, {"__key__": "é", "txt": "text"}])
    for i, samples in enumerate(cases):
        path = tmp_path / f"{i}.tar"
        write_tar(path, samples)
        assert tar_bytes(samples) == path.read_bytes(), i
