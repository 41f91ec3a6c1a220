"""Appendix B scoring: the planted segmenting direction must come first, with the right mask
and the right sign; ranking rules on hand-made entries; CLI outputs and bad input."""

import json

import numpy as np
import pytest
import torch

from generator.direction_file import load_direction
from generator.directions.pick import pick_direction
from generator.directions.score import (
    DirectionScorer,
    FitSettings,
    object_class,
    rank,
    score_directions,
)
from tests.directions.toy_gans import PLANTED, build_planted, disk

TOY = "tests.directions.toy_gans"


def _iou(a, b):
    return float((a & b).sum()) / float((a | b).sum())


@pytest.mark.slow
def test_planted_direction_ranks_first_with_its_mask_and_sign():
    backend = build_planted()
    settings = FitSettings(seed=3)
    scorer = DirectionScorer(backend, settings)
    dirs = torch.eye(backend.latent_dim)
    ranking = score_directions(backend, dirs, settings, scorer=scorer, progress=False)
    assert ranking[0]["direction"] == PLANTED
    assert ranking[0]["kept"]
    # Global brightness (6) explains every pixel with one map: dropped by the area filter.
    assert next(e for e in ranking if e["direction"] == 6)["dropped_dominant"]

    choice = pick_direction(backend, dirs, ranking, scorer)
    assert choice["index"] == PLANTED and choice["sign"] == 1
    assert torch.equal(choice["vector"], dirs[PLANTED])
    assert choice["object_brightens"]

    pair = choice["pair"]
    t = scorer.evaluate(dirs[PLANTED], pair, tensors=True)["_tensors"]
    region = disk().expand_as(t["mask"])
    assert _iou(t["mask"], region) >= 0.9
    assert min(_iou(m, r) for m, r in zip(t["mask"], region, strict=True)) >= 0.9


def test_scoring_is_deterministic_by_seed():
    backend = build_planted()
    settings = FitSettings(steps=20, eval_batch=4, seed=5)
    dirs = torch.eye(backend.latent_dim)[5:8]
    a = score_directions(backend, dirs, settings, progress=False)
    b = score_directions(backend, dirs, settings, progress=False)
    assert a == b


def _entry(k, loss, sep, dom):
    return {"direction": k, "restoration_loss": loss, "separation": sep, "dominant_fraction": dom}


def test_rank_filters_keeps_top_fifth_by_separation_then_orders_by_loss():
    entries = [
        _entry(0, 0.10, 5.0, 0.70),  # kept (2nd largest D among valid)
        _entry(1, 0.01, 9.0, 0.995),  # dropped: 99.5% of pixels in one class
        _entry(2, 0.05, 4.0, 0.60),  # valid, not in the top 20%
        _entry(3, 0.20, 6.0, 0.80),  # kept (largest D among valid)
        _entry(4, 0.01, 1.0, 0.50),
        _entry(5, 0.02, 2.0, 0.50),
        _entry(6, 0.03, 3.0, 0.50),
        _entry(7, 0.04, 0.5, 0.50),
        _entry(8, 0.05, 0.4, 0.50),
        _entry(9, 0.06, 0.3, 0.99),  # dropped: exactly 99% counts (">= 99%")
    ]
    ranking = rank(entries)
    # 8 valid -> ceil(0.2 * 8) = 2 kept: 3 and 0, by L_h; then the valid ones by L_h (2 before
    # 8 on a tie: by index); then the dropped ones.
    assert [e["direction"] for e in ranking] == [0, 3, 4, 5, 6, 7, 2, 8, 1, 9]
    assert [e["kept"] for e in ranking] == [True, True] + [False] * 8
    assert [e["rank"] for e in ranking] == list(range(10))


def test_object_class_rule():
    # class 1 is a centred square: it avoids the border -> object, even though it is larger
    a = torch.zeros(1, 16, 16, dtype=torch.long)
    a[:, 1:15, 1:15] = 1
    assert object_class(a)[0] == 1
    assert object_class(1 - a)[0] == 0
    # left half vs right half: no border evidence -> fall back to area; a tie goes to class 0
    b = torch.zeros(1, 16, 16, dtype=torch.long)
    b[:, :, 8:] = 1
    obj, info = object_class(b)
    assert (obj, info["object_rule"]) == (0, "minority by area")
    assert info["class_fraction"] == [0.5, 0.5] and info["border_fraction"] == [0.5, 0.5]
    # class 1 = pixels with (x + 2y) % 4 == 0: 1/4 of the image AND 15/60 of the border ring
    # (top 4, bottom 4, left 7, right 0) -> no border evidence -> the minority, class 1
    yy, xx = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    c = ((xx + 2 * yy) % 4 == 0).long()[None]
    obj, info = object_class(c)
    assert (obj, info["object_rule"]) == (1, "minority by area")
    assert info["class_fraction"] == [0.75, 0.25] and info["border_fraction"] == [0.75, 0.25]


