"""Direct optimisation of a segmenting direction finds the planted one."""

import json

import numpy as np
import pytest
import torch

from generator.direction_file import load_direction
from generator.directions.config import OptimizeConfig
from generator.directions.optimize import area_penalty, optimize_direction
from generator.directions.pick import choose_sign
from tests.directions.toy_gans import PLANTED, build_planted, build_planted_dark, disk

TOY = "tests.directions.toy_gans"


def test_area_penalty_is_zero_inside_the_range_and_grows_outside():
    cfg = OptimizeConfig(gan="x", out="", area_min=0.1, area_max=0.5, temperature=1e-3)
    err = torch.zeros(1, 2, 10, 10)
    err[:, 1] = 1.0  # every pixel clearly prefers map 0 -> smaller class fraction 0
    assert abs(float(area_penalty(err, cfg)) - 0.1**2) < 1e-6
    err[:, 1, :3] = -1.0  # 30% of the pixels prefer map 1
    assert float(area_penalty(err, cfg)) == 0.0


@pytest.mark.slow
@pytest.mark.parametrize(("factory", "sign"), [(build_planted, 1), (build_planted_dark, -1)])
def test_optimize_finds_the_planted_direction_and_its_mask(factory, sign):
    backend = factory()
    cfg = OptimizeConfig(gan="toy", out="", steps=150, restarts=2, fit_steps=200)
    h, plus, scorer, report = optimize_direction(backend, cfg, progress=False)
    assert abs(float(h[PLANTED])) >= 0.9, h  # |cos(h, e_7)|, h is unit
    choice = choose_sign(scorer, h, plus=plus)
    assert float(choice["vector"][PLANTED]) * sign >= 0.9
    t = scorer.evaluate(choice["vector"], choice["pair"], tensors=True)["_tensors"]
    region = disk().expand_as(t["mask"])
    iou = float((t["mask"] & region).sum()) / float((t["mask"] | region).sum())
    assert iou >= 0.9
    assert len(report["restarts"]) == 2


@pytest.mark.slow
def test_cli_optimize_writes_a_direction_file(run_cli, tmp_path):
    out = tmp_path / "opt"
    r = run_cli("optimize", "--gan", f"{TOY}:build_planted", "--out", out, "--steps", 200,
                "--restarts", 1)  # fmt: skip
    assert r.returncode == 0, r.stderr
    d = load_direction(out / "direction.json", 12)
    assert d.vector[PLANTED] >= 0.9 and d.info["method"] == "optimize"
    assert d.operators.shape == (2, 3, 4) and d.bright_operator in (0, 1)
    assert np.isclose(np.linalg.norm(d.vector), 1.0)
    assert json.loads((out / "optimize.json").read_text())["best_restart"] == 0
    assert (out / "sheet.png").exists() and (out / "config.json").exists()


def test_cli_optimize_needs_gradients(run_cli, tmp_path):
    r = run_cli("optimize", "--gan", f"{TOY}:build_planted_frozen", "--out", tmp_path / "o")
    assert r.returncode == 2 and "not differentiable" in r.stderr
    assert not (tmp_path / "o").exists()


def test_cli_optimize_bad_area_range_exits_2(run_cli, tmp_path):
    r = run_cli("optimize", "--gan", f"{TOY}:build_planted", "--out", tmp_path / "o",
                "--area-min", "0.6", "--area-max", "0.5")  # fmt: skip
    assert r.returncode == 2 and "--area-min" in r.stderr


def test_optimize_init_of_the_wrong_latent_size_is_refused(tmp_path):
    from generator.direction_file import save_direction
    from generator.directions.optimize import run_optimize
    from segcore.cli import UsageError

    init = tmp_path / "d.json"
    save_direction(str(init), np.ones(10), gan="other", shift=5.0, index=0, sign=1)
    cfg = OptimizeConfig(gan=f"{TOY}:build_planted", out=str(tmp_path / "o"), init=str(init))
    with pytest.raises(UsageError, match=r"expected \(12,\)"):
        run_optimize(cfg)
    assert not (tmp_path / "o").exists()
