"""Faults the generator survives: a store outage (a real SeaweedFS server on 127.0.0.1, stopped
and restarted) costs no GAN work twice; a store down past the deadline, an unwritable manifest
and a dead Ray address fail in one line; the shard queue is lazy; more workers than the
cluster has room for still start."""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Iterator

import pytest

from generator.manifest import open_run, record_url
from generator.ray_runner import GenerationFailed, RaySettings, run_shards
from generator.run import generate, missing
from generator.shard_maker import ShardMaker
from segcore import storage
from segcore.cli import UsageError
from tests import s3server
from tests.generator.conftest import small_config
from tests.generator.test_shard_bytes import PINNED

OVERRIDES, *PINNED_SHA = PINNED["random-default"]


class Counting:
    """A GAN wrapper counting the forwards (the GAN work of a shard)."""

    def __init__(self, gan):
        self.gan, self.calls = gan, 0
        self.latent_dim, self.device = gan.latent_dim, gan.device

    def generate(self, z):
        self.calls += 1
        return self.gan.generate(z)


@pytest.fixture(scope="module")
def own_s3(tmp_path_factory):
    """A store of this module's own, so stopping it does not disturb the session's."""
    server = s3server.start(tmp_path_factory.mktemp("s3own"))
    yield server
    server.stop()


@pytest.fixture
def store(own_s3, monkeypatch):
    for key, value in own_s3.env().items():
        monkeypatch.setenv(key, value)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    if own_s3.process.poll() is not None:
        own_s3.restart()
    return own_s3


def _maker():
    from generator.gans import load_gan

    config, _ = small_config(shards=2, **OVERRIDES)
    gan = Counting(load_gan(config.gan, config.weights))
    return ShardMaker(config, gan=gan, upload_deadline=60), gan


@pytest.mark.slow
def test_store_outage_retries_only_the_upload(store, tmp_path):
    maker, gan = _maker()
    maker.make_shard(0, str(tmp_path))  # the GAN work of shard 0 without an outage
    forwards = gan.calls
    gan.calls = 0
    out = f"s3://{store.bucket}/outage"
    store.stop()
    result = {}
    worker = threading.Thread(target=lambda: result.update(maker.make_shard(0, out)))
    worker.start()
    time.sleep(3)  # the shard is rendered and its upload fails meanwhile
    assert worker.is_alive() and gan.calls == forwards
    store.restart()
    worker.join(timeout=90)
    assert not worker.is_alive()
    assert gan.calls == forwards  # the outage cost no GAN work
    assert result["sha256"] == PINNED_SHA[0]
    data = storage.read_bytes(f"{out}/shard-000000.tar")
    assert hashlib.sha256(data).hexdigest() == PINNED_SHA[0]
    assert storage.exists(record_url(out, 0))


@pytest.mark.slow
def test_store_down_past_the_deadline_is_one_line_naming_the_endpoint(store):
    maker, _ = _maker()
    maker.upload_deadline = 1.0
    out = f"s3://{store.bucket}/down"
    store.stop()
    with pytest.raises(storage.StoreUnavailable) as info:
        maker.make_shard(0, out)
    message = str(info.value)
    assert len(message.splitlines()) == 1
    assert store.endpoint in message and f"{out}/shard-000000.tar" in message
    assert store.secret_key not in message and store.access_key not in message


@pytest.mark.slow
def test_store_lost_after_the_probe_is_one_line(store, tmp_path, monkeypatch):
    """The store dies between the reachability probe and the run's first read."""
    import generator.run

    config, _ = small_config(shards=1, **OVERRIDES)
    out = f"s3://{store.bucket}/lost"
    store.stop()
    monkeypatch.setattr(generator.run, "_probe_remote", lambda url: None)
    with pytest.raises(
        GenerationFailed, match=re.escape(f"cannot read the run at {out}: ")
    ) as info:
        generate(config, out, None, RaySettings(workers=1, upload_deadline=0.5))
    assert len(str(info.value).splitlines()) == 1 and store.secret_key not in str(info.value)


def test_unwritable_config_json_is_one_line(tmp_path):
    config, _ = small_config(shards=1, **OVERRIDES)
    (tmp_path / "afile").write_text("x")
    out = str(tmp_path / "afile" / "run")
    with pytest.raises(UsageError, match=re.escape(f"cannot write {out}/config.json: ")):
        open_run(out, config)


