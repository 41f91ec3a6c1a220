import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one thread is faster, and the CI machine is shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def run_cli():
    """Run `python -m generator.directions ARGS` from the repo root; returns CompletedProcess."""

    def run(*args, timeout=300):
        return subprocess.run(
            [sys.executable, "-m", "generator.directions", *map(str, args)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )

    return run
