"""The foundation: storage (local and a real S3 server), configs, CLI entry points."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from segcore import config, storage


def test_local_atomic_write_and_list(tmp_path):
    url = str(tmp_path / "run" / "a.bin")
    storage.write_bytes_atomic(url, b"abc")
    assert storage.read_bytes(url) == b"abc"
    storage.write_bytes_atomic(url, b"xyz")
    assert storage.read_bytes(url) == b"xyz"
    # no temp files left behind
    assert storage.list_names(str(tmp_path / "run")) == ["a.bin"]


def test_put_file_atomic_local(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"payload")
    dest = tmp_path / "out" / "shard.tar"
    storage.put_file_atomic(src, str(dest))
    assert dest.read_bytes() == b"payload"
    assert storage.list_names(str(tmp_path / "out")) == ["shard.tar"]


def test_redact_drops_credentials():
    assert storage.redact("s3://key:secret@bucket/x") == "s3://bucket/x"
    assert storage.redact("s3://bucket/x") == "s3://bucket/x"


@pytest.mark.integration
def test_s3_round_trip(s3_env, tmp_path):
    url = f"s3://{s3_env.bucket}/smoke/obj.bin"
    assert storage.is_remote(url)
    assert not storage.exists(url)
    storage.write_bytes_atomic(url, b"hello s3")
    assert storage.exists(url)
    assert storage.read_bytes(url) == b"hello s3"
    local = tmp_path / "f.bin"
    local.write_bytes(b"second")
    storage.put_file_atomic(local, f"s3://{s3_env.bucket}/smoke/f.bin")
    assert storage.list_names(f"s3://{s3_env.bucket}/smoke") == ["f.bin", "obj.bin"]


@pytest.mark.integration
def test_s3_wrong_credentials_are_refused(s3_env, monkeypatch):
    import s3fs

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    s3fs.S3FileSystem.clear_instance_cache()
    with pytest.raises(PermissionError):
        storage.read_bytes(f"s3://{s3_env.bucket}/smoke/obj.bin")


@dataclasses.dataclass(frozen=True)
class _Cfg:
    a: int = 1
    b: str = "x"


def test_config_hash_and_unknown_keys():
    assert config.config_hash(_Cfg()) == config.config_hash(_Cfg(a=1))
    assert config.config_hash(_Cfg()) != config.config_hash(_Cfg(a=2))
    assert config.config_hash(_Cfg(), exclude=("a",)) == config.config_hash(
        _Cfg(a=2), exclude=("a",)
    )
    with pytest.raises(ValueError, match="unknown _Cfg keys: c"):
        config.from_dict(_Cfg, {"a": 1, "c": 3})


@pytest.mark.parametrize("pkg", ["generator", "trainer", "eval"])
def test_cli_help_exits_zero(pkg):
    out = subprocess.run(
        [sys.executable, "-m", pkg, "--help"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "usage" in out.stdout.lower()


def test_package_import_is_light():
    # docs/architecture.md: importing a stage never pulls in TensorFlow, Ray or torch by itself;
    # eval's metrics, datasets and reports stay torch-free too (torch only in eval.inference).
    code = (
        "import sys, segcore, generator, trainer, eval, segcore.schema, segcore.storage, "
        "eval.metrics, eval.datasets, eval.report; "
        "bad = [m for m in ('tensorflow', 'ray', 'torch') if m in sys.modules]; "
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, f"heavy modules imported at package import: {out.stdout}"


def test_atomic_writes_are_not_owner_only(tmp_path):
    # mkstemp's 0600 must not leak into published files (reports, shards are shared).
    url = str(tmp_path / "r.json")
    storage.write_bytes_atomic(url, b"{}")
    src = tmp_path / "s.bin"
    src.write_bytes(b"x")
    storage.put_file_atomic(src, str(tmp_path / "sub" / "s.bin"))
    for p in (tmp_path / "r.json", tmp_path / "sub" / "s.bin"):
        assert p.stat().st_mode & 0o044 == 0o044, oct(p.stat().st_mode)


def test_exported_model_round_trip_and_mode(tmp_path):
    import torch

    from segcore import modelfile

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 1, 3, padding=1), torch.nn.Sigmoid())
    path = modelfile.export_model(net, tmp_path / "model.pt2", {"resolution": 32}, (32, 32))
    module, meta = modelfile.load_model(tmp_path)
    x = torch.randn(1, 3, 40, 33)
    assert torch.allclose(module(x), net(x), atol=1e-6)
    assert meta["resolution"] == 32 and meta["format"] == modelfile.FORMAT
    for p in (path, modelfile.sidecar_path(path)):
        assert p.stat().st_mode & 0o044 == 0o044, (p, oct(p.stat().st_mode))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.pt2"]


def test_progress_bar_is_sparse_in_a_log_file(tmp_path):
    """Written to a file (a cluster log), a 1,000-step bar writes a handful of lines, not 1,000."""
    code = (
        "import time\n"
        "from segcore.progress import progress_bar\n"
        "for _ in progress_bar(range(1000), desc='x'):\n"
        "    time.sleep(0.002)\n"
    )
    log = tmp_path / "log.txt"
    with open(log, "w") as f:
        subprocess.run([sys.executable, "-c", code], stderr=f, check=True)
    redraws = log.read_text().count("\r") + log.read_text().count("\n")
    assert 1 <= redraws <= 5
    assert "1000/1000" in log.read_text()
