"""Classes of a conditional GAN: `--classes` parsing, the shard's class stream, the sample json,
the config hash, and `discover` + `score --pick` end to end on a small random BigGAN."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from generator.classes import draw_labels, parse_classes
from generator.config import GeneratorConfig
from generator.gans.biggan import build
from generator.latents import ShardLatents
from generator.run import resolve_config
from generator.shard_maker import ShardMaker
from segcore.cli import UsageError
from tests.generator.conftest import refused_in_one_line

REPO = Path(__file__).resolve().parents[2]


# -- --classes ---------------------------------------------------------------------------------


def test_spec_lists_ranges_and_files(tmp_path):
    assert parse_classes(None, 1000) is None and parse_classes("  ", 1000) is None
    assert parse_classes("1,5,10-12", 1000) == (1, 5, 10, 11, 12)
    assert parse_classes("5, 1 1-2", 1000) == (1, 2, 5)  # sorted, distinct
    assert parse_classes("999", 1000) == (999,)
    ids = tmp_path / "ids.txt"
    ids.write_text("# dogs\n151-153  # three\n207,\n\n1\n")
    assert parse_classes(str(ids), 1000) == (1, 151, 152, 153, 207)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("1000", "class 1000 is out of range; this GAN has classes 0..999"),
        ("990-1005", "class 1005 is out of range"),
        ("20-10", "range 20-10 is empty"),
        ("1,-3", "'-3' is not a class id or a range"),
        ("1,,", None),  # empty items are skipped: (1,)
        ("no_such_file.txt", "no such file"),
    ],
)
def test_spec_errors_are_one_line(spec, message):
    if message is None:
        assert parse_classes(spec, 1000) == (1,)
        return
    with pytest.raises(UsageError) as err:
        parse_classes(spec, 1000)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_spec_needs_a_conditional_gan_and_a_class(tmp_path):
    with pytest.raises(UsageError, match="needs a class-conditional GAN"):
        parse_classes("1", 0)
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(UsageError, match="names no class"):
        parse_classes(str(tmp_path / "empty.txt"), 1000)
    (tmp_path / "words.txt").write_text("dog\n")
    with pytest.raises(UsageError, match="'dog' is not a class id"):
        parse_classes(str(tmp_path / "words.txt"), 1000)


# -- the class stream --------------------------------------------------------------------------


def test_class_stream_is_its_own_and_batch_size_free():
    a = ShardLatents(seed=3, shard=2, latent_dim=8)
    b = ShardLatents(seed=3, shard=2, latent_dim=8)
    whole = a.draw_labels(30, 1000)
    parts = np.concatenate([b.draw_labels(n, 1000) for n in (1, 7, 2, 20)])
    assert whole.dtype == np.int64 and np.array_equal(whole, parts)
    # the noise stream does not move when classes are drawn (unconditional shards unchanged)
    c = ShardLatents(seed=3, shard=2, latent_dim=8)
    assert np.array_equal(a.draw(5)[0], c.draw(5)[0])
    # exactly the pre-class streams: SeedSequence([seed, shard]).spawn(2)'s child 1
    noise = np.random.SeedSequence([3, 2]).spawn(2)[1]
    expect = np.random.Generator(np.random.PCG64(noise)).standard_normal((5, 8), np.float32)
    assert np.array_equal(ShardLatents(3, 2, 8).draw(5)[0], expect)
    # another shard, another stream
    assert not np.array_equal(whole, ShardLatents(3, 1, 8).draw_labels(30, 1000))


def test_draw_is_uniform_over_the_given_classes():
    rng = np.random.Generator(np.random.PCG64(0))
    got = draw_labels(rng, 6000, 1000, (3, 10, 500))
    values, counts = np.unique(got, return_counts=True)
    assert values.tolist() == [3, 10, 500]
    assert counts.min() > 1850 and counts.max() < 2150  # 2000 each, +-3.4 sigma
    assert draw_labels(rng, 5, 7, None).max() < 7


# -- shards and config -------------------------------------------------------------------------


def _config(biggan_ckpt, **kw) -> GeneratorConfig:
    v = np.zeros(120)
    v[0] = 1.0
    fields = dict(shards=1, direction=tuple(v), gan="biggan", weights=str(biggan_ckpt),
                  samples_per_shard=6, batch_size=4, filters=(), **kw)  # fmt: skip
    return GeneratorConfig(**fields)


def test_each_sample_records_its_class_from_the_shard_stream(biggan_ckpt):
    cfg = _config(biggan_ckpt, classes=(3, 5, 700))
    gan = build(str(biggan_ckpt), "cpu")
    maker = ShardMaker(cfg, gan=gan)
    images, masks, metas, attempts, _ = maker.samples(4)
    labels = ShardLatents(cfg.seed, 4, 120).draw_labels(attempts, 1000, cfg.classes)
    assert [m["class"] for m in metas] == [int(labels[m["draw"]]) for m in metas]
    assert set(m["class"] for m in metas) <= {3, 5, 700}
    # the image is G(z, class): recompute the first sample
    z, _ = ShardLatents(cfg.seed, 4, 120).draw(1)
    with torch.no_grad():
        x = gan.generate(torch.from_numpy(z), torch.tensor([metas[0]["class"]]))
    expect = torch.round((x[0].permute(1, 2, 0) + 1) / 2 * 255).clamp(0, 255).to(torch.uint8)
    assert np.abs(images[0].astype(int) - expect.numpy().astype(int)).max() <= 1
    # and the json of the encoded sample carries it
    sample = maker.encode_sample(images[0], masks[0], metas[0])
    assert json.loads(sample["json"])["class"] == metas[0]["class"]
    # the shard is a pure function of (config, index)
    again = ShardMaker(cfg, gan=gan).samples(4)
    assert again[2] == metas and np.array_equal(again[0], images)


def test_unconditional_samples_carry_no_class():
    v = np.zeros(8)
    v[0] = 1.0
    cfg = GeneratorConfig(shards=1, direction=tuple(v), gan="random",
                          weights="resolution=32,latent_dim=8", samples_per_shard=2,
                          batch_size=2, filters=())  # fmt: skip
    _, _, metas, _, _ = ShardMaker(cfg).samples(0)
    assert metas and all("class" not in m for m in metas)


def test_classes_field_is_hash_neutral_when_unset(biggan_ckpt):
    base = _config(biggan_ckpt)
    assert base.classes is None
    saved = {k: v for k, v in json.loads(json.dumps(base.__dict__)).items() if k != "classes"}
    assert GeneratorConfig(**saved).hash == base.hash  # a config.json without the field
    assert _config(biggan_ckpt, classes=(1, 2)).hash != base.hash
    with pytest.raises(ValueError, match="sorted, distinct"):
        _config(biggan_ckpt, classes=(2, 1))


def test_resolve_config_parses_and_checks_classes(biggan_ckpt, tmp_path):
    v = np.zeros(120, np.float32)
    v[3] = 1.0
    np.save(tmp_path / "h.npy", v)
    common = dict(shards=1, gan_name="biggan", weights=str(biggan_ckpt), shift=5.0, latents="prior",
                  direction_file=str(tmp_path / "h.npy"))  # fmt: skip
    cfg, _ = resolve_config(**common, classes="7,1-2")
    assert cfg.classes == (1, 2, 7)
    assert resolve_config(**common)[0].classes is None
    with pytest.raises(UsageError, match="class 1000 is out of range"):
        resolve_config(**common, classes="1000")
    with pytest.raises(UsageError, match="needs a class-conditional GAN"):
        resolve_config(**{**common, "gan_name": "toyworld", "weights": None}, classes="1")


# -- the direction tools ----------------------------------------------------------------------


def test_direction_tools_draw_labels_by_key_and_only_for_conditional_gans():
    from generator.directions.backend import backend_classes, sample_labels
    from generator.gans import load_gan

    class Conditional:
        num_classes = 1000

    gan = Conditional()
    a = sample_labels(gan, (2, 4, 6), 50, (0, 7), "cpu")
    assert a.dtype == torch.int64 and set(a.tolist()) == {2, 4, 6}
    assert torch.equal(a, sample_labels(gan, (2, 4, 6), 50, (0, 7), "cpu"))  # by key
    assert not torch.equal(a, sample_labels(gan, (2, 4, 6), 50, (0, 8), "cpu"))
    assert sample_labels(gan, None, 50, (0, 7), "cpu").max() < 1000
    unconditional = load_gan("random", "resolution=32,latent_dim=8")
    assert sample_labels(unconditional, None, 5, (0, 7), "cpu") is None
    assert backend_classes(gan, "3-5") == (3, 4, 5) and backend_classes(gan, None) is None
    with pytest.raises(UsageError, match="needs a class-conditional GAN"):
        backend_classes(unconditional, "3")


@pytest.mark.slow
def test_discover_then_score_pick_end_to_end(biggan_ckpt, tmp_path):
    """`discover` then `score --pick` on a small random-weights conditional BigGAN, with
    --classes: the tools run, draw classes the same way and write a direction file that the
    generator reads."""

    def cli(*args):
        proc = subprocess.run(
            [sys.executable, "-m", "generator.directions", *map(str, args)],
            cwd=REPO, capture_output=True, text=True, timeout=600,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc

    gan = ["--gan", "biggan", "--weights", biggan_ckpt, "--device", "cpu", "--classes", "1,5,9-11"]
    dirs = tmp_path / "dirs.pt"
    cli("discover", *gan, "--out", dirs, "--k", 3, "--steps", 2, "--batch", 2, "--width", 4,
        "--ckpt-every", 2, "--log-every", 1)  # fmt: skip
    assert torch.load(dirs, weights_only=True).shape == (3, 120)
    out = tmp_path / "score"
    cli("score", *gan, "--directions", dirs, "--out", out, "--steps", 2, "--batch", 2,
        "--eval-batch", 2, "--sheets", 1, "--sheet-images", 2, "--gen-batch", 4, "--pick")  # fmt: skip
    ranking = json.loads((out / "ranking.json").read_text())
    assert {e["direction"] for e in ranking} == {0, 1, 2}
    picked = json.loads((out / "direction.json").read_text())
    assert len(picked["vector"]) == 120
    # the generator takes the picked file with the same classes
    cfg, _ = resolve_config(shards=1, gan_name="biggan", weights=str(biggan_ckpt), shift=None,
                            latents="prior", direction_file=str(out / "direction.json"),
                            classes="1,5,9-11")  # fmt: skip
    assert cfg.classes == (1, 5, 9, 10, 11) and cfg.mask == "affine"
    # an unconditional GAN refuses --classes (one line, exit 2)
    proc = subprocess.run(
        [sys.executable, "-m", "generator.directions", "score", "--gan", "random", "--weights",
         "resolution=32,latent_dim=8", "--directions", "coords", "--out", tmp_path / "x",
         "--classes", "1", "--device", "cpu"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "needs a class-conditional GAN" in proc.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_generator_cli_refuses_out_of_range_classes_in_one_line(biggan_ckpt, tmp_path):
    args = ["--gan", "biggan", "--weights", str(biggan_ckpt), "--classes", "5,998-1000"]
    assert refused_in_one_line(args, tmp_path) == [
        "python -m generator: error: --classes: '5,998-1000': class 1000 is out of range; "
        "this GAN has classes 0..999"
    ]


def test_direction_runs_started_before_classes_existed_still_resume():
    """discover/score refuse to resume a run whose config hash differs; a run written before
    `truncation` and `classes` existed hashed its config without them, and so does
    resume_hash while they are at their neutral values."""
    import dataclasses
    import hashlib

    from generator.directions.config import DiscoverConfig, ScoreConfig, resume_hash
    from generator.directions.discover import RESUME_FREE

    def old_hash(cfg, free):
        d = {k: v for k, v in dataclasses.asdict(cfg).items()
             if k not in (*free, "truncation", "classes")}  # fmt: skip
        blob = json.dumps(d, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    cfg = DiscoverConfig(gan="biggan", out="d.pt", k=3, steps=2)
    assert resume_hash(cfg, RESUME_FREE) == old_hash(cfg, RESUME_FREE)
    assert resume_hash(dataclasses.replace(cfg, classes="1-3"), RESUME_FREE) != old_hash(
        cfg, RESUME_FREE
    )
    score = ScoreConfig(gan="biggan", directions="coords", out="s")
    assert resume_hash(score, ("out",)) == old_hash(score, ("out",))
