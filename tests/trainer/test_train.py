"""End to end: training runs (one process in-process, and 2 ranks under torchrun with gloo,
on a temp dir and on the S3 fixture), exact resume, export, learning, bad input -> exit 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from segcore import modelfile, storage
from segcore.cli import UsageError
from tests.trainer.conftest import TINY
from trainer import checkpoint, data, shardlist
from trainer.__main__ import main
from trainer.unet import ProbabilityModel, UNet

REPO = Path(__file__).resolve().parents[2]


def weights(out) -> dict:
    return checkpoint.load(storage.join(str(out), checkpoint.CHECKPOINT))


def same_weights(a: dict, b: dict) -> bool:
    return a["model"].keys() == b["model"].keys() and all(
        torch.equal(a["model"][k], b["model"][k]) for k in a["model"]
    )


def torchrun(args: list[str], nproc: int = 2, timeout: int = 240):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={nproc}", "-m", "trainer", *args]  # fmt: skip
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    # Own process group: on a timeout the ranks are killed with torchrun, not left behind.
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def read_log(out) -> list[dict]:
    return [json.loads(line) for line in (Path(out) / "log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_single_process_learns_resumes_exactly_and_exports(shard_dir, tmp_path):
    _, pattern = shard_dir
    common = [*TINY, "--shards", pattern, "--workers", "2", "--log-every", "4",
              "--val-every", "12", "--ckpt-every", "5"]  # fmt: skip
    # Uninterrupted: 24 steps.
    assert main([*common, "--out", str(tmp_path / "a"), "--steps", "24"]) == 0
    # Interrupted at step 5 (odd: the worker interleaving must rotate), then resumed.
    assert main([*common, "--out", str(tmp_path / "b"), "--steps", "5"]) == 0
    # As if that attempt had logged step 7, then died before its next checkpoint.
    with (tmp_path / "b" / "log.jsonl").open("a") as f:
        f.write(json.dumps({"step": 7, "loss": 9.0}) + "\n")
    assert main([*common, "--out", str(tmp_path / "b"), "--steps", "24", "--resume"]) == 0
    a, b = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert a["step"] == b["step"] == 24
    assert same_weights(a, b), "resumed run must end bit-for-bit where the uninterrupted one did"
    assert a["ranks"][0]["positions"] == b["ranks"][0]["positions"]
    assert a["optimizer"]["state"][0]["exp_avg"].equal(b["optimizer"]["state"][0]["exp_avg"])

    # The resumed log holds each step once (the dead attempt's step 7 is gone).
    b_steps = [r["step"] for r in read_log(tmp_path / "b") if "loss" in r]
    assert b_steps == [4, 5, 8, 12, 16, 20, 24]

    # Learning on the easy set: training loss falls, validation improves on the hold-out.
    log = read_log(tmp_path / "a")
    train = [r for r in log if "loss" in r]
    val = [r for r in log if "val_iou" in r]
    assert [r["step"] for r in train] == [4, 8, 12, 16, 20, 24]
    assert train[-1]["loss"] < 0.8 * train[0]["loss"]
    assert [r["step"] for r in val] == [12, 24] and val[0]["val_n"] == 16
    assert val[-1]["val_max_fbeta"] > 0.8
    assert all(r["data_wait_frac"] >= 0 and r["images_per_s"] > 0 for r in train)
    assert list((tmp_path / "a" / "tb").glob("events.out.tfevents.*"))
    cfg = json.loads((tmp_path / "a" / "config.json").read_text())
    assert cfg["config"]["per_rank_batch"] == 8 and cfg["config"]["world_size"] == 1

    # Export: the model file reloads and gives the training model's probabilities.
    module, meta = modelfile.load_model(tmp_path / "a" / "model.pt2")
    assert (meta["resolution"], meta["loss"], meta["width"], meta["steps"]) == (32, "ce", 0.125, 24)
    net = UNet(0.125, "ce")
    net.load_state_dict(a["model"])
    ref = ProbabilityModel(net).eval()
    images, _, _ = data.load_holdout(shardlist.expand_shards(pattern)[-1:], 8, 32)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        torch.testing.assert_close(module(x), ref(x), rtol=0, atol=1e-6)
        wide = torch.rand(2, 3, 45, 70) * 2 - 1  # any size >= min_side, not only the training one
        torch.testing.assert_close(module(wide), ref(wide), rtol=0, atol=1e-6)


@pytest.mark.slow
@pytest.mark.integration
def test_torchrun_two_ranks_resume_exactly(shard_dir, tmp_path):
    _, pattern = shard_dir
    common = [*TINY, "--shards", pattern, "--workers", "1", "--log-every", "2",
              "--val-every", "100", "--ckpt-every", "3"]  # fmt: skip
    runs = [
        [*common, "--out", str(tmp_path / "a"), "--steps", "8"],
        [*common, "--out", str(tmp_path / "b"), "--steps", "3"],
        [*common, "--out", str(tmp_path / "b"), "--steps", "8", "--resume"],
    ]
    for args in runs:
        r = torchrun(args)
        assert r.returncode == 0, r.stderr[-3000:]
    a, b = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert a["config"]["world_size"] == 2 and a["config"]["per_rank_batch"] == 4
    assert len(a["ranks"]) == 2  # both ranks' RNG and stream positions, seeds offset by rank
    assert not torch.equal(a["ranks"][0]["rng"]["torch"], a["ranks"][1]["rng"]["torch"])
    assert same_weights(a, b)
    assert (tmp_path / "a" / "model.pt2").is_file() and (tmp_path / "a" / "model.json").is_file()
    # one run identity: config.json and the exported model's sidecar carry the same hash
    run_cfg = json.loads((tmp_path / "a" / "config.json").read_text())
    side = json.loads((tmp_path / "a" / "model.json").read_text())
    assert run_cfg["config_hash"] == side["config_hash"]
    # Rank 0 alone logs: one record per logging step, not two.
    steps = [r["step"] for r in read_log(tmp_path / "a") if "loss" in r]
    assert steps == [2, 4, 6, 8]


@pytest.mark.slow
@pytest.mark.integration
def test_torchrun_two_ranks_on_s3(shard_dir, s3_env):
    folder, _ = shard_dir
    prefix = f"s3://{s3_env.bucket}/trainer-test/run"
    for i in range(4):
        storage.put_file_atomic(folder / f"shard-00000{i}.tar", f"{prefix}/shard-00000{i}.tar")
    out = f"s3://{s3_env.bucket}/trainer-test/out"
    args = [*TINY, "--shards", f"{prefix}/shard-{{000000..000003}}.tar", "--out", out,
            "--steps", "4", "--workers", "1", "--log-every", "2", "--val-every", "4",
            "--val-shards", "3"]  # fmt: skip
    r = torchrun(args)
    assert r.returncode == 0, r.stderr[-3000:]
    names = storage.list_names(out)
    for name in ("checkpoint.pt", "config.json", "log.jsonl", "model.pt2", "model.json"):
        assert name in names
    ckpt = weights(out)
    assert ckpt["step"] == 4 and ckpt["config"]["val_shards"] == "3"
    log = [json.loads(x) for x in storage.read_bytes(f"{out}/log.jsonl").decode().splitlines()]
    assert [r["step"] for r in log if "val_iou" in r] == [4]
    for secret in (s3_env.secret_key, s3_env.access_key):
        assert secret not in r.stdout + r.stderr
        assert secret.encode() not in storage.read_bytes(f"{out}/config.json")


# ---- bad input: one line, exit 2 ---------------------------------------------------------


def test_bad_input_messages(shard_dir, tmp_path, monkeypatch):
    folder, pattern = shard_dir
    base = [*TINY, "--shards", pattern, "--steps", "2", "--workers", "0"]
    cases = [
        (
            [
                *base[:-6],
                "--shards",
                str(tmp_path / "x-{000000..000003}.tar"),
                "--out",
                str(tmp_path / "o"),
            ],
            "no shards match",
        ),
        ([*base, "--out", str(folder / "shard-000000.tar" / "sub")], "cannot write to --out"),
        ([*base, "--out", str(tmp_path / "o2"), "--resume"], "no checkpoint"),
        ([*base, "--out", str(tmp_path / "o3"), "--amp", "bf16", "--device", "cpu"], "CUDA"),
    ]
    for argv, message in cases:
        with pytest.raises(UsageError, match=message):
            main(argv)
    # World size that does not split the batch: the options are in the message.
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(UsageError, match=r"--batch-size 6 \(2 per rank\) or --batch-size 9"):
        main([*base, "--out", str(tmp_path / "o4")])
    with pytest.raises(UsageError, match="--batch-size 8 != --per-rank-batch 2 x 3"):
        main([*base, "--out", str(tmp_path / "o4"), "--per-rank-batch", "2"])


@pytest.mark.slow
def test_resume_guards(shard_dir, tmp_path):
    _, pattern = shard_dir
    base = [*TINY, "--shards", pattern, "--steps", "2", "--workers", "0", "--val-every", "9"]
    out = str(tmp_path / "o")
    assert main([*base, "--out", out]) == 0
    saved = (tmp_path / "o" / "config.json").read_bytes()
    with pytest.raises(UsageError, match=r"different config: lr: 0\.001 -> 0\.01; seed: 0 -> 1"):
        main([*base, "--out", out, "--resume", "--lr", "0.01", "--seed", "1"])
    with pytest.raises(UsageError, match=r"different config: lr: 0\.001 -> 0\.01"):
        main([*base, "--out", out, "--lr", "0.01"])  # without --resume: refused the same way
    with pytest.raises(UsageError, match="checkpoint is at step 2, beyond --steps 1"):
        main([*base, "--out", out, "--resume", "--steps", "1"])
    assert (tmp_path / "o" / "config.json").read_bytes() == saved  # refusals write nothing
    # Keys that do not shape the weights may change (here: train longer); the same command
    # again, with or without --resume, continues from the checkpoint.
    assert main([*base, "--out", out, "--resume", "--steps", "3"]) == 0
    assert weights(out)["step"] == 3
    assert main([*base, "--out", out, "--steps", "4"]) == 0
    assert weights(out)["step"] == 4
    assert json.loads((tmp_path / "o" / "config.json").read_text())["config"]["steps"] == 4


def test_auto_workers_are_recorded_and_a_resume_elsewhere_is_refused(
    shard_dir, tmp_path, monkeypatch
):
    from trainer import config

    _, pattern = shard_dir
    base = [*TINY, "--shards", pattern, "--steps", "2", "--val-every", "9"]
    out = str(tmp_path / "o")
    monkeypatch.setattr(config, "usable_cpus", lambda: 1)  # auto: no CPU to spare, 0 workers
    assert main([*base, "--out", out, "--workers", "auto"]) == 0
    saved = json.loads((tmp_path / "o" / "config.json").read_text())
    assert saved["config"]["workers"] == 0 and weights(out)["config"]["workers"] == 0
    assert saved["config"]["threads"] == 1 and weights(out)["config"]["threads"] == 1
    monkeypatch.setattr(config, "usable_cpus", lambda: 4)  # another machine: 1 worker, 3 threads
    with pytest.raises(
        UsageError,
        match=r"threads: 1 -> 3; workers: 0 -> 1 \(pass --workers 0 --threads 1, the run's numbers",
    ):
        main([*base, "--out", out, "--resume", "--steps", "3"])
    assert saved == json.loads((tmp_path / "o" / "config.json").read_text())  # refused: untouched
    with pytest.raises(UsageError, match=r"^[^\n]*threads: 1 -> 2 \(pass --threads 1"):
        main([*base, "--out", out, "--steps", "3", "--workers", "0", "--threads", "2"])
    argv = [*base, "--out", out, "--resume", "--steps", "3", "--workers", "0", "--threads", "1"]
    assert main(argv) == 0


def test_all_corrupt_shards_stop_with_a_clear_error(tmp_path):
    for i in range(3):
        (tmp_path / f"shard-00000{i}.tar").write_bytes(b"\0garbage" * 100)
    argv = [*TINY, "--shards", str(tmp_path / "shard-{000000..000002}.tar"), "--steps", "2",
            "--workers", "0", "--out", str(tmp_path / "o"), "--val-shards", "none"]  # fmt: skip
    with pytest.raises(UsageError, match="too much unreadable data"):
        main(argv)


def test_cli_exit_code_and_one_line(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainer",
            "--shards",
            str(tmp_path / "s-{0..3}.tar"),
            "--out",
            str(tmp_path / "o"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"trainer: error: --shards: no shards match (4 names expanded, none exist; "
        f"first: {tmp_path / 's-0.tar'})"
    ]


@pytest.mark.slow
def test_validation_on_real_images_uses_eval_protocol(shard_dir, shared_data, tmp_path):
    # Five Weizmann horses as an images/ + masks/ folder (eval.datasets.FolderPairs layout).
    real = tmp_path / "horses"
    for sub, ext in (("images", "jpg"), ("masks", "png")):
        (real / sub).mkdir(parents=True)
        for i in range(1, 6):
            name = f"horse{i:03d}.{ext}"
            (real / sub / name).write_bytes(
                (shared_data / "weizmann_horse" / sub / name).read_bytes()
            )
    out = tmp_path / "o"
    argv = [*TINY, "--shards", shard_dir[1], "--steps", "2", "--workers", "0",
            "--out", str(out), "--val-data", str(real)]  # fmt: skip
    assert main(argv) == 0
    logged = next(r for r in read_log(out) if "real_iou" in r)
    assert logged["real_n"] == 5
    # The same numbers from the exported file through eval's own Predictor: the trainer ran
    # the trained weights, in eval mode, at the training resolution.
    from eval.datasets import FolderPairs
    from eval.inference import Predictor
    from eval.metrics import SaliencyMetrics

    predictor = Predictor(out / "model.pt2", short_side=32)
    metrics = SaliencyMetrics()
    for item in FolderPairs(real):
        metrics.update(predictor.predict(item.image), item.mask)
    ref = metrics.compute()
    assert logged["real_max_fbeta"] == pytest.approx(ref["max_fbeta"], abs=1e-6)
    assert logged["real_iou"] == pytest.approx(ref["iou"], abs=1e-6)
    assert logged["real_accuracy"] == pytest.approx(ref["accuracy"], abs=1e-6)


@pytest.mark.integration
def test_torchrun_world_size_not_dividing_the_batch(shard_dir, tmp_path):
    r = torchrun([*TINY, "--batch-size", "7", "--shards", shard_dir[1], "--out", str(tmp_path)])
    assert r.returncode != 0
    line = ("trainer: error: global batch 7 does not split evenly over 2 ranks; use "
            "--batch-size 6 (3 per rank) or --batch-size 8 (4 per rank), or --per-rank-batch P "
            "(global P x 2)")  # fmt: skip
    assert r.stderr.count(line) == 2  # each rank says it once
    # No traceback through the trainer's code (torchrun prints its own ChildFailedError).
    assert str(REPO / "trainer") not in r.stderr
    assert not (tmp_path / "checkpoint.pt").exists()
