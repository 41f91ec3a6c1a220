"""Fixtures for the trainer tests: tiny shards in a temp dir (32x32, 16 samples each)."""

from __future__ import annotations

import pytest

from tests.trainer.shards import write_run

SIZE = 32
PER_SHARD = 16


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shards")
    pattern = write_run(folder, n_shards=4, per_shard=PER_SHARD, size=SIZE)
    return folder, pattern


# Options shared by every tiny run: ~0.2 M params, 32 px, 8 images a step.
TINY = ["--width", "0.125", "--resolution", "32", "--batch-size", "8"]


@pytest.fixture(autouse=True)
def one_torch_thread():
    """In-process runs use one intra-op thread: on the 2-core CI box, 2 threads next to
    DataLoader workers oversubscribe it and a tiny step gets ~7x slower (measured)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
