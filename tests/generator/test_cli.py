"""`python -m generator` as a user runs it: bad input -> one line, exit 2, nothing written."""

import os
import socket
import subprocess
import sys
import time
import types

import numpy as np
import pytest
import torch

from generator.run import resolve_direction
from segcore.cli import UsageError

pytestmark = pytest.mark.slow


def _run(args, env=None, cwd=None):
    return subprocess.Popen(
        [sys.executable, "-m", "generator", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


@pytest.fixture
def bad_inputs(tmp_path):
    np.save(tmp_path / "dir64.npy", np.ones(64, np.float32))
    np.save(tmp_path / "emb_bad.npy", np.ones((5, 7), np.float32))
    (tmp_path / "afile").write_text("x")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    return tmp_path


def test_bad_inputs_subprocess_one_line_exit_2(bad_inputs):
    """The real entry point (run_cli): one stderr line, exit 2, no traceback, nothing written."""
    tmp_path = bad_inputs
    out = str(tmp_path / "out")
    dead_s3 = {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "y",
    }
    cases = {
        "unknown GAN": (["--shards", "1", "--out", out, "--gan", "nope"], None),
        "--shards must be >= 1": (["--shards", "0", "--out", out, "--gan", "random"], None),
        "under a file": (
            ["--shards", "1", "--out", str(tmp_path / "afile" / "run"), "--gan", "random"],
            None,
        ),
        "cannot reach s3://b/run": (
            ["--shards", "1", "--out", "s3://b/run", "--gan", "random"],
            dead_s3,
        ),
        "--cpus-per-worker must be >= 1, got 0": (
            ["--shards", "1", "--out", out, "--gan", "random", "--cpus-per-worker", "0"],
            None,
        ),
        f"--cpus-per-worker 999: this machine has {os.cpu_count()} CPUs": (
            ["--shards", "1", "--out", out, "--gan", "random", "--cpus-per-worker", "999"],
            None,
        ),
    }
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        dead_ray = f"127.0.0.1:{s.getsockname()[1]}"
    nan_shift = tmp_path / "nan_shift.json"
    nan_shift.write_text(
        '{"format": "gan-objseg/direction/v1", "vector": [1.0], "shift": NaN}', "utf-8"
    )
    base = ["--shards", "1", "--out", out, "--gan", "random"]
    cases.update(
        {
            f"no Ray cluster answers at {dead_ray}": ([*base, "--address", dead_ray], None),
            "--shift must be a finite number > 0, got 0.0": ([*base, "--shift", "0"], None),
            "shift must be a finite number > 0, got nan": (
                [*base, "--direction", str(nan_shift)],
                None,
            ),
            "output /proc/x is not writable": (
                ["--shards", "1", "--out", "/proc/x", "--gan", "random"],
                None,
            ),
            "output /sys/x is not writable": (
                ["--shards", "1", "--out", "/sys/x", "--gan", "random"],
                None,
            ),
        }
    )
    if not torch.cuda.is_available():
        cases["--device cuda: CUDA is not available here"] = (
            ["--shards", "1", "--out", out, "--gan", "random", "--device", "cuda"],
            None,
        )
    procs = {msg: _run(args, env) for msg, (args, env) in cases.items()}
    for msg, proc in procs.items():
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 2, (msg, stderr)
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and msg in lines[0], (msg, stderr)
        assert "Traceback" not in stderr
    assert not os.path.exists(out)


@pytest.mark.parametrize(
    ("args", "msg"),
    [
        (["--direction", "missing.json"], "does not exist"),
        (["--direction", "{tmp}/dir64.npy"], "expected (120,)"),
        (["--latents", "{tmp}/emb_bad.npy"], "expected [N >= 1, 120]"),
        (["--latents", "{tmp}/none.npy"], "cannot read embeddings"),
        (["--mask", "affine"], "--mask affine needs"),
        (["--workers", "0"], "--workers must be >= 1"),
        (["--filters", "components,blur"], "unknown filter"),
        (["--min-fraction", "0.5"], "--min-fraction must be in [0, 0.5)"),
        (["--min-fraction", "-0.1"], "--min-fraction must be in [0, 0.5)"),
        (["--filters", "none", "--min-fraction", "0.02"], "which --filters leaves out"),
        (["--out", "{tmp}/foreign"], "no config.json"),
    ],
)
def test_bad_inputs_in_process(bad_inputs, args, msg):
    """The same `main` in-process (cheaper than a subprocess per case): a UsageError."""
    from generator.__main__ import main

    tmp = str(bad_inputs)
    argv = ["--shards", "1", "--out", f"{tmp}/out", "--gan", "random"]
    argv += [a.format(tmp=tmp) for a in args]
    with pytest.raises(UsageError) as info:
        main(argv)
    assert msg in str(info.value) and "\n" not in str(info.value)
    assert not os.path.exists(f"{tmp}/out")
    assert os.listdir(bad_inputs / "foreign") == ["notes.txt"]


def test_no_direction_and_no_default_is_refused():
    gan = types.SimpleNamespace(name="plain", latent_dim=4)
    with pytest.raises(UsageError, match="ships no default direction"):
        resolve_direction(gan, None)


@pytest.mark.integration
def test_dead_ray_address_is_named_within_30_s(tmp_path):
    """Alone (the cases above share two cores): a dead address is named, not waited on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    out = tmp_path / "run"
    started = time.monotonic()
    proc = _run(["--shards", "1", "--out", str(out), "--gan", "random", "--address", dead])
    _, stderr = proc.communicate(timeout=120)
    assert time.monotonic() - started < 30
    assert proc.returncode == 2 and stderr.strip().splitlines() == [
        f"python -m generator: error: no Ray cluster answers at {dead} (--address {dead}): "
        "Connection refused"
    ]
    assert not out.exists()


def test_cli_run_resume_and_refusal(tmp_path):
    out = str(tmp_path / "run")
    base = ["--shards", "2", "--samples-per-shard", "2", "--out", out, "--workers", "1"]
    base += ["--gan", "random", "--weights", "resolution=32,width=8", "--filters", "none"]
    base += ["--batch-size", "4"]
    first = _run(base)
    stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert "2 shards, 4 samples from 4 draws" in stdout
    names = sorted(os.listdir(out))
    assert names == [
        "config.json",
        "manifest",
        "manifest.jsonl",
        "shard-000000.tar",
        "shard-000001.tar",
    ]
    again = _run(base)  # same command: everything finished, nothing to do (Ray not started)
    stdout, stderr = again.communicate(timeout=120)
    assert again.returncode == 0, stderr
    assert "2 shard(s) already finished, 0 to make" in stdout
    other = _run([*base, "--seed", "7"])
    stdout, stderr = other.communicate(timeout=120)
    assert other.returncode == 2 and "different config" in stderr
    assert "different config (seed: 0 -> 7)" in stderr


@pytest.mark.integration
def test_cli_run_to_s3(s3_env):
    """The product path: CLI -> Ray actors -> shards uploaded to a real S3 server."""
    import io

    import pyarrow.json as paj

    from generator.manifest import finished_records
    from generator.shards import read_shard
    from segcore import storage

    out = f"s3://{s3_env.bucket}/cli/run1"
    args = ["--shards", "2", "--samples-per-shard", "2", "--out", out, "--workers", "1"]
    args += ["--gan", "random", "--weights", "resolution=32,width=8", "--filters", "none"]
    args += ["--batch-size", "4"]
    proc = _run(args, env=s3_env.env())
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert s3_env.env()["AWS_SECRET_ACCESS_KEY"] not in stdout + stderr
    records = finished_records(out)
    assert sorted(records) == [0, 1]
    table = paj.read_json(io.BytesIO(storage.read_bytes(f"{out}/manifest.jsonl")))
    assert table.column("index").to_pylist() == [0, 1]
    samples = read_shard(f"{out}/shard-000001.tar")
    assert [s["__key__"] for s in samples] == ["000001_000000", "000001_000001"]