@pytest.mark.slow
@pytest.mark.integration
def test_store_down_mid_run_fails_then_a_rerun_finishes(store, ray_session, monkeypatch):
    import generator.ray_runner as runner

    plain = runner.actor_class
    # the session's Ray workers started before this store existed: hand the actors its AWS_*
    # variables (on a cluster they come from the nodes or the job's runtime_env)
    monkeypatch.setattr(
        runner,
        "actor_class",
        lambda *a: plain(*a).options(runtime_env={"env_vars": store.env()}),
    )
    config, _ = small_config(shards=2, **OVERRIDES)
    out = f"s3://{store.bucket}/midrun"
    open_run(out, config)  # the run has started: config.json is written
    store.stop()
    settings = RaySettings(workers=1, upload_deadline=1.0)
    with pytest.raises(
        GenerationFailed, match=re.escape(f"object store {store.endpoint} did not take")
    ):
        run_shards(config, out, missing(2, {}), 2, None, settings)
    store.restart()
    records = generate(config, out, None, RaySettings(workers=1))
    assert [records[i]["sha256"] for i in (0, 1)] == PINNED_SHA


def test_unwritable_manifest_jsonl_is_one_line(tmp_path):
    config, _ = small_config(shards=1, **OVERRIDES)
    out = str(tmp_path / "run")
    open_run(out, config)
    ShardMaker(config).make_shard(0, out)
    (tmp_path / "run" / "manifest.jsonl").mkdir()  # the consolidation cannot replace it
    with pytest.raises(GenerationFailed, match=r"manifest\.jsonl could not be written") as info:
        generate(config, out, None, RaySettings(workers=1))  # every shard done: no Ray
    assert len(str(info.value).splitlines()) == 1


def test_a_killed_writers_temp_files_are_removed_by_the_next_run(tmp_path):
    config, _ = small_config(shards=1, **OVERRIDES)
    out = tmp_path / "run"
    open_run(str(out), config)
    (out / "manifest").mkdir()
    stale = [out / ".shard-000000.tar.abc123.tmp", out / "manifest" / ".shard-000000.json.x.tmp"]
    for path in stale:
        path.write_bytes(b"half")
    keep = out / "notes.tmp"  # not a temp file of ours (no leading dot)
    keep.write_text("x")
    assert open_run(str(out), config) == {}
    assert [p.exists() for p in stale] == [False, False] and keep.exists()


def test_the_shard_queue_is_lazy():
    todo = missing(10**15, {1: {}, 3: {}})  # a list of every index would not fit in memory
    assert isinstance(todo, Iterator)
    assert [next(todo) for _ in range(4)] == [0, 2, 4, 5]
    assert list(missing(6, {1: {}, 3: {}, 9: {}})) == [0, 2, 4, 5]


@pytest.mark.slow
@pytest.mark.integration
def test_more_workers_than_room_start_with_what_fits(ray_session, tmp_path, capsys):
    """3 GPU actors on a cluster with 2 (logical) GPUs: the third is never placed, and the
    run does not wait for it."""
    config, _ = small_config(shards=3, **OVERRIDES)
    records = generate(config, str(tmp_path / "run"), None, RaySettings(workers=3))
    assert [records[i]["sha256"] for i in (0, 1)] == PINNED_SHA
    assert records[2]["sha256"] == ShardMaker(config).make_shard(2, str(tmp_path / "ref"))["sha256"]
    said = capsys.readouterr().out
    assert "3 workers requested, the cluster has room for 2 now; starting with those" in said


@pytest.mark.slow
@pytest.mark.integration
def test_in_process_ray_does_not_join_a_dead_recorded_cluster(tmp_path):
    """Ray records the cluster last started on a machine; a dead one there must not make the
    in-process run (no --address) wait for it."""
    import os
    import shutil
    import socket
    import subprocess
    import sys
    import tempfile

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    ray_tmp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths are limited
    try:
        os.makedirs(f"{ray_tmp}/ray")
        with open(f"{ray_tmp}/ray/ray_current_cluster", "w") as f:
            f.write(dead)
        out = tmp_path / "run"
        args = ["--shards", "1", "--samples-per-shard", "2", "--out", str(out), "--workers", "1"]
        args += ["--gan", "random", "--weights", "resolution=32,width=8", "--filters", "none"]
        proc = subprocess.run(
            [sys.executable, "-m", "generator", *args],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "RAY_TMPDIR": ray_tmp},
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert (out / "shard-000000.tar").exists()
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
