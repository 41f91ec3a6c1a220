"""The direction tools on StyleGAN2 work in W: their z is drawn through the backend's prior
mapping (with --truncation); discover + score --pick run end to end on a small random-weights
checkpoint in rosinality/stylegan2-pytorch's layout."""

import json

import numpy as np
import pytest
import torch

from generator.direction_file import load_direction
from generator.directions.backend import sample_z
from generator.directions.score import DirectionScorer, FitSettings
from generator.gans.stylegan2 import build
from generator.gans.stylegan2_model import StyleGAN2Config, random_state_dict

TINY = StyleGAN2Config(resolution=32, style_dim=32, n_mlp=8, channels=(16, 16, 8, 8))


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("sg2") / "g.pt"
    torch.save({"g_ema": random_state_dict(TINY, seed=1), "latent_avg": torch.zeros(32)}, path)
    return path


def test_scorer_latents_are_mapped_and_truncated_prior_draws(weights):
    gan = build(str(weights))
    settings = FitSettings(steps=2, batch=2, eval_batch=2, seed=5, truncation=0.5)
    scorer = DirectionScorer(gan, settings)
    gen = torch.Generator().manual_seed(5)
    xi_fit, xi_eval = sample_z(4, 32, gen, "cpu"), sample_z(2, 32, gen, "cpu")
    with torch.no_grad():
        torch.testing.assert_close(scorer.z_fit, gan.map_prior(xi_fit, 0.5))
        torch.testing.assert_close(scorer.z_eval, gan.map_prior(xi_eval, 0.5))
    # latent_avg is zero here: psi 0.5 halves every w
    with torch.no_grad():
        torch.testing.assert_close(scorer.z_fit, 0.5 * gan.model.mapping(xi_fit))


@pytest.mark.slow
def test_discover_then_score_pick_end_to_end_in_w(run_cli, weights, tmp_path):
    dirs = tmp_path / "dirs.pt"
    common = ("--gan", "stylegan2", "--weights", weights, "--device", "cpu", "--truncation", 0.7)
    r = run_cli("discover", *common, "--out", dirs, "--k", 4, "--steps", 3, "--batch", 4,
                "--width", 8, "--log-every", 1)  # fmt: skip
    assert r.returncode == 0, r.stderr
    found = torch.load(dirs, weights_only=True)
    assert found.shape == (4, 32)
    torch.testing.assert_close(found @ found.T, torch.eye(4), atol=1e-4, rtol=0)
    assert json.loads((tmp_path / "dirs.pt.config.json").read_text())["config"]["truncation"] == 0.7

    out = tmp_path / "score"
    r = run_cli("score", *common, "--directions", dirs, "--out", out, "--steps", 4,
                "--batch", 2, "--eval-batch", 4, "--sheets", 1, "--sheet-images", 2, "--pick")  # fmt: skip
    assert r.returncode == 0, r.stderr
    ranking = json.loads((out / "ranking.json").read_text())
    assert sorted(e["direction"] for e in ranking) == [0, 1, 2, 3]
    assert json.loads((out / "config.json").read_text())["config"]["truncation"] == 0.7
    d = load_direction(out / "direction.json", 32)
    assert d.vector.shape == (32,) and d.operators.shape == (2, 3, 4)
    row = found[d.info["index"]].numpy()
    np.testing.assert_allclose(d.vector, d.info["sign"] * row / np.linalg.norm(row), atol=1e-6)
    assert len(list(out.glob("sheet_*.png"))) == 1


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, needle",
    [
        (("discover", "--gan", "stylegan2", "--weights", "WEIGHTS", "--k", 2, "--steps", 1,
          "--truncation", 0), "--truncation must be in (0, 1]"),
        (("optimize", "--gan", "random", "--truncation", 0.5), "needs a GAN with a prior mapping"),
    ],
)  # fmt: skip
def test_bad_truncation_is_one_line_exit_2(run_cli, weights, tmp_path, args, needle):
    args = [weights if a == "WEIGHTS" else a for a in args]
    r = run_cli(*args, "--out", tmp_path / "o")
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2 and len(lines) == 1 and needle in lines[0], r.stderr
    assert not (tmp_path / "o").exists()
