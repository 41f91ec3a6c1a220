"""scripts/gpu_check.sh: one JSON with every field, in the CPU smoke mode (so the script cannot
rot where no GPU is lent) and on a CPU machine in GPU mode, where every phase fails and says so
without stopping the others."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MACHINE = {"card", "gpus", "torch", "cuda", "cudnn", "cpus", "smoke", "device"}
TOP = MACHINE | {"port", "generator", "ratio", "trainer", "goals", "elapsed_s", "error"}
PORT = {"masks_per_s", "batch", "mode", "channels", "seconds", "error"}
GENERATOR = {"kept_per_s", "draws_per_s", "acceptance", "shards", "samples", "warmup_excluded",
             "seconds", "error"}  # fmt: skip
TRAINER = {"batch", "images_per_s", "data_wait_frac", "workers", "steps", "seconds", "error"}
GOALS = {"generator_ratio_ge_0.85", "trainer_data_wait_lt_0.05"}


def gpu_check(tmp_path: Path, **env) -> dict:
    run_env = {**os.environ, "PY": sys.executable, "GPU_CHECK_WORK": str(tmp_path / "w"), **env}
    r = subprocess.run(
        ["bash", str(REPO / "scripts" / "gpu_check.sh")],
        capture_output=True, text=True, env=run_env, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1, r.stdout[-2000:]  # ONE JSON object, nothing else on stdout
    report = json.loads(lines[0])
    assert set(report) == TOP
    assert set(report["port"]) == PORT and set(report["generator"]) == GENERATOR
    assert all(set(t) == TRAINER for t in report["trainer"])
    assert set(report["goals"]) == GOALS
    return report


@pytest.mark.slow
def test_smoke_mode_measures_every_phase(tmp_path):
    report = gpu_check(tmp_path, GPU_CHECK_SMOKE="1")
    assert report["smoke"] is True and report["device"] == "cpu" and report["error"] is None
    port, gen = report["port"], report["generator"]
    assert port["error"] is None and port["masks_per_s"] > 0 and port["channels"] == 8
    assert gen["error"] is None and gen["shards"] == 3 and gen["samples"] == 24
    assert gen["kept_per_s"] > 0 and 0 < gen["acceptance"] <= 1
    assert gen["draws_per_s"] == pytest.approx(gen["kept_per_s"] / gen["acceptance"])
    assert report["ratio"] == pytest.approx(gen["draws_per_s"] / port["masks_per_s"])
    assert [t["batch"] for t in report["trainer"]] == [4, 8]
    for t in report["trainer"]:
        assert t["error"] is None and t["images_per_s"] > 0 and 0 <= t["data_wait_frac"] < 1
        assert isinstance(t["workers"], int)  # --workers auto, resolved and recorded
    assert all(isinstance(v, bool) for v in report["goals"].values())


@pytest.mark.slow
def test_gpu_mode_without_a_gpu_reports_each_failure_and_still_prints(tmp_path):
    report = gpu_check(tmp_path, GPU_CHECK_TOTAL_S="200", CUDA_VISIBLE_DEVICES="")  # no GPU
    assert report["smoke"] is False and report["card"] is None
    assert "no CUDA device" in report["error"]
    assert "exit 2" in report["port"]["error"] and "exit 2" in report["generator"]["error"]
    assert [t["batch"] for t in report["trainer"]] == [95, 256]
    assert all("no shards" in t["error"] for t in report["trainer"])
    assert report["ratio"] is None and set(report["goals"].values()) == {None}
