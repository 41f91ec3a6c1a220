"""The shard stream: shard lists, hold-out split, determinism, exact resume, bad data."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest
import torch

from segcore.cli import UsageError
from tests.trainer.conftest import PER_SHARD, SIZE
from tests.trainer.shards import easy_sample, encode, write_shard
from trainer import data, shardlist


def spec(urls, rank=0, batch=4, max_bad=0.05, seed=0):
    return data.StreamSpec(
        urls=tuple(urls), seed=seed, rank=rank, batch_size=batch, resolution=SIZE,
        max_bad_fraction=max_bad,
    )  # fmt: skip


def batches(stream, n_workers=0):
    loader = data.train_loader(stream, n_workers, pin_memory=False)
    return list(loader)


def test_expand_and_check(shard_dir, tmp_path):
    folder, pattern = shard_dir
    urls = shardlist.expand_shards(pattern)
    assert [u.rsplit("/", 1)[1] for u in urls] == [f"shard-00000{i}.tar" for i in range(4)]
    shardlist.check_shards_exist(urls)
    with pytest.raises(UsageError, match="no shards match"):
        shardlist.check_shards_exist(
            shardlist.expand_shards(str(tmp_path / "shard-{000000..000002}.tar"))
        )
    more = shardlist.expand_shards(str(folder / "shard-{000000..000005}.tar"))
    with pytest.raises(UsageError, match=r"2 of 6 shards do not exist .*shard-000004\.tar"):
        shardlist.check_shards_exist(more)


def test_holdout_split(shard_dir):
    folder, pattern = shard_dir
    urls = shardlist.expand_shards(pattern)
    assert shardlist.split_holdout(urls, "auto") == (urls[:3], urls[3:])
    assert shardlist.split_holdout(urls, "none") == (urls, [])
    assert shardlist.split_holdout(urls, "0,2-3") == ([urls[1]], [urls[0], urls[2], urls[3]])
    assert shardlist.split_holdout(urls, str(folder / "shard-000001.tar")) == (
        [urls[0], urls[2], urls[3]],
        [urls[1]],
    )
    with pytest.raises(UsageError, match=r"indices \[7\] are not in --shards"):
        shardlist.split_holdout(urls, "3,7")
    with pytest.raises(UsageError, match="nothing is left"):
        shardlist.split_holdout(urls, "0-3")
    with pytest.raises(UsageError, match="not an index"):
        shardlist.split_holdout(urls, "last")


def test_batches_have_the_contract_layout(shard_dir):
    urls = shardlist.expand_shards(shard_dir[1])
    out = batches(data.ShardStream(spec(urls), total=3, n_workers=1))
    assert len(out) == 3
    b = out[0]
    assert b["image"].shape == (4, SIZE, SIZE, 3) and b["image"].dtype == torch.uint8
    assert b["mask"].shape == (4, SIZE, SIZE) and set(b["mask"].unique().tolist()) <= {0, 255}
    # The image is bright exactly where the mask is set (the fixture's rectangles).
    img, mask = b["image"][0].numpy().astype(int), b["mask"][0].numpy()
    assert img[mask == 255].mean() > 150 > img[mask == 0].mean() + 60


def test_stream_is_deterministic_and_differs_by_rank(shard_dir):
    urls = shardlist.expand_shards(shard_dir[1])
    a = batches(data.ShardStream(spec(urls), total=6, n_workers=1))
    b = batches(data.ShardStream(spec(urls), total=6, n_workers=1))
    c = batches(data.ShardStream(spec(urls, rank=1), total=6, n_workers=1))
    assert all(torch.equal(x["image"], y["image"]) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x["image"], y["image"]) for x, y in zip(a, c, strict=True))


@pytest.mark.parametrize("n_workers", [0, 2])
def test_resume_from_positions_gives_the_same_stream(shard_dir, n_workers):
    # Batches 0..6 in one go, vs 0..2 then a fresh loader from the recorded positions.
    urls = shardlist.expand_shards(shard_dir[1])
    s = spec(urls, batch=5)  # 5 does not divide 16: batches straddle shards
    full = batches(data.ShardStream(s, total=7, n_workers=n_workers), n_workers)
    head = batches(data.ShardStream(s, total=3, n_workers=n_workers), n_workers)
    positions = {}
    for b in head:
        w, j, o = (int(v) for v in b["pos"])
        positions[w] = (j, o)
    tail = batches(
        data.ShardStream(s, total=4, n_workers=n_workers, start_step=3, positions=positions),
        n_workers,
    )
    assert len(full) == 7 and len(head) + len(tail) == 7
    for x, y in zip(full, head + tail, strict=True):
        assert torch.equal(x["image"], y["image"]) and torch.equal(x["pos"], y["pos"])


def test_worker_shares_add_up():
    for total in range(0, 9):
        for n in (1, 2, 3):
            assert sum(data.worker_batches(total, n, w) for w in range(n)) == total


def _truncated_copy(src, dst):
    blob = src.read_bytes()
    dst.write_bytes(blob[: len(blob) // 2 + 100])  # breaks off inside a member


def _shard_with_bad_jpeg(path, index):
    rng = np.random.default_rng(index)
    with tarfile.open(path, "w") as tar:
        for i in range(PER_SHARD):
            jpg, png = encode(*easy_sample(rng, SIZE))
            if i == 3:
                jpg = b"not a jpeg"
            for ext, blob in (("jpg", jpg), ("png", png)):
                info = tarfile.TarInfo(f"{index:06d}_{i:06d}.{ext}")
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))


def test_corrupt_data_is_skipped_and_counted(tmp_path, capsys):
    good = write_shard(tmp_path / "shard-000000.tar", 0, PER_SHARD, SIZE)
    _truncated_copy(write_shard(tmp_path / "full.tar", 1, PER_SHARD, SIZE),
                    tmp_path / "shard-000001.tar")  # fmt: skip
    _shard_with_bad_jpeg(tmp_path / "shard-000002.tar", 2)
    urls = [str(good), str(tmp_path / "shard-000001.tar"), str(tmp_path / "shard-000002.tar")]
    out = batches(data.ShardStream(spec(urls, max_bad=0.5), total=20, n_workers=1))
    assert len(out) == 20 and all(len(b["image"]) == 4 for b in out)
    assert "error" not in out[-1]
    assert out[-1]["bad"] > 0
    err = capsys.readouterr().err
    assert "skipped unreadable data" in err
    assert "undecodable image or mask" in err  # the bad JPEG
    assert "ReadError" in err or "unexpected end" in err.lower()  # the truncated shard


def test_too_much_bad_data_is_a_clear_error(tmp_path):
    for i in range(2):
        (tmp_path / f"shard-00000{i}.tar").write_bytes(b"\0garbage" * 100)
    urls = [str(tmp_path / f"shard-00000{i}.tar") for i in range(2)]
    out = batches(data.ShardStream(spec(urls), total=5, n_workers=1))
    assert len(out) == 1 and "too much unreadable data" in out[0]["error"]
