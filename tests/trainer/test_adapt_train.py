"""Self-training end to end on tiny shards: the rounds run and log, a finished synthetic run
adapted later and a run continued inside a round end bit for bit where an uninterrupted run
did, under one process and under torchrun with two ranks; changed options and changed target
images are refused once self-training has begun."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from segcore.cli import UsageError
from tests.trainer.conftest import TINY
from tests.trainer.shards import easy_sample
from tests.trainer.test_train import read_log, same_weights, torchrun, weights
from trainer import checkpoint
from trainer.__main__ import main


def target_folder(root: Path, n: int = 12) -> Path:
    """Unlabelled images like the shards' (and masks beside them, which nothing reads)."""
    rng = np.random.default_rng(9)
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
    for i in range(n):
        img, mask = easy_sample(rng, 40)
        cv2.imwrite(str(root / "images" / f"{i:02d}.png"), img[:, :, ::-1])
        cv2.imwrite(str(root / "masks" / f"{i:02d}.png"), mask)
    return root


ADAPT = ["--adapt-rounds", "2", "--adapt-steps", "3"]


@pytest.mark.slow
def test_rounds_log_adapt_later_and_resume_inside_a_round_exactly(shard_dir, tmp_path, monkeypatch):
    _, pattern = shard_dir
    target = str(target_folder(tmp_path / "target"))
    common = [*TINY, "--shards", pattern, "--workers", "0", "--log-every", "2", "--val-every",
              "100", "--ckpt-every", "2", "--steps", "4"]  # fmt: skip
    adapt = ["--adapt-images", target, *ADAPT]

    # A: uninterrupted, 4 synthetic + 2 rounds x 3 steps; OUT is copied when step 6 is saved
    # (inside round 1, which runs steps 5-7)
    save = checkpoint.save

    def save_and_copy(url, payload):
        save(url, payload)
        if payload["step"] == 6:
            shutil.copytree(tmp_path / "a", tmp_path / "c")

    monkeypatch.setattr(checkpoint, "save", save_and_copy)
    assert main([*common, *adapt, "--out", str(tmp_path / "a")]) == 0
    monkeypatch.setattr(checkpoint, "save", save)
    a = weights(tmp_path / "a")
    assert a["step"] == 10 and a["adapt_round"] == 2
    log = read_log(tmp_path / "a")
    rounds = [r for r in log if "adapt_kept_images" in r]
    assert [(r["step"], r["adapt_round"]) for r in rounds] == [(4, 1), (7, 2)]
    assert rounds[0]["adapt_images"] == 12 and rounds[0]["adapt_kept_images"] == 10  # 0.8 x 12
    assert "adapt_agreement" not in rounds[0] and 0 <= rounds[1]["adapt_agreement"] <= 1
    assert [r["step"] for r in log if "loss" in r] == [2, 4, 6, 8, 10]
    assert [r.get("adapt_round") for r in log if "loss" in r] == [None, None, 1, 2, 2]
    # the cosine restarts each round: steps 5, 7, 9 are 2nd of 3, 1st of 3, 3rd of 3
    lrs = [r["lr"] for r in log if "loss" in r and r.get("adapt_round")]
    np.testing.assert_allclose(lrs, [1e-3 * 0.75, 1e-3, 1e-3 * 0.25], rtol=1e-9)
    assert (tmp_path / "a" / "pseudo-labels-r2.pt").exists()
    meta = json.loads((tmp_path / "a" / "model.json").read_text())
    assert meta["steps"] == 10

    # B: a finished synthetic run (4 steps), adapted later by the same command with --adapt-*
    assert main([*common, "--out", str(tmp_path / "b")]) == 0
    assert main([*common, *adapt, "--out", str(tmp_path / "b")]) == 0
    assert same_weights(a, weights(tmp_path / "b")), "adapting later must equal adapting at once"

    # C: continued from step 6, inside round 1: reads round 1's labels back
    assert weights(tmp_path / "c")["step"] == 6
    assert main([*common, *adapt, "--out", str(tmp_path / "c")]) == 0
    c = weights(tmp_path / "c")
    assert same_weights(a, c), "a run continued inside a round must end where A did"
    assert a["ranks"][0]["positions"] == c["ranks"][0]["positions"]

    # once self-training has begun, its options and --steps are fixed ...
    shutil.copytree(tmp_path / "c", tmp_path / "d")
    (tmp_path / "d" / "checkpoint.pt").unlink()
    shutil.copy(tmp_path / "a" / "checkpoint.pt", tmp_path / "d" / "checkpoint.pt")
    with pytest.raises(UsageError, match=r"adapt_margin: 0\.3 -> 0\.2"):
        main([*common, *adapt, "--adapt-margin", "0.2", "--out", str(tmp_path / "d")])
    # ... and the labels on disk must belong to the target images
    shutil.copytree(tmp_path / "c", tmp_path / "e")
    shutil.copy(tmp_path / "c" / "checkpoint.pt", tmp_path / "e" / "checkpoint.pt")
    (tmp_path / "target" / "images" / "00.png").unlink()
    snapshot = checkpoint.load(str(tmp_path / "a" / "checkpoint.pt"))
    snapshot["step"] = 6
    checkpoint.save(str(tmp_path / "e" / "checkpoint.pt"), snapshot)
    with pytest.raises(UsageError, match="labels other target images"):
        main([*common, *adapt, "--out", str(tmp_path / "e")])


@pytest.mark.slow
@pytest.mark.integration
def test_torchrun_two_ranks_label_slices_and_adapt_later_exactly(shard_dir, tmp_path):
    _, pattern = shard_dir
    target = str(target_folder(tmp_path / "target", n=7))  # odd: the slices differ in size
    common = [*TINY, "--shards", pattern, "--workers", "0", "--log-every", "2", "--val-every",
              "100", "--steps", "2"]  # fmt: skip
    adapt = ["--adapt-images", target, "--adapt-rounds", "2", "--adapt-steps", "2"]
    r = torchrun([*common, *adapt, "--out", str(tmp_path / "a")])
    assert r.returncode == 0, r.stderr[-2000:]
    r = torchrun([*common, "--out", str(tmp_path / "b")])
    assert r.returncode == 0, r.stderr[-2000:]
    r = torchrun([*common, *adapt, "--out", str(tmp_path / "b")])
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert a["step"] == b["step"] == 6 and same_weights(a, b)
    import torch

    la = torch.load(tmp_path / "a" / "pseudo-labels-r2.pt", weights_only=True)
    lb = torch.load(tmp_path / "b" / "pseudo-labels-r2.pt", weights_only=True)
    assert la["probability"].shape == (7, 32, 32)
    assert torch.equal(la["probability"], lb["probability"])
    rounds = [r for r in read_log(tmp_path / "a") if "adapt_kept_images" in r]
    assert [r["adapt_kept_images"] for r in rounds] == [6, 6]  # round(0.8 x 7)
