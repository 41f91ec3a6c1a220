"""Local folders and object storage behind one small API, with atomic writes.

A URL is either a local path (`runs/x`, `/data/x`, `file:///data/x`) or any fsspec URL
(`s3://bucket/prefix`). S3 credentials and endpoint come from the usual AWS_* environment
variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3),
never from arguments, so they are never written into configs, manifests, logs or reports.

Atomicity: local files are written to a temp file in the same folder and renamed; remote
objects are uploaded in one PUT (`put_file` of a finished local file), so a reader sees either
nothing or the whole object.
"""

from __future__ import annotations

import os
import shutil
import tempfile
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


def filesystem(url: str):
    """(fsspec filesystem, path inside it) for a remote URL."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(str(url), **storage_options(url))
    return fs, path


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
