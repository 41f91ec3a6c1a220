"""The experiment's self-training step: evaluation images are refused as targets, the demo's
budget, the trainer options it passes, and the report's rows and settings."""

import json
from pathlib import Path

import pytest

from segcore.cli import UsageError
from toyworld.experiment import ExperimentConfig, main
from toyworld.experiment_adapt import (
    SelfTraining,
    demo_options,
    demo_targets,
    refuse_evaluation_images,
)
from toyworld.report import assemble
from toyworld.world import write_folder


def test_targets_sharing_an_image_with_an_evaluation_set_are_refused(tmp_path):
    test = write_folder(tmp_path / "test", 4, seed=1)
    other = write_folder(tmp_path / "other", 4, seed=2)
    refuse_evaluation_images(other, [test])  # disjoint: accepted
    copy = tmp_path / "copy" / "images"
    copy.mkdir(parents=True)
    (copy / "renamed.png").write_bytes((test / "images" / "00002.png").read_bytes())
    with pytest.raises(UsageError, match=r"include 1 image\(s\) of the evaluation set") as err:
        refuse_evaluation_images(copy.parent, [test])
    assert "\n" not in str(err.value)
    with pytest.raises(UsageError, match=r"include 4 image\(s\)"):
        refuse_evaluation_images(test / "images", [test])


def test_the_driver_refuses_the_evaluation_set_as_self_training_images(tmp_path):
    out = tmp_path / "demo"
    write_folder(out / "world_test", 12)  # what the driver's step 1 makes with --test 12
    with pytest.raises(UsageError, match="include 12 image"):
        main([str(out), "--test", "12", "--adapt-images", str(out / "world_test")])
    assert not (out / "shards").exists(), "refused before any work"
    with pytest.raises(UsageError, match="no such folder"):
        main([str(out), "--test", "12", "--adapt-images", str(tmp_path / "absent")])
    cfg = ExperimentConfig(test=12, self_train=False)
    assert demo_targets(cfg, out, out / "world_test") is None


def test_demo_budget_and_trainer_options():
    assert demo_options(600) == SelfTraining(rounds=3, steps=200)
    assert demo_options(3) == SelfTraining(rounds=3, steps=1)
    assert SelfTraining().args(Path("t")) == ["--adapt-images", "t"]
    assert SelfTraining(rounds=2, margin=0.25).args(Path("t")) == [
        "--adapt-images", "t", "--adapt-rounds", "2", "--adapt-margin", "0.25",
    ]  # fmt: skip


def _eval(out, key, iou):
    d = out / "eval" / key
    d.mkdir(parents=True)
    doc = {"name": key, "max_fbeta": 0.9, "iou": iou, "accuracy": 0.95, "mae": 0.05}
    (d / "metrics.json").write_text(json.dumps({**doc, "n_images": 10}))


def test_report_shows_both_rows_and_the_self_training_settings(tmp_path):
    _eval(tmp_path, "world_test", 0.8)
    _eval(tmp_path, "world_test_self_trained", 0.85)
    (tmp_path / "unet_self").mkdir()
    config = {"adapt_images": "/secret/target", "adapt_rounds": 3, "adapt_steps": 200,
              "adapt_margin": 0.3, "adapt_keep": 0.8, "adapt_mix": 0.5, "steps": 600}  # fmt: skip
    (tmp_path / "unet_self" / "config.json").write_text(json.dumps({"config": config}))
    result = assemble(tmp_path)
    assert result["self_training"] == {
        "rounds": 3, "steps": 200, "margin": 0.3, "keep": 0.8, "mix": 0.5, "synthetic_steps": 600,
        "refine": "none", "jitter": 0.0, "schedule": "constant",  # not recorded: an older run
    }  # fmt: skip
    report = (tmp_path / "report.md").read_text()
    assert "| world_test | 10 | 0.900 | 0.800 |" in report
    assert "| world_test_self_trained | 10 | 0.900 | 0.850 |" in report
    assert "after its 600 synthetic steps for 3 rounds x 200 steps" in report
    config.update(adapt_refine="crf", adapt_jitter=0.4, adapt_schedule="cosine")
    (tmp_path / "unet_self" / "config.json").write_text(json.dumps({"config": config}))
    assemble(tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "label refinement crf, jitter 0.4, lr cosine within each round" in report
    assert "secret" not in report and "secret" not in (tmp_path / "metrics.json").read_text()
    (tmp_path / "unet_self" / "config.json").write_text(json.dumps({"config": {"steps": 1}}))
    with pytest.raises(UsageError, match="not a self-trained trainer config"):
        assemble(tmp_path)
