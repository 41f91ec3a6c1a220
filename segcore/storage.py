"""Local folders and object storage behind one small API, with atomic writes.

A URL is either a local path (`runs/x`, `/data/x`, `file:///data/x`) or any fsspec URL
(`s3://bucket/prefix`). S3 credentials and endpoint come from the usual AWS_* environment
variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3),
never from arguments, so they are never written into configs, manifests, logs or reports.

Atomicity: local files are written to a temp file in the same folder and renamed; remote
objects are uploaded in one PUT (`put_file` of a finished local file), so a reader sees either
nothing or the whole object.

Outages: `write_bytes_retrying` keeps the bytes and retries only the upload, with exponential
backoff, until a deadline; then `StoreUnavailable` names the endpoint (never credentials).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit, urlunsplit


def is_remote(url: str) -> bool:
    scheme = urlsplit(str(url)).scheme
    return scheme not in ("", "file") and len(scheme) > 1  # len>1: "C:" drive letters


def local_path(url: str) -> Path:
    """The filesystem path of a local URL (plain path or file://)."""
    parts = urlsplit(str(url))
    return Path(parts.path) if parts.scheme == "file" else Path(str(url))


def join(url: str, *names: str) -> str:
    if is_remote(url):
        return "/".join([str(url).rstrip("/"), *names])
    return str(local_path(url).joinpath(*names))


def redact(url: str) -> str:
    """Drop any user:password@ part of a URL before it is printed or stored."""
    parts = urlsplit(str(url))
    if parts.username or parts.password:
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return str(url)


def filesystem(url: str, quick: bool = False):
    """(fsspec filesystem, path inside it) for a remote URL. `quick`: for S3, one try per call
    with short connect timeouts (the caller retries; botocore would otherwise retry a dead
    endpoint for about 20 s per call)."""
    import fsspec

    opts = storage_options(url)
    if quick and urlsplit(str(url)).scheme in ("s3", "s3a"):
        opts["config_kwargs"] = {
            "connect_timeout": 5,
            "read_timeout": 60,
            "retries": {"max_attempts": 1},
        }
    fs, path = fsspec.core.url_to_fs(str(url), **opts)
    return fs, path


def endpoint(url: str) -> str:
    """Where a URL's bytes go, for messages: the S3 endpoint (AWS_ENDPOINT_URL_S3 /
    AWS_ENDPOINT_URL, redacted) or the URL's scheme://host; a local folder for a local URL."""
    if not is_remote(url):
        return str(local_path(url).parent)
    parts = urlsplit(str(url))
    if parts.scheme in ("s3", "s3a"):
        env = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        return redact(env) if env else "AWS S3 (no AWS_ENDPOINT_URL set)"
    return redact(urlunsplit((parts.scheme, parts.netloc, "", "", "")))


class StoreUnavailable(OSError):
    """The object store did not take a write before the deadline; the message names the
    endpoint and the object, on one line."""


RETRY_FIRST_WAIT = 0.5  # seconds before the second try; doubled after each failure
RETRY_MAX_WAIT = 30.0  # the longest wait between two tries


def storage_options(url: str) -> dict:
    scheme = urlsplit(str(url)).scheme
    if scheme in ("s3", "s3a"):
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        opts: dict = {}
        if endpoint:
            opts["client_kwargs"] = {"endpoint_url": endpoint}
        return opts
    return {}


def exists(url: str) -> bool:
    if is_remote(url):
        fs, path = filesystem(url)
        return fs.exists(path)
    return local_path(url).exists()


def read_bytes(url: str) -> bytes:
    if is_remote(url):
        fs, path = filesystem(url)
        return fs.cat_file(path)
    return local_path(url).read_bytes()


def _read_umask() -> int:
    # os.umask can only be read by setting it; do it once, at import, not per write
    # (setting it is process-wide and would race with other threads).
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# mkstemp creates files 0600; published files get the usual umask-derived mode instead.
_FILE_MODE = 0o666 & ~_read_umask()


def write_local_atomic(dest: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write through `write(file)` into a temp file beside `dest`, fsync, then rename (for
    writers that want a file object: torch.save, np.save)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(url: str, data: bytes) -> None:
    """Write `data` so that readers see either the old object, or all of the new one."""
    if is_remote(url):
        fs, path = filesystem(url)
        fs.pipe_file(path, data)  # one PUT
        return
    write_local_atomic(local_path(url), lambda f: f.write(data))


def write_bytes_retrying(url: str, data: bytes, deadline_s: float) -> None:
    """`write_bytes_atomic` that survives a store outage of up to `deadline_s` seconds: a remote
    write is retried (the bytes stay in memory) with exponential backoff from RETRY_FIRST_WAIT
    to RETRY_MAX_WAIT seconds; past the deadline, StoreUnavailable. A local write is tried once
    (a full or read-only disk does not heal by waiting)."""
    if not is_remote(url):
        write_bytes_atomic(url, data)
        return
    start = time.monotonic()
    wait, tries = RETRY_FIRST_WAIT, 0
    while True:
        tries += 1
        try:
            fs, path = filesystem(url, quick=True)
            fs.pipe_file(path, data)  # one PUT
            return
        except Exception as err:  # any client, network or auth error: retried, then reported
            left = deadline_s - (time.monotonic() - start)
            cause = first_line(err)
            if left <= 0:
                raise StoreUnavailable(
                    f"object store {endpoint(url)} did not take {redact(url)} in "
                    f"{deadline_s:g} s ({tries} tries): {cause}"
                ) from err
            if tries == 1:
                print(
                    f"storage: writing {redact(url)} failed ({cause}); retrying for up to "
                    f"{deadline_s:g} s",
                    file=sys.stderr,
                )
            time.sleep(min(wait, left))
            wait = min(2 * wait, RETRY_MAX_WAIT)


def first_line(err: BaseException) -> str:
    """An exception as one line: its first non-empty line, or its type's name."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    return lines[0] if lines else type(err).__name__


def put_file_atomic(local_file: str | Path, url: str) -> None:
    """Publish a finished local file at `url` in one step (rename locally, one upload remotely)."""
    local_file = Path(local_file)
    if is_remote(url):
        fs, path = filesystem(url)
        fs.put_file(str(local_file), path)
        return
    dest = local_path(url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if local_file.resolve().parent == dest.resolve().parent:
        # same folder: the finished file itself is made durable and renamed into place
        with open(local_file, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(local_file, _FILE_MODE)
        os.replace(local_file, dest)
        return
    with open(local_file, "rb") as src:
        write_local_atomic(dest, lambda f: shutil.copyfileobj(src, f, 1 << 20))


def list_names(url: str) -> list[str]:
    """Names (not paths) of the entries directly under a folder URL; [] if it does not exist."""
    if is_remote(url):
        fs, path = filesystem(url)
        if not fs.exists(path):
            return []
        return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(path, detail=False))
    path = local_path(url)
    return sorted(p.name for p in path.iterdir()) if path.is_dir() else []
