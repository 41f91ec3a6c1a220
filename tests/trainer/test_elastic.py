"""Real torchrun launches on loopback: restarts under --max-restarts after a SIGKILLed rank end
with the weights of an uninterrupted run; 2 nodes x 1 process (c10d rendezvous) give the bits
of --standalone with 2 processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.trainer.conftest import TINY
from tests.trainer.test_train import REPO, same_weights, torchrun, weights

# Every launch gives the loader workers and torch threads explicitly: auto derives them from
# the ranks per node, which differ between the two layouts.
RUN = [*TINY, "--workers", "1", "--threads", "1", "--log-every", "1", "--val-every", "100"]


def launch_env() -> dict:
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo"}
    # torchrun sets OMP_NUM_THREADS=1 only for several processes per node; the trainer's own
    # --threads must make the layouts agree without it.
    env.pop("OMP_NUM_THREADS", None)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_pid(parent: int, rank: int) -> int | None:
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit():
                continue
            if int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) != parent:
                continue
            if f"RANK={rank}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                return int(proc.name)
        except (OSError, IndexError, ValueError):
            continue  # ended while it was read
    return None


def last_logged(out: Path) -> int:
    log = out / "log.jsonl"
    return len(log.read_text().splitlines()) if log.exists() else 0


def run_and_kill(args: list[str], kill_after_step: int, timeout: float = 300):
    """torchrun --max-restarts 1 with `args`; SIGKILL rank 1 once rank 0 logged that step.
    (exit code, stdout and stderr together)"""
    out = Path(args[args.index("--out") + 1])
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "--max-restarts=1", "-m", "trainer", *args]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, env=launch_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)  # fmt: skip
    killed, start = False, time.monotonic()
    try:
        while proc.poll() is None and time.monotonic() - start < timeout:
            if not killed and last_logged(out) >= kill_after_step:
                pid = rank_pid(proc.pid, 1)
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
                    killed = True
            time.sleep(0.05)
        assert proc.poll() is not None, "the restarted run did not end"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        output = proc.communicate()[0]
    assert killed
    return proc.returncode, output


@pytest.mark.slow
@pytest.mark.integration
def test_a_killed_rank_restarts_and_ends_bit_identical(shard_dir, tmp_path):
    base = [*RUN, "--shards", shard_dir[1], "--steps", "14", "--ckpt-every", "4"]
    r = torchrun([*base, "--out", str(tmp_path / "ref")])
    assert r.returncode == 0, r.stderr[-3000:]
    # Killed after the checkpoint at step 4: the restart continues from it, with no flag.
    rc, err = run_and_kill([*base, "--out", str(tmp_path / "a")], kill_after_step=6)
    assert rc == 0, err[-3000:]
    assert "continuing from step 4" in err or "continuing from step 8" in err
    # Killed before any checkpoint: the restart starts the same run afresh.
    fresh = [*base[:-1], "100", "--out", str(tmp_path / "b")]
    rc, err = run_and_kill(fresh, kill_after_step=2)
    assert rc == 0, err[-3000:]
    assert "continuing from" not in err
    ref = weights(tmp_path / "ref")
    assert same_weights(weights(tmp_path / "a"), ref)
    assert same_weights(weights(tmp_path / "b"), ref)


@pytest.mark.slow
@pytest.mark.integration
def test_two_nodes_of_one_process_give_the_bits_of_one_node_of_two(shard_dir, tmp_path):
    args = [*RUN, "--shards", shard_dir[1], "--steps", "6"]
    r = torchrun([*args, "--out", str(tmp_path / "standalone")])
    assert r.returncode == 0, r.stderr[-3000:]
    port = free_port()
    node = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
            "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=two-nodes",
            "-m", "trainer", *args, "--out", str(tmp_path / "nodes")]  # fmt: skip
    options = {"cwd": REPO, "env": launch_env(), "stdout": subprocess.DEVNULL,
               "stderr": subprocess.PIPE, "text": True, "start_new_session": True}  # fmt: skip
    nodes = [subprocess.Popen(node, **options) for _ in range(2)]
    try:
        errs = [node.communicate(timeout=300)[1] for node in nodes]
    finally:
        for node in nodes:
            if node.poll() is None:
                os.killpg(node.pid, signal.SIGKILL)
    assert [n.returncode for n in nodes] == [0, 0], "\n".join(e[-2000:] for e in errs)
    a, b = weights(tmp_path / "standalone"), weights(tmp_path / "nodes")
    assert a["config"]["world_size"] == b["config"]["world_size"] == 2
    assert same_weights(a, b)
