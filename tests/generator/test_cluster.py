"""A real multi-node Ray cluster on loopback (benchmarks/loopback.py): a head on 127.0.0.2 with no
CPUs, its dashboard and job server, and nodes of 1 CPU added and killed while a run goes on.
One cluster serves the whole module; each test brings it to the nodes it needs. The driver is
`python -m generator --address ray://...` (Ray Client: it needs no node of its own), or the
same command through `ray job submit ... --address auto`. Every run must end with the shards
that one in-process ShardMaker makes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.loopback import RayCluster, node_ip
from generator.shard_maker import ShardMaker
from tests.generator.conftest import small_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]

A, B = node_ip(0), node_ip(1)
OPTIONS = dict(gan="random", weights="resolution=32,width=8", filters=(), samples_per_shard=256)
MOST = 40  # the most shards a test here makes; shard i's bytes do not depend on --shards
ARGS = ["--gan", "random", "--weights", "resolution=32,width=8", "--filters", "none"]
ARGS += ["--samples-per-shard", "256", "--batch-size", "16", "--device", "cpu"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    ray_cluster = RayCluster(tmp_path_factory.mktemp("cluster"), dashboard=True)
    try:
        ray_cluster.add_node(A)
        yield ray_cluster
    finally:
        ray_cluster.stop()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """sha256 of shards 0..MOST-1 made one after another by ONE in-process maker."""
    config, _ = small_config(shards=MOST, **OPTIONS)
    maker = ShardMaker(config)
    out = str(tmp_path_factory.mktemp("ref"))
    return {i: maker.make_shard(i, out)["sha256"] for i in range(MOST)}


def _made(out: Path) -> int:
    return len(list((out / "manifest").glob("shard-*.json")))


def _start_driver(cluster: RayCluster, out: Path, shards: int, workers: int) -> subprocess.Popen:
    """The driver, its stdout and stderr in files next to `out` (read while it runs)."""
    args = [*ARGS, "--shards", str(shards), "--workers", str(workers), "--out", str(out)]
    with open(f"{out}.stdout", "w") as stdout, open(f"{out}.stderr", "w") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "generator", *args, "--address", cluster.address],
            stdout=stdout,
            stderr=stderr,
            env=cluster.env,
        )


def _said(out: Path) -> str:
    return Path(f"{out}.stdout").read_text()


def _finish(driver: subprocess.Popen, out: Path) -> str:
    """Wait for the driver; -> its stdout (its exit status checked)."""
    driver.wait(timeout=600)
    assert driver.returncode == 0, Path(f"{out}.stderr").read_text()[-3000:]
    return _said(out)


def _wait_for(driver: subprocess.Popen, out: Path, shards: int, line: str = "") -> None:
    """Until `shards` shard records exist and the driver has said `line`."""
    deadline = time.monotonic() + 300
    while driver.poll() is None and time.monotonic() < deadline:
        if _made(out) >= shards and line in _said(out):
            return
        time.sleep(0.2)


def _shas(out: Path) -> dict[int, str]:
    lines = (out / "manifest.jsonl").read_text().splitlines()
    return {r["index"]: r["sha256"] for r in map(json.loads, lines)}


def _per_node(stdout: str) -> dict[str, int]:
    """The driver's "shards made per node: IP N, IP N" line as {IP: N}."""
    line = re.search(r"shards made per node: (.*)", stdout).group(1)
    return {ip: int(n) for ip, n in (part.split() for part in line.split(", "))}


def test_a_node_joining_mid_run_gets_the_waiting_actor(cluster, reference, tmp_path):
    """--workers 2 with one 1-CPU node: the run starts on it; a second node joins while it
    goes, Ray places the waiting actor there, and it makes shards too."""
    for ip in [ip for ip in list(cluster.procs) if ip not in (A, "127.0.0.2")]:
        cluster.kill_node(ip)  # only A, whatever ran before
    if not cluster.alive(A):
        cluster.add_node(A)
    out = tmp_path / "run"
    driver = _start_driver(cluster, out, MOST, workers=2)
    _wait_for(driver, out, 0, f"worker ready on {A}")  # the run has started on A alone
    cluster.add_node(B)  # returns once the node is up (tens of seconds on a busy machine)
    made_when_joined = _made(out)
    stdout = _finish(driver, out)
    assert made_when_joined < MOST, "the run ended before the node joined: a busier machine"
    assert "2 workers requested, the cluster has room for 1 now" in stdout
    assert f"worker ready on {B}" in stdout
    per_node = _per_node(stdout)
    assert set(per_node) == {A, B} and per_node[B] >= 1, (made_when_joined, stdout)
    assert sum(per_node.values()) == MOST
    assert _shas(out) == reference


def test_a_node_lost_mid_run_and_more_workers_than_room(cluster, reference, tmp_path):
    """--workers 3 on 2 CPUs starts with 2 actors; SIGKILL of one node's processes mid-run:
    its shards go to the live actor, the run finishes with the shards one process makes."""
    for ip in (A, B):
        if not cluster.alive(ip):
            cluster.add_node(ip)
    # enough shards that the run cannot end between B's worker taking its first shard and the
    # kill (with 8, an idle machine finished them first and no loss was there to see)
    shards = MOST
    out = tmp_path / "run"
    driver = _start_driver(cluster, out, shards, workers=3)
    _wait_for(driver, out, 2, f"worker ready on {B}")  # B's actor has shards in flight
    made_before_kill = _made(out)
    cluster.kill_node(B)  # the node is lost
    stdout = _finish(driver, out)
    assert 1 <= made_before_kill < shards
    assert "3 workers requested, the cluster has room for 2 now" in stdout
    assert f"lost the worker on {B}" in stdout
    config, _ = small_config(shards=shards, **OPTIONS)
    assert json.loads((out / "config.json").read_text())["config_hash"] == config.hash
    assert _shas(out) == {i: reference[i] for i in range(shards)}


def test_ray_job_submit_with_address_auto(cluster, reference, tmp_path):
    """The manual's command, `ray job submit --address DASHBOARD -- python -m generator ...
    --address auto`, through the head's job server: the job succeeds with the same shards."""
    if not cluster.alive(A):
        cluster.add_node(A)
    out = tmp_path / "run"
    ray = str(Path(sys.executable).with_name("ray"))
    job = [ray, "job", "submit", "--address", cluster.dashboard_url, "--"]
    job += ["python", "-m", "generator", "--shards", "3", *ARGS, "--out", str(out)]
    job += ["--address", "auto"]
    proc = subprocess.run(job, capture_output=True, text=True, env=cluster.env, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "succeeded" in proc.stdout + proc.stderr
    assert _shas(out) == {i: reference[i] for i in range(3)}
