"""Voynov & Babenko discovery: learns to tell known factors apart, resumes exactly, and
refuses impossible setups with exit 2."""

import pytest
import torch

from generator.directions.config import DiscoverConfig
from generator.directions.deformator import OrthogonalDeformator
from generator.directions.discover import discover, sample_step
from generator.directions.loading import load_directions
from segcore.cli import UsageError
from tests.directions.toy_gans import build_factors

TOY = "tests.directions.toy_gans"


def test_deformator_is_orthogonal_and_starts_near_identity():
    deform = OrthogonalDeformator(10, 4, init_scale=1e-3)
    a = deform.matrix()
    assert torch.allclose(a @ a.T, torch.eye(10), atol=1e-5)
    assert torch.allclose(a, torch.eye(10), atol=1e-2)
    dirs = deform.directions()
    assert dirs.shape == (4, 10)
    code = torch.zeros(2, 4)
    code[0, 2], code[1, 0] = 3.0, -1.5
    shift = deform(code)
    assert torch.allclose(shift[0], 3.0 * dirs[2]) and torch.allclose(shift[1], -1.5 * dirs[0])
    with pytest.raises(ValueError):
        OrthogonalDeformator(10, 11)


def test_shift_magnitudes_follow_the_paper():
    cfg = DiscoverConfig(gan="x", out="", k=5, steps=1, batch=4096)
    _, k, eps = sample_step(cfg, 0, 8)
    assert eps.abs().min() >= 0.5 and eps.abs().max() <= 6.0
    assert (eps > 0).any() and (eps < 0).any()
    assert set(k.tolist()) == set(range(5))


@pytest.mark.slow
def test_reconstructor_learns_the_known_factors_well_above_chance():
    # 6 independent factors -> chance is 1/6; a width-8 reconstructor gets far above it.
    # lr 1e-3 (not the paper's 1e-4) only to keep the test to ~100 CPU steps.
    cfg = DiscoverConfig(gan="toy", out="", k=6, steps=120, width=8, lr=1e-3, log_every=40)
    dirs, history = discover(build_factors(), cfg, progress=False)
    assert history["step"] == [40, 80, 120]
    assert history["accuracy"][-1] >= 0.5, history
    assert dirs.shape == (6, 6)
    assert torch.allclose(dirs @ dirs.T, torch.eye(6), atol=1e-4)


@pytest.mark.slow
def test_resume_repeats_an_uninterrupted_run_exactly(tmp_path):
    backend = build_factors()
    common = {"gan": "toy", "k": 4, "width": 4, "log_every": 2, "ckpt_every": 2, "batch": 8}
    full, _ = discover(backend, DiscoverConfig(out=str(tmp_path / "a.pt"), steps=6, **common),
                       progress=False)  # fmt: skip
    out_b = str(tmp_path / "b.pt")
    discover(backend, DiscoverConfig(out=out_b, steps=3, **common), progress=False)
    part = load_directions(out_b, 6)
    assert not torch.equal(part, full)
    resumed, history = discover(
        backend, DiscoverConfig(out=out_b, steps=6, **common), resume=True, progress=False
    )
    assert torch.equal(resumed, full)
    assert history["step"] == [2, 3, 4, 6]  # the 3-step run logged its last step too
    # the written tensor, and the checkpoint, load with weights_only=True
    assert torch.equal(torch.load(out_b, weights_only=True), full)
    state = torch.load(out_b + ".ckpt", weights_only=True)
    assert state["step"] == 6 and torch.equal(state["directions"], full)


def test_cli_k_larger_than_latent_exits_2(run_cli, tmp_path):
    r = run_cli("discover", "--gan", f"{TOY}:build_factors", "--k", 7, "--steps", 1,
                "--out", tmp_path / "d.pt")  # fmt: skip
    assert r.returncode == 2 and "at most latent size = 6" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "d.pt").exists()


def test_cli_backend_without_gradients_exits_2(run_cli, tmp_path):
    r = run_cli("discover", "--gan", f"{TOY}:build_planted_frozen", "--k", 3, "--steps", 1,
                "--out", tmp_path / "d.pt")  # fmt: skip
    assert r.returncode == 2 and "not differentiable" in r.stderr


@pytest.mark.slow
def test_cli_discover_writes_refuses_overwrite_and_resumes(run_cli, tmp_path):
    out = tmp_path / "d.pt"
    args = ["discover", "--gan", f"{TOY}:build_factors", "--k", 3, "--out", out, "--width", 4,
            "--batch", 4]  # fmt: skip
    r = run_cli(*args, "--steps", 2)
    assert r.returncode == 0, r.stderr
    assert "accuracy" in r.stderr and load_directions(str(out), 6).shape == (3, 6)
    assert (tmp_path / "d.pt.ckpt").exists() and (tmp_path / "d.pt.config.json").exists()
    r = run_cli(*args, "--steps", 3)
    assert r.returncode == 2 and "--resume" in r.stderr
    assert torch.load(str(out) + ".ckpt", weights_only=True)["step"] == 2  # untouched


def test_resume_with_other_options_is_refused(tmp_path):
    common = {"gan": "toy", "k": 2, "width": 2, "batch": 2, "out": str(tmp_path / "d.pt")}
    discover(build_factors(), DiscoverConfig(steps=1, **common), progress=False)
    with pytest.raises(UsageError, match="other options"):
        discover(build_factors(), DiscoverConfig(steps=2, lr=0.5, **common), resume=True,
                 progress=False)  # fmt: skip
