"""The experiment's report (toyworld.experiment, step 6): metrics.json per set, and what made
the shards."""

import json

import pytest

from segcore.cli import UsageError
from toyworld.report import assemble


def _eval(out, key, iou):
    d = out / "eval" / key
    d.mkdir(parents=True)
    doc = {"name": key.upper(), "max_fbeta": 0.9, "iou": iou, "accuracy": 0.95, "mae": 0.05}
    (d / "metrics.json").write_text(json.dumps({**doc, "n_images": 10, "other": 1}))


def test_report_holds_each_set_and_the_generator_settings(tmp_path):
    _eval(tmp_path, "world_test", 0.8)
    _eval(tmp_path, "weizmann_horse", 0.2)
    (tmp_path / "shards").mkdir()
    config = {
        "gan": "toyworld",
        "latents": "/secret/bucket/embeddings.npy",
        "alpha": 0.2,
        "mask": "affine",
        "min_fraction": 0.02,
        "shards": 8,
        "samples_per_shard": 500,
    }
    (tmp_path / "shards" / "config.json").write_text(json.dumps({"config": config}))
    (tmp_path / "shards" / "manifest.jsonl").write_text("")
    result = assemble(tmp_path)
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["world_test"]["iou"] == 0.8 and on_disk["weizmann_horse"]["iou"] == 0.2
    for key in ("world_test", "weizmann_horse"):
        assert set(on_disk[key]) == {"max_fbeta", "iou", "accuracy", "mae", "n_images", "name"}
    assert on_disk["generator"] == result["generator"]
    assert on_disk["generator"]["latents"] == "encoder embeddings"
    assert on_disk["generator"]["alpha"] == 0.2
    assert on_disk["generator"]["min_fraction"] == 0.02
    report = (tmp_path / "report.md").read_text()
    assert "encoder embeddings" in report and "alpha 0.2" in report
    assert "min_fraction 0.02" in report
    assert "secret" not in report and "secret" not in json.dumps(on_disk)
    assert on_disk["generator_manifest"] == "shards/manifest.jsonl"  # relative to OUT
    assert str(tmp_path) not in json.dumps(on_disk)


def test_prior_latents_have_no_alpha_and_missing_evals_are_an_error(tmp_path):
    with pytest.raises(UsageError, match="no finished evaluation"):
        assemble(tmp_path)
    _eval(tmp_path, "world_test", 0.8)
    (tmp_path / "shards").mkdir()
    config = {"gan": "toyworld", "latents": "prior", "alpha": 0.2, "mask": "affine"}
    (tmp_path / "shards" / "config.json").write_text(json.dumps({"config": config}))
    gen = assemble(tmp_path)["generator"]
    assert gen["latents"] == "prior N(0, I)" and gen["alpha"] is None
    assert gen["min_fraction"] == 0.0  # a config.json without min_fraction: no bound
    assert "alpha" not in (tmp_path / "report.md").read_text()


def test_a_malformed_generator_config_is_a_usage_error(tmp_path):
    _eval(tmp_path, "world_test", 0.8)
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "config.json").write_text("{not json")
    with pytest.raises(UsageError, match=r"not a generator config\.json"):
        assemble(tmp_path)
