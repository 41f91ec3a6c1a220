"""Runs on Ray (one shared in-process session with 2 CPUs and 2 logical GPUs): pinning,
worker-count independence, exact resume, a worker dying mid-shard, bounded retries."""

import json
import shutil

import pytest

from generator.ray_runner import GenerationFailed, RaySettings, actor_class
from generator.run import generate
from generator.shard_maker import ShardMaker
from segcore.cli import UsageError
from tests.generator.conftest import small_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SHARDS = 4


@pytest.fixture(scope="module")
def config():
    return small_config(shards=SHARDS)[0]


@pytest.fixture(scope="module")
def reference(config, tmp_path_factory):
    """sha256 of every shard made directly, one after another, by ONE in-process maker."""
    out = str(tmp_path_factory.mktemp("ref"))
    maker = ShardMaker(config)
    return {i: maker.make_shard(i, out)["sha256"] for i in range(SHARDS)}


@pytest.fixture(scope="module")
def full_run(config, ray_session, tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "run"
    records = generate(config, str(out), None, RaySettings(workers=2))
    return out, records


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _timeless(path):
    record = json.loads(path.read_text())
    record.pop("seconds")
    return record


def _jsonl_indices(folder):
    lines = (folder / "manifest.jsonl").read_text().splitlines()
    return [json.loads(line)["index"] for line in lines]


def test_actors_pinned_to_logical_gpus(config, ray_session):
    cls = actor_class(use_gpu=True)
    actors = [cls.remote(config, None, True) for _ in range(2)]
    info = ray_session.get([a.ready.remote() for a in actors])
    assert sorted(i["cuda_visible_devices"] for i in info) == ["0", "1"]
    assert {i["device"] for i in info} == {"cpu"}  # logical GPUs: no CUDA in this process
    for a in actors:
        ray_session.kill(a)


def test_two_workers_give_the_same_shards_as_one_process(full_run, reference):
    out, records = full_run
    assert {i: r["sha256"] for i, r in records.items()} == reference
    assert _jsonl_indices(out) == list(range(SHARDS))
    expected = ["config.json", "manifest.jsonl"]
    expected += [f"manifest/shard-{i:06d}.json" for i in range(SHARDS)]
    expected += [f"shard-{i:06d}.tar" for i in range(SHARDS)]
    assert _files(out) == sorted(expected)


def test_resume_after_interruption_is_exact(config, full_run, ray_session, tmp_path):
    full, _ = full_run
    run = tmp_path / "run"
    shutil.copytree(full, run)
    # an interrupted run: shard 2 uploaded but its record never written, shard 3 never made,
    # shard 1's tar damaged (size no longer the recorded one), no consolidated manifest yet
    (run / "manifest" / "shard-000002.json").unlink()
    (run / "shard-000003.tar").unlink()
    (run / "manifest" / "shard-000003.json").unlink()
    data = (run / "shard-000001.tar").read_bytes()
    (run / "shard-000001.tar").write_bytes(data[: len(data) // 2])
    (run / "manifest.jsonl").unlink()
    untouched = (run / "shard-000000.tar").stat().st_mtime_ns
    generate(config, str(run), None, RaySettings(workers=2))
    assert (run / "shard-000000.tar").stat().st_mtime_ns == untouched  # skipped, not redone
    assert _files(run) == _files(full)
    for name in _files(full):
        if name.endswith(".json") and name.startswith("manifest/"):
            # records match except the wall-clock time the shard took
            assert _timeless(run / name) == _timeless(full / name), name
        elif name != "manifest.jsonl":
            assert (run / name).read_bytes() == (full / name).read_bytes(), name
    assert _jsonl_indices(run) == list(range(SHARDS))


def test_worker_killed_mid_shard_every_shard_once(config, reference, ray_session, tmp_path):
    marker = tmp_path / "crashed"
    out = tmp_path / "run"
    records = generate(config, str(out), None, RaySettings(workers=2), crash_marker=str(marker))
    assert marker.exists()  # a worker really died mid-shard
    assert {i: r["sha256"] for i, r in records.items()} == reference
    assert _jsonl_indices(out) == list(range(SHARDS))
    assert len([f for f in _files(out) if f.endswith(".tar")]) == SHARDS


def test_failing_shards_are_retried_then_listed(ray_session, tmp_path):
    # every mask is rejected (fraction < 0 never holds) and one draw per sample is allowed
    config, _ = small_config(shards=2, max_fraction=0.0, max_draws_per_sample=1)
    out = tmp_path / "run"
    with pytest.raises(GenerationFailed, match=r"2 shard\(s\) failed after 2 tries: 0, 1"):
        generate(config, str(out), None, RaySettings(workers=2, max_tries=2))
    assert not list(out.glob("shard-*.tar")) and not list(out.glob("manifest/*"))


def test_different_config_on_existing_run_is_refused(full_run):
    out, _ = full_run
    before = {n: (out / n).read_bytes() for n in _files(out)}
    other, _ = small_config(shards=SHARDS, seed=1)
    # the message names what differs, so a changed default is easy to spot
    with pytest.raises(UsageError, match=r"different config \(seed: 0 -> 1\)"):
        generate(other, str(out), None, RaySettings(workers=1))
    assert {n: (out / n).read_bytes() for n in _files(out)} == before


def test_ray_run_gives_the_pinned_shards_with_a_bigger_actor(ray_session, tmp_path):
    """Through Ray (one actor with 2 CPUs, two shards at once) the shards are the pinned ones."""
    from tests.generator.test_shard_bytes import PINNED

    overrides, *expected = PINNED["random-default"]
    config, _ = small_config(shards=2, **overrides)
    settings = RaySettings(workers=1, cpus_per_worker=2)
    records = generate(config, str(tmp_path / "run"), None, settings)
    assert [records[i]["sha256"] for i in (0, 1)] == expected
    actor = actor_class(use_gpu=False, cpus_per_worker=2).remote(config, None, False, None, 2)
    assert ray_session.get(actor.ready.remote())["cpus_per_worker"] == 2
    ray_session.kill(actor)


def test_more_cpus_per_worker_than_a_node_has_is_refused(config, ray_session, tmp_path):
    with pytest.raises(UsageError, match="--cpus-per-worker 3: the largest GPU node has 2 CPUs"):
        generate(config, str(tmp_path / "run"), None, RaySettings(cpus_per_worker=3))
    with pytest.raises(UsageError, match="--cpus-per-worker must be >= 1, got 0"):
        generate(config, str(tmp_path / "run2"), None, RaySettings(cpus_per_worker=0))
    assert not (tmp_path / "run2").exists()


def test_a_ray_client_address_that_gives_no_answer_is_one_line(tmp_path):
    """ray:// to a port that accepts connections but is no Ray Client server (here a socket
    that never answers), and to a port where nothing listens: exit 2, one line, nothing
    written, well within 30 s (Ray Client itself would retry for ~30 s, then a traceback)."""
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel accepts; nothing ever reads or answers
        port = silent.getsockname()[1]
        for address, says in (
            (f"ray://127.0.0.1:{port}", "gives no gRPC answer within 5 s"),
            ("ray://127.0.0.1:1", "no Ray cluster answers at 127.0.0.1:1"),
        ):
            out = tmp_path / "run"
            args = ["--shards", "1", "--gan", "random", "--samples-per-shard", "2"]
            args += ["--out", str(out), "--address", address]
            t0 = time.monotonic()
            proc = subprocess.run(
                [sys.executable, "-m", "generator", *args],
                capture_output=True,
                text=True,
                timeout=120,
            )
            seconds = time.monotonic() - t0
            assert proc.returncode == 2, proc.stderr[-2000:]
            assert len(proc.stderr.strip().splitlines()) == 1 and says in proc.stderr
            assert not out.exists()
            assert seconds < 30
