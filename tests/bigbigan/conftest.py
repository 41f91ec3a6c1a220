"""Session fixtures for the BigBiGAN tests: TF-Hub modules are built once (TF graphs are slow)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable


def run_cli(*args: str, env: dict | None = None, timeout: float = 300):
    """Run `python <args>` from the repo root; returns the CompletedProcess."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run(
        [PY, *args], cwd=REPO, capture_output=True, text=True, env=full_env, timeout=timeout
    )


def error_lines(stderr: str) -> list[str]:
    """stderr lines that are ours (TF/absl/hub print warnings on import)."""
    return [
        line for line in stderr.splitlines() if line.startswith("python -m ") or ": error:" in line
    ]


@pytest.fixture(scope="session")
def hub_module(tmp_path_factory):
    """(path, generator variable values) of a reduced-width (ch=4) BigBiGAN look-alike."""
    from tests.bigbigan.hub_fixture import build_module

    path = tmp_path_factory.mktemp("hub") / "bigbigan_ch4"
    values = build_module(path, ch=4, seed=0)
    return path, values


@pytest.fixture(scope="session")
def hub_backend(hub_module):
    from generator.gans.bigbigan_hub import build

    return build(str(hub_module[0]), device="cpu")


@pytest.fixture(scope="session")
def converted(hub_module, tmp_path_factory):
    """The fixture module converted by the real CLI (`python -m generator.convert`)."""
    out = tmp_path_factory.mktemp("conv") / "G.pth"
    proc = run_cli(
        "-m", "generator.convert", "bigbigan", "--hub", str(hub_module[0]), "--out", str(out)
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out
