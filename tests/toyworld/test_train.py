"""The GAN training script: tiny runs, exact resume, shippable outputs, clear errors."""

import json

import pytest
import torch

from toyworld import train, train_images, train_loop

TINY = [
    "--n-train", "48", "--batch", "8", "--resolution", "16", "--latent-dim", "8",
    "--g-width", "8", "--d-width", "8", "--e-width", "8", "--threads", "1",
    "--ckpt-every", "2", "--sample-every", "2", "--log-every", "1",
]  # fmt: skip


def _run(out, steps, encoder_steps):
    args = ["--out", str(out), "--steps", str(steps), "--encoder-steps", str(encoder_steps)]
    assert train.main(args + TINY) == 0
    return torch.load(out / "final" / "toyworld.pt", map_location="cpu", weights_only=True)


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_weights(tmp_path):
    straight = _run(tmp_path / "a", 4, 2)
    _run(tmp_path / "b", 2, 0)  # a run stopped after 2 GAN steps (checkpoint at step 2)
    resumed = _run(tmp_path / "b", 4, 2)
    for part in ("generator", "encoder"):
        assert straight[part].keys() == resumed[part].keys()
        for key in straight[part]:
            torch.testing.assert_close(straight[part][key], resumed[part][key], rtol=0, atol=0)
    log = [
        json.loads(line) for line in (tmp_path / "b" / "train_log.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in log if "step" in r] == [1, 2, 3, 4]  # no step done twice


def test_outputs_and_recorded_statistics(tmp_path):
    _run(tmp_path, 2, 1)
    meta = json.loads((tmp_path / "final" / "toyworld.json").read_text())
    assert meta["steps"] == 2 and meta["encoder_steps"] == 1
    assert meta["command"].startswith("python -m toyworld.train --out")
    assert "no masks" in meta["trained_on"]
    # the backend loads what the trainer wrote and reproduces the recorded statistics
    from generator.gans.toyworld import build

    gan = build(weights=str(tmp_path / "final" / "toyworld.pt"))
    assert (gan.resolution, gan.latent_dim) == (16, 8)
    stats = meta["sample_statistics"]
    z = torch.randn(16, 8, generator=torch.Generator().manual_seed(stats["z_seed"]))
    with torch.no_grad():
        assert float(gan.generate(z).mean()) == pytest.approx(stats["mean"], abs=1e-5)
    assert (tmp_path / "samples" / "step-000002.png").exists()
    assert (tmp_path / "samples" / "alpha-000002.png").exists()  # the 2-layer model's alpha
    assert meta["format"] == "gan-objseg/toyworld-weights/v2"


def test_changed_options_do_not_resume_silently(tmp_path, capsys):
    _run(tmp_path, 2, 0)
    with pytest.raises(train.UsageError, match=r"different config \(lr_g: 0\.0002 -> 0\.1\)"):
        train.main(["--out", str(tmp_path), "--steps", "4", "--lr-g", "0.1", *TINY])
    with pytest.raises(train.UsageError, match="resolution"):
        train.main(["--out", str(tmp_path / "x"), "--resolution", "24"])


def test_dcgan_variant_trains_and_bad_loss_is_refused(tmp_path):
    args = ["--out", str(tmp_path), "--steps", "2", "--encoder-steps", "1"]
    variant = ["--layers", "1", "--latent-split", "0", "--loss", "ns", "--d-batchnorm", "1"]
    variant += ["--beta1", "0.5"]
    assert train.main(args + TINY + variant) == 0
    meta = json.loads((tmp_path / "final" / "toyworld.json").read_text())
    assert meta["model"]["layers"] == 1 and meta["train"]["loss"] == "ns"
    assert not (tmp_path / "samples" / "alpha-000002.png").exists()  # no layers to show
    with pytest.raises(train.UsageError, match="--loss"):
        train.main(["--out", str(tmp_path / "x"), "--loss", "wgan", *TINY])
    with pytest.raises(train.UsageError, match="latent_split"):  # the split needs 2 layers
        train.main(["--out", str(tmp_path / "y"), "--layers", "1", *TINY])
    for bad in (
        ["--beta1", "1.0"],
        ["--shift", "-1"],
        ["--min-area", "0.6"],
        ["--d-batchnorm", "2"],
        ["--render-workers", "0"],
        ["--device", "nonsense"],
    ):
        with pytest.raises(train.UsageError):
            train.main(["--out", str(tmp_path / "z"), *bad, *TINY])
    assert not (tmp_path / "z").exists()  # refused before anything is written


def test_parallel_rendering_gives_the_same_images(tmp_path):
    one = train_images.load_images(tmp_path / "one", 600, 16, workers=1)
    two = train_images.load_images(tmp_path / "two", 600, 16, workers=2)  # 2 chunks of 500 and 100
    assert one.shape == (600, 16, 16, 3) and one.std() > 10
    assert (one == two).all()
    assert (tmp_path / "two" / "train_images_600_16.npy").exists()  # cached for a resume


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a CPU-only machine")
def test_cuda_device_without_cuda_is_a_clear_error(tmp_path):
    with pytest.raises(train.UsageError, match="CUDA is not available"):
        train.main(["--out", str(tmp_path / "x"), "--device", "cuda", *TINY])
    assert not (tmp_path / "x").exists()


def test_resume_drops_log_records_after_the_checkpoint(tmp_path):
    """A run killed between checkpoints logged steps it will redo; the log must not keep them."""
    log = tmp_path / "train_log.jsonl"
    recs = [{"step": 200}, {"step": 400}, {"step": 600}, {"encoder_step": 50}]
    log.write_text("".join(json.dumps(r) + "\n" for r in recs))
    train_loop.trim_log(log, {"step": 500, "encoder_step": 0})
    assert [json.loads(x) for x in log.read_text().splitlines()] == [{"step": 200}, {"step": 400}]


def test_the_config_checks_its_own_values(tmp_path):
    from toyworld.train_config import GanTrainConfig

    GanTrainConfig()  # the defaults are valid
    for bad in ({"loss": "wgan"}, {"n_train": 4, "batch": 8}, {"log_every": 0}, {"threads": 0}):
        with pytest.raises(ValueError):
            GanTrainConfig(**bad)
    args = ["--out", str(tmp_path / "x"), *TINY, "--ckpt-every", "0"]
    with pytest.raises(train.UsageError, match="ckpt_every"):
        train.main(args)
    assert not (tmp_path / "x").exists()
