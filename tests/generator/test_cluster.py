"""A real multi-node Ray cluster on loopback: a head on 127.0.0.2 (no CPUs, so it runs no
actor) and two nodes of 1 CPU on 127.0.0.3 and 127.0.0.4, with Ray's token auth. The driver is
`python -m generator --address ray://...` (Ray Client: it needs no node of its own).

Facts this relies on (Ray 2.60): `ray start --address` refuses to join while
RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, and with it set 127.0.0.1 is replaced by the machine's
address, so every node binds another loopback address; each node gets its own ports. Every Ray
process is started in its own process group under a private RAY_TMPDIR and stopped by that
group (`ray stop` would stop every Ray process on the machine)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from generator.shard_maker import ShardMaker
from tests.generator.conftest import small_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HEAD, NODES = "127.0.0.2", ("127.0.0.3", "127.0.0.4")
OPTIONS = dict(gan="random", weights="resolution=32,width=8", filters=(), samples_per_shard=32)
SHARDS = 8


def _port(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def _node_ports(ip: str) -> list[str]:
    names = ("node-manager", "object-manager", "metrics-export", "dashboard-agent-listen")
    names += ("dashboard-agent-grpc", "runtime-env-agent")
    return [f"--{name}-port={_port(ip)}" for name in names]


def _stop(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture
def cluster(tmp_path):
    ray_tmp = tempfile.mkdtemp(prefix="rc", dir="/tmp")  # short: Ray's socket paths are limited
    token = tmp_path / "token"
    token.write_text(secrets.token_hex(32))
    env = {
        **os.environ,
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token),
        "RAY_TMPDIR": ray_tmp,
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    ray = str(Path(sys.executable).with_name("ray"))
    procs: dict[str, subprocess.Popen] = {}

    def start(name, args):
        log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - as long as the node
        procs[name] = subprocess.Popen(
            [ray, "start", "--block", "--disable-usage-stats", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    gcs, client = _port(HEAD), _port(HEAD)
    start(
        HEAD,
        [
            "--head",
            f"--node-ip-address={HEAD}",
            f"--port={gcs}",
            f"--ray-client-server-port={client}",
            "--num-cpus=0",
            "--include-dashboard=false",
            *_node_ports(HEAD),
        ],
    )
    _wait_for_port(HEAD, client, 90)
    for ip in NODES:
        join = [f"--address={HEAD}:{gcs}", f"--node-ip-address={ip}", "--num-cpus=1"]
        ports = _node_ports(ip)
        start(ip, [*join, *ports])
        _wait_for_port(ip, int(ports[0].split("=")[1]), 120)  # its raylet is up
    time.sleep(5)  # and registered with the head
    try:
        yield {"address": f"ray://{HEAD}:{client}", "env": env, "procs": procs}
    finally:
        for proc in reversed(procs.values()):
            _stop(proc)
        shutil.copytree(
            f"{ray_tmp}/ray/session_latest/logs", tmp_path / "ray_logs", dirs_exist_ok=True
        )
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _wait_for_port(ip: str, port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection((ip, port), 1).close()
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"nothing listens at {ip}:{port} after {timeout_s} s")


def test_node_lost_mid_run_and_more_workers_than_room(cluster, tmp_path):
    """--workers 3 on 2 CPUs starts with 2 actors; SIGKILL of one node's processes mid-run:
    its shards go to the live actor, the run finishes with the shards one process makes."""
    config, _ = small_config(shards=SHARDS, **OPTIONS)
    out = tmp_path / "run"
    args = ["--shards", str(SHARDS), "--gan", "random", "--weights", "resolution=32,width=8"]
    args += ["--filters", "none", "--samples-per-shard", "32", "--batch-size", "16"]
    args += ["--device", "cpu", "--workers", "3", "--out", str(out)]
    args += ["--address", cluster["address"]]
    driver = subprocess.Popen(
        [sys.executable, "-m", "generator", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cluster["env"],
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and driver.poll() is None:
        if len(list((out / "manifest").glob("shard-*.json"))) >= 1:
            break
        time.sleep(0.2)
    made_before_kill = len(list((out / "manifest").glob("shard-*.json")))
    os.killpg(cluster["procs"][NODES[1]].pid, signal.SIGKILL)  # the node is lost
    stdout, stderr = driver.communicate(timeout=600)
    assert driver.returncode == 0, stderr[-3000:]
    assert 1 <= made_before_kill < SHARDS
    assert "3 workers requested, the cluster has room for 2 now" in stdout
    saved = json.loads((out / "config.json").read_text())
    assert saved["config_hash"] == config.hash
    maker = ShardMaker(config)
    reference = {i: maker.make_shard(i, str(tmp_path / "ref"))["sha256"] for i in range(SHARDS)}
    lines = (out / "manifest.jsonl").read_text().splitlines()
    assert {r["index"]: r["sha256"] for r in map(json.loads, lines)} == reference
