"""Discover and score read and write object storage (a real S3 server) like local folders."""

import json

import pytest
import torch

from generator.direction_file import load_direction
from generator.directions.cli import run_score
from generator.directions.config import DiscoverConfig, ScoreConfig
from generator.directions.discover import discover
from generator.directions.loading import load_directions
from segcore import storage
from segcore.cli import UsageError
from tests.directions.toy_gans import build_planted

TOY = "tests.directions.toy_gans"


@pytest.mark.integration
def test_discover_then_score_on_s3(s3_env):
    base = f"s3://{s3_env.bucket}/directions"
    cfg = DiscoverConfig(gan="toy", out=f"{base}/dirs.pt", k=12, steps=2, batch=4, width=2)
    dirs, _ = discover(build_planted(), cfg, progress=False)
    assert torch.allclose(load_directions(f"{base}/dirs.pt", 12), dirs, atol=1e-6)
    with pytest.raises(UsageError, match="--resume"):
        discover(build_planted(), cfg, progress=False)

    score = ScoreConfig(gan=f"{TOY}:build_planted", directions=f"{base}/dirs.pt",
                        out=f"{base}/score", pick=True, sheets=1, device="cpu")  # fmt: skip
    assert run_score(score) == 0
    names = storage.list_names(f"{base}/score")
    assert {"config.json", "direction.json", "ranking.json", "scores"} <= set(names)
    assert any(n.startswith("sheet_rank000_") for n in names)
    ranking = json.loads(storage.read_bytes(f"{base}/score/ranking.json"))
    assert len(ranking) == 12
    # the generator reads the picked direction straight from the object store
    assert (
        load_direction(f"{base}/score/direction.json", 12).info["index"] == ranking[0]["direction"]
    )