@pytest.mark.slow
def test_cli_score_pick_writes_ranking_sheets_and_signed_direction(run_cli, tmp_path):
    # In this backend +e7 DARKENS the object, so the picked vector must be -e7.
    out = tmp_path / "score"
    r = run_cli(
        "score", "--gan", f"{TOY}:build_planted_dark", "--directions", "coords",
        "--out", out, "--sheets", 2, "--pick",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    ranking = json.loads((out / "ranking.json").read_text())
    assert len(ranking) == 12 and ranking[0]["direction"] == PLANTED
    for key in ("direction", "restoration_loss", "separation", "dominant_fraction", "kept"):
        assert key in ranking[0]
    assert np.asarray(ranking[0]["operators"]).shape == (2, 3, 4)
    sheets = sorted(p.name for p in out.glob("sheet_*.png"))
    assert sheets == ["sheet_rank000_dir0007.png", "sheet_rank001_dir0008.png"]
    assert (out / "sheet_rank000_dir0007.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "config.json").read_text())["config"]["shift"] == 5.0

    d = load_direction(out / "direction.json", 12)
    expected = np.zeros(12, dtype=np.float32)
    expected[PLANTED] = -1.0
    np.testing.assert_array_equal(d.vector, expected)
    assert d.info["sign"] == -1 and d.info["index"] == PLANTED and d.shift == 5.0
    assert d.operators.shape == (2, 3, 4)
    # the object's operator (bright_operator) brightens: its bias is positive in every channel
    assert (d.operators[d.bright_operator][:, 3] > 0.2).all()
    assert (d.operators[1 - d.bright_operator][:, 3] < -0.2).all()

    # An interrupted run resumes: scores kept per direction are reused, the rest recomputed,
    # and the ranking comes out identical.
    ranking_bytes = (out / "ranking.json").read_bytes()
    assert len(list((out / "scores").glob("dir_*.json"))) == 12
    for k in (3, 7, 11):
        (out / "scores" / f"dir_{k:05d}.json").unlink()
    (out / "ranking.json").unlink()
    # (this rerun also overrides the pick: a person chose direction 8 from the sheets)
    r = run_cli("score", "--gan", f"{TOY}:build_planted_dark", "--directions", "coords",
                "--out", out, "--sheets", 0, "--pick", "--pick-direction", 8)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "reusing 9 directions" in r.stderr
    assert (out / "ranking.json").read_bytes() == ranking_bytes
    assert load_direction(out / "direction.json", 12).info["index"] == 8
    # other options that change the scores may not reuse that folder
    r = run_cli("score", "--gan", f"{TOY}:build_planted_dark", "--directions", "coords",
                "--out", out, "--steps", 50)  # fmt: skip
    assert r.returncode == 2 and "other options" in r.stderr


def test_cli_rejects_directions_of_the_wrong_latent_size(run_cli, tmp_path):
    bad = tmp_path / "dirs.pt"
    torch.save(torch.randn(4, 10), bad)  # the toy GAN's latent size is 12
    r = run_cli("score", "--gan", f"{TOY}:build_planted", "--directions", bad, "--out", tmp_path)
    assert r.returncode == 2
    assert "expected [K, 12]" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--directions", "missing.pt"], "does not exist"),
        (["--directions", "coords", "--shift", "0"], "--shift"),
        (["--directions", "coords", "--keep-top", "2"], "--keep-top"),
    ],
)
def test_cli_score_bad_input_exits_2(run_cli, tmp_path, args, needle):
    r = run_cli("score", "--gan", f"{TOY}:build_planted", "--out", tmp_path / "o", *args)
    assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists()


def test_cli_unknown_gan_exits_2(run_cli, tmp_path):
    r = run_cli("score", "--gan", "no.such.module:build", "--directions", "coords",
                "--out", tmp_path)  # fmt: skip
    assert r.returncode == 2 and "no.such.module" in r.stderr
