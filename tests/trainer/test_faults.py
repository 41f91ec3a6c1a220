"""Bad numbers, bad data and bad folders: one line, exit 2, nothing written that should not be;
--max-bad-fraction as bad samples / samples read, wherever they fall."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import webdataset as wds

from segcore import schema
from segcore.cli import UsageError
from tests.trainer.conftest import PER_SHARD, SIZE, TINY
from tests.trainer.shards import easy_sample, encode, write_shard
from tests.trainer.test_train import REPO, weights
from trainer import __main__ as entry
from trainer import data, shardlist
from trainer.__main__ import main

OPTION_ERRORS = [
    (["--lr", "inf"], "--lr"),
    (["--lr", "0"], r"--lr must be in \(0, 1e\+30\], got 0"),
    (["--lr", "1e38"], r"--lr must be in \(0, 1e\+30\]"),
    (["--lr", "1e400"], "--lr"),  # overflows to inf
    (["--lr-drop-factor", "nan"], "--lr-drop-factor"),
    (["--lr-drop-factor", "-1"], r"--lr-drop-factor must be in \(0, 1\], got -1"),
    (["--lr-drop-factor", "0"], r"--lr-drop-factor must be in \(0, 1\]"),
    (["--lr-drop-factor", "1.5"], r"--lr-drop-factor must be in \(0, 1\]"),
    (["--lr-drop-step", "-1"], "--lr-drop-step must be >= 0"),
    (["--width", "inf"], "--width"),
    (["--width", "0"], "--width must be > 0"),
    (["--seed", "-1"], r"--seed must be in \[0, 2147483647\], got -1"),
    (["--seed", str(2**40)], "--seed must be in"),
    (["--max-bad-fraction", "1"], r"--max-bad-fraction must be in \[0, 1\)"),
    (["--max-bad-fraction", "nan"], "--max-bad-fraction"),
    (["--collective-timeout", "0"], "--collective-timeout must be > 0"),
    (["--collective-timeout", "inf"], "--collective-timeout"),
    (["--threads", "0"], "--threads must be >= 1"),
]


@pytest.mark.parametrize(("extra", "message"), OPTION_ERRORS)
def test_every_number_option_is_checked_before_anything_is_written(
    shard_dir, tmp_path, extra, message
):
    out = tmp_path / "o"
    with pytest.raises(UsageError, match=message):
        main([*TINY, "--shards", shard_dir[1], "--out", str(out), "--steps", "2", *extra])
    assert not out.exists()


def test_a_bad_option_is_one_line_and_exit_2(tmp_path):
    argv = ["--shards", "x", "--out", str(tmp_path / "o"), "--seed", "-1"]
    r = subprocess.run([sys.executable, "-m", "trainer", *argv], cwd=REPO,
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.splitlines() == ["trainer: error: --seed must be in [0, 2147483647], got -1"]


def test_a_non_finite_loss_stops_before_the_next_checkpoint(shard_dir, tmp_path, monkeypatch):
    calls = []

    def loss_nan_at_step_3(logits, target, kind):
        calls.append(1)
        loss = entry_loss(logits, target, kind)
        return loss * math.nan if len(calls) == 3 else loss

    entry_loss = entry.segmentation_loss
    monkeypatch.setattr(entry, "segmentation_loss", loss_nan_at_step_3)
    out = tmp_path / "o"
    argv = [*TINY, "--shards", shard_dir[1], "--out", str(out), "--steps", "6", "--workers", "0",
            "--ckpt-every", "2", "--log-every", "5", "--val-every", "100"]  # fmt: skip
    with pytest.raises(
        UsageError,
        match=r"^non-finite loss at step 3: training stopped, the last good checkpoint "
        r"\(step 2\) is kept",
    ):
        main(argv)
    kept = weights(out)
    assert kept["step"] == 2 and all(v.isfinite().all() for v in kept["model"].values())
    assert not (out / "model.pt2").exists()


def test_huge_lr_gives_non_finite_weights_and_exit_2_without_a_checkpoint(shard_dir, tmp_path):
    out = tmp_path / "o"
    argv = [*TINY, "--shards", shard_dir[1], "--out", str(out), "--steps", "4", "--workers", "0",
            "--lr", "1e30", "--val-every", "1"]  # fmt: skip
    r = subprocess.run([sys.executable, "-m", "trainer", *argv], cwd=REPO,
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 2, r.stderr[-2000:]
    # one error line (after the progress bar's carriage-return updates)
    errors = [x.rpartition("trainer: error: ")[2] for x in r.stderr.splitlines() if "error:" in x]
    assert len(errors) == 1 and "no checkpoint was written" in errors[0], r.stderr[-2000:]
    assert errors[0].startswith("non-finite model output on the hold-out set at step 1:")
    assert "Traceback" not in r.stderr
    assert not (out / "checkpoint.pt").exists() and not (out / "model.pt2").exists()


def test_an_unreadable_holdout_shard_is_an_error(shard_dir, tmp_path):
    bad = tmp_path / "val" / "shard-000000.tar"
    bad.parent.mkdir()
    bad.write_bytes(b"\0garbage" * 100)
    argv = [*TINY, "--shards", shard_dir[1], "--out", str(tmp_path / "o"), "--steps", "2",
            "--workers", "0", "--val-shards", str(bad)]  # fmt: skip
    with pytest.raises(UsageError, match=r"cannot read the hold-out shard .*shard-000000\.tar"):
        main(argv)


def write_samples(path, index: int, masks_scale: int = 1, bad_at=()) -> None:
    """A shard of PER_SHARD samples; `bad_at`: positions with an undecodable JPEG."""
    rng = np.random.default_rng(index)
    with wds.TarWriter(str(path)) as sink:
        for i in range(PER_SHARD):
            img, mask = easy_sample(rng, SIZE)
            jpg, png = encode(img, mask // masks_scale)  # the mask's values as given
            key = schema.sample_key(index, i)
            jpg = b"not a jpeg" if i in bad_at else jpg
            sink.write({"__key__": key, schema.IMAGE_KEY: jpg, schema.MASK_KEY: png})


def test_masks_outside_0_255_are_bad_samples(tmp_path):
    write_samples(tmp_path / "shard-000000.tar", 0, masks_scale=255)  # 0/1 masks
    urls = [str(tmp_path / "shard-000000.tar")]
    raw = next(data.iter_shard(urls[0], data.ErrorCounter()))
    with pytest.raises(ValueError, match=r"mask values \[0, 1\] are not all 0 or 255"):
        data.decode_sample(raw, SIZE)
    spec = data.StreamSpec(tuple(urls), 0, 0, 4, SIZE, 0.5)
    out = list(data.ShardStream(spec, total=2, n_workers=1))
    assert (
        len(out) == 1 and "unreadable data: 9 bad samples (" in out[0]["error"]
    )  # 9 > 0.5 x (9 + 8)


def stream_with_bad(tmp_path, where: str, fraction: float) -> list[dict]:
    """6 batches of 4 (24 good samples) over 40 shards of 16; 10 undecodable samples, first in
    the stream (the first shard drawn, samples 0-9) or last (the second shard, samples 6-15:
    only 2 good samples are read after them). Either way 34 samples are read."""
    urls = tuple(str(tmp_path / where / schema.shard_name(i)) for i in range(40))
    spec = data.StreamSpec(urls, 3, 0, 4, SIZE, fraction)
    drawn = [data.draw_shard(spec, 0, j) for j in range(3)]
    assert len(set(drawn)) == 3  # seed 3 draws three different shards first
    (tmp_path / where).mkdir(exist_ok=True)
    for i, url in enumerate(urls):
        bad = range(10) if (url == drawn[0] and where == "first") else ()
        if url == drawn[1] and where == "last":
            bad = range(6, 16)
        write_samples(url, i, bad_at=bad)
    return list(data.ShardStream(spec, total=6, n_workers=1))


@pytest.mark.parametrize("fraction", [0.3, 0.25])
def test_max_bad_fraction_does_not_depend_on_where_the_bad_samples_are(tmp_path, fraction):
    # 10 bad of 34 read: 0.294 of the samples. 0.3 passes wherever they are; 0.25 stops.
    verdicts = []
    for where in ("first", "last"):
        out = stream_with_bad(tmp_path, where, fraction)
        verdicts.append("error" in out[-1])
        if "error" not in out[-1]:
            assert len(out) == 6 and out[-1]["bad"] == 10
    assert verdicts == [fraction < 10 / 34] * 2


def test_an_unreadable_shard_counts_the_samples_its_manifest_promised(shard_dir, tmp_path):
    folder = tmp_path / "run"
    for i in range(4):
        write_shard(folder / schema.shard_name(i), i, PER_SHARD, SIZE)
    (folder / schema.shard_name(4)).write_bytes(b"\0garbage" * 100)
    (folder / schema.MANIFEST_DIR).mkdir()
    for i in range(5):
        record = {"index": i, "count": PER_SHARD}
        (folder / schema.MANIFEST_DIR / f"shard-{i:06d}.json").write_text(json.dumps(record))
    urls = tuple(str(folder / schema.shard_name(i)) for i in range(5))
    spec = data.StreamSpec(urls, 0, 0, 4, SIZE, 0.5)
    out = list(data.ShardStream(spec, total=12, n_workers=1))
    broken = [data.draw_shard(spec, 0, j) for j in range(13)].count(urls[4])
    assert out[-1]["bad"] % PER_SHARD == 0 and out[-1]["bad"] > 0 and broken > 0
    # Without a manifest: the first readable shard of the list gives the estimate (16).
    counts = shardlist.ExpectedCounts(urls, data.count_samples)
    assert counts(urls[4]) == PER_SHARD
    (folder / schema.MANIFEST_DIR / "shard-000004.json").unlink()
    assert shardlist.ExpectedCounts(urls, data.count_samples)(urls[4]) == PER_SHARD
    # 20% of shards unreadable: far past the default 5%.
    argv = [*TINY, "--shards", shardlist.folder_pattern(str(folder)), "--out",
            str(tmp_path / "o"), "--steps", "12", "--workers", "0", "--val-shards", "none"]  # fmt: skip
    with pytest.raises(UsageError, match="too much unreadable data"):
        main(argv)


def test_folders_that_are_not_ours(shard_dir, tmp_path):
    folder, pattern = shard_dir
    base = [*TINY, "--shards", pattern, "--steps", "2", "--workers", "0"]
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    (other / "config.json").write_text('{"some": "tool"}')
    with pytest.raises(UsageError, match=r"config\.json is not a trainer run's"):
        main([*base, "--out", str(other)])
    assert (other / "config.json").read_text() == '{"some": "tool"}'
    (other / "config.json").unlink()
    with pytest.raises(UsageError, match=r"holds other files \(notes.txt\) and no trainer"):
        main([*base, "--out", str(other)])
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]
    garbage = tmp_path / "g"
    garbage.mkdir()
    (garbage / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UsageError, match=r"^[^\n]*checkpoint.pt is not a readable trainer"):
        main([*base, "--out", str(garbage)])
    with pytest.raises(UsageError, match=r"is a folder; give a brace pattern of its shards, "
                       r"e.g. '.*shard-\{000000\.\.000003\}\.tar'"):  # fmt: skip
        main([*TINY, "--shards", str(folder), "--out", str(tmp_path / "o")])


def test_threads_are_set_and_recorded(shard_dir, tmp_path):
    out = tmp_path / "o"
    argv = [*TINY, "--shards", shard_dir[1], "--out", str(out), "--steps", "1", "--workers", "0",
            "--threads", "2"]  # fmt: skip
    assert main(argv) == 0
    assert torch.get_num_threads() == 2
    assert json.loads((out / "config.json").read_text())["config"]["threads"] == 2
