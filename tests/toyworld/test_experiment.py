"""The experiment driver behind `make demo` and the world benchmark: its options, the stage
commands it runs, its options record, and one tiny run end to end that a rerun resumes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from segcore.cli import UsageError
from toyworld.experiment import ExperimentConfig, build_parser, main
from toyworld.experiment_record import check_options, read_options

ROOT = Path(__file__).resolve().parents[2]


def test_help_shows_every_default(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for default in ("(default: 1000)", "(default: prior)", "(default: 0.02)", "(default: 600)"):
        assert default in text
    assert text.count("(default:") == len(ExperimentConfig.__dataclass_fields__)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--weights", "w.pt"], "--weights needs --direction"),
        (["--latents", "posterior"], "invalid choice"),
        (["--shards", "0"], "--shards must be >= 1"),
        (["--min-fraction", "nan"], "min-fraction"),
    ],
)
def test_bad_options_are_one_line_usage_errors(argv, message):
    with pytest.raises(UsageError, match=message):
        main(["out", *argv])


def test_the_demo_defaults_run_the_documented_stage_commands():
    """`make demo`'s generator and trainer commands: the generator's defaults for seed and mask
    are passed explicitly, which leaves its config (and so the shards) as they are."""
    cfg = ExperimentConfig()
    gen = cfg.generation().command(Path("runs/demo/shards"))
    assert gen[0] == sys.executable and gen[1:3] == ["-m", "generator"]
    assert gen[3:] == [
        "--gan", "toyworld", "--shards", "8", "--samples-per-shard", "500",
        "--out", "runs/demo/shards", "--workers", "2", "--device", "cpu",
        "--mask", "auto", "--min-fraction", "0.02", "--seed", "0",
    ]  # fmt: skip
    adapted = cfg.generation(Path("e.npy")).command(Path("s"))
    assert adapted[-4:] == ["--latents", "e.npy", "--alpha", "0.2"]
    train = cfg.training().command("s/shard-{000000..000007}.tar", Path("u"), resume=True)
    assert train == [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "trainer", "--shards", "s/shard-{000000..000007}.tar", "--out", "u",
        "--resolution", "32", "--width", "0.25", "--batch-size", "32", "--steps", "600",
        "--workers", "0", "--log-every", "50", "--seed", "0", "--resume",
    ]  # fmt: skip
    bench = ExperimentConfig(lr_drop_step=8000, log_every=100, seed=3).training()
    assert "--lr-drop-step 8000 --workers 0 --log-every 100 --seed 3" in " ".join(
        bench.command("p", Path("u"), resume=False)
    )


def test_options_record_refuses_other_options_and_unrecorded_folders(tmp_path):
    out = tmp_path / "bench"
    check_options(out, {"layout": 2, "steps": 600, "min_fraction": 0.02})
    check_options(out, {"layout": 2, "steps": 600, "min_fraction": 0.02})  # same: a resume
    with pytest.raises(UsageError, match=r"steps: 600 -> 700.*use a new --out"):
        check_options(out, {"layout": 2, "steps": 700, "min_fraction": 0.02})
    with pytest.raises(UsageError, match=r"layout: 2 -> 3"):
        check_options(out, {"layout": 3, "steps": 600, "min_fraction": 0.02})
    (out / "options.json").write_text(json.dumps({"layout": 2, "steps": 600}))
    assert read_options(out)["min_fraction"] == 0.0  # a record without it: no lower bound
    other = tmp_path / "other"
    other.mkdir()
    (other / "results.json").write_text("{}")
    with pytest.raises(UsageError, match=r"not empty and has no options\.json"):
        check_options(other, {"layout": 2})


TINY = [
    "--test", "12", "--latents", "embeddings", "--embed-images", "16", "--shards", "2",
    "--samples-per-shard", "16", "--steps", "3", "--batch-size", "8", "--log-every", "1",
]  # fmt: skip


def _drive(out: Path, *extra: str) -> str:
    cmd = [sys.executable, "-m", "toyworld.experiment", str(out), *TINY, *extra]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
@pytest.mark.integration
def test_driver_runs_generate_train_eval_report_and_a_rerun_resumes(tmp_path):
    out = tmp_path / "demo"
    first = _drive(out, "--horses", str(tmp_path / "no_horses"))
    for stage in ("-m generator.embed", "-m generator ", "-m torch.distributed.run", "-m eval"):
        assert stage in first
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_test"]["n_images"] == 12
    assert 0.0 <= metrics["world_test"]["iou"] <= 1.0
    gen = metrics["generator"]
    assert (gen["latents"], gen["alpha"], gen["min_fraction"]) == ("encoder embeddings", 0.2, 0.02)
    assert (gen["shards"], gen["samples_per_shard"]) == (2, 16)
    assert "toy world (held-out, true masks)" in (out / "report.md").read_text()
    assert (out / "shards" / "manifest.jsonl").read_text().count("\n") == 2
    finished = [
        out / "embed" / "embeddings.npy",
        out / "shards" / "shard-000001.tar",
        out / "unet" / "model.json",
        out / "eval" / "world_test" / "metrics.json",
    ]
    stamps = [p.stat().st_mtime_ns for p in finished]

    second = _drive(out)  # resumes: only the generator runs, and finds every shard finished
    assert "-m generator " in second and "2 shard(s) already finished, 0 to make" in second
    for stage in ("-m generator.embed", "-m torch.distributed.run", "-m eval"):
        assert stage not in second
    assert [p.stat().st_mtime_ns for p in finished] == stamps
    assert json.loads((out / "metrics.json").read_text())["world_test"] == metrics["world_test"]

    other = subprocess.run(
        [sys.executable, "-m", "toyworld.experiment", str(out), *TINY, "--min-fraction", "0.05"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )  # another lower bound: the generator refuses the run folder, the driver stops there
    assert other.returncode == 2
    assert "min_fraction" in other.stderr and "'python -m generator' exited with 2" in other.stderr


def test_parser_takes_the_folder_first():
    args = build_parser().parse_args(["runs/x", "--steps", "5"])
    assert (args.out, args.steps, args.latents) == ("runs/x", 5, "prior")
