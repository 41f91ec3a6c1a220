"""Shared fixtures: the real data folder, and a real S3 server on loopback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests import s3server

# Ray: keep everything on loopback in tests.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
# an S3 client that no test pointed at a server (a Ray worker started before a test set the
# AWS_* variables, say) reaches a closed port on loopback, never a public endpoint, and never
# asks an instance-metadata service for credentials
os.environ.setdefault("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SEG_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (or $SEG_SHARED_DATA). Missing data is a failure, never a skip."""
    if not (SHARED_DATA / "weizmann_horse").is_dir():
        pytest.fail(
            f"real evaluation data not found at {SHARED_DATA} (expected weizmann_horse/, "
            "davis2016_val/, wsol_metadata/); set SEG_SHARED_DATA to its location"
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A running SeaweedFS S3 endpoint with one bucket; stopped at the end of the session."""
    server = s3server.start(tmp_path_factory.mktemp("s3"))
    yield server
    server.stop()


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    """Point s3fs at the test server through the AWS_* variables, as a user would."""
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    import fsspec

    fsspec.config.conf.pop("s3", None)
    # s3fs caches filesystem instances per argument set; drop them so the env is re-read.
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    return s3_server
