"""--mask bg-removal: Voynov & Babenko's masks from BigGAN's background-removal direction
(section 4.4): the rule on hand-made pixels, its config field, and a shard of a small
random-weights conditional BigGAN whose masks are recomputed from G(z + r h)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from generator.config import GeneratorConfig
from generator.gans.biggan import build
from generator.latents import ShardLatents
from generator.masks import BG_THRESHOLD, bg_removal_mask, lighter_mask, make_masks
from generator.run import resolve_config
from generator.shard_maker import ShardMaker
from segcore.cli import UsageError
from tests.generator.conftest import refused_in_one_line


def _img(rgb_rows):
    """[[(r,g,b), ...]] (one row of pixels) -> [1, 3, 1, W]."""
    return torch.tensor(rgb_rows, dtype=torch.float32).permute(2, 0, 1).unsqueeze(0)


def test_rule_is_the_rgb_mean_on_0_1_below_095():
    assert BG_THRESHOLD == 0.95  # the authors' default mask_thr
    shifted = _img(
        [
            [
                (1.0, 1.0, 1.0),  # white: 1.0 -> background
                (-1.0, -1.0, -1.0),  # black: 0.0 -> object
                (1.0, 1.0, 0.4),  # mean 0.8 -> 0.9 -> object (by luma 0.966: background)
                (1.0, 0.9, 1.0),  # mean 0.9667 -> 0.983 -> background
                (1.0, -1.0, -1.0),  # red: 1/3 -> object
            ]
        ]
    )
    want = [False, True, True, False, True]
    assert bg_removal_mask(shifted)[0, 0].tolist() == want
    # G(z) plays no part; the lighter rule would see other masks on the same pair
    img = torch.zeros_like(shifted)
    assert make_masks("bg-removal", img, shifted)[0, 0].tolist() == want
    assert make_masks("bg-removal", shifted, shifted)[0, 0].tolist() == want
    assert lighter_mask(img, shifted)[0, 0].tolist() == [True, False, True, True, False]


def test_threshold_is_strict_and_settable():
    # means 0.5 and 0.25 -> 0.75 (on the threshold: background) and 0.625 (object)
    shifted = _img([[(0.5, 0.5, 0.5), (0.5, 0.5, -0.25)]])
    assert bg_removal_mask(shifted, 0.75)[0, 0].tolist() == [False, True]
    assert make_masks("bg-removal", shifted, shifted, threshold=0.75)[0, 0].tolist() == [
        False,
        True,
    ]
    assert bg_removal_mask(shifted, 0.5)[0, 0].tolist() == [False, False]
    assert bg_removal_mask(shifted)[0, 0].tolist() == [True, True]


# -- config ------------------------------------------------------------------------------------


def _config(biggan_ckpt, **kw) -> GeneratorConfig:
    v = np.zeros(120)
    v[0] = 1.0
    fields = dict(shards=1, direction=tuple(v), gan="biggan", weights=str(biggan_ckpt), shift=26.0,
                  samples_per_shard=3, batch_size=4, **kw)  # fmt: skip
    return GeneratorConfig(**fields)


def test_threshold_is_hash_neutral_at_its_default(biggan_ckpt):
    base = _config(biggan_ckpt, mask="bg-removal")
    saved = {k: v for k, v in json.loads(json.dumps(base.__dict__)).items()}
    del saved["bg_threshold"]
    assert GeneratorConfig(**saved).hash == base.hash  # a config.json without the field
    assert _config(biggan_ckpt, mask="bg-removal", bg_threshold=0.9).hash != base.hash
    assert _config(biggan_ckpt, mask="lighter").hash != base.hash  # the rule itself counts


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (dict(mask="bg-removal", bg_threshold=0.0), r"--bg-threshold must be in \(0, 1\], got 0.0"),
        (dict(mask="bg-removal", bg_threshold=1.5), r"--bg-threshold must be in \(0, 1\]"),
        (dict(mask="lighter", bg_threshold=0.9), "threshold of --mask bg-removal"),
    ],
)
def test_threshold_errors(biggan_ckpt, kw, message):
    with pytest.raises(ValueError, match=message):
        _config(biggan_ckpt, **kw)


def test_resolve_config_takes_the_rule_and_refuses_a_stray_threshold(biggan_ckpt, tmp_path):
    v = np.zeros(120, np.float32)
    v[3] = 2.0  # stored norm 2: the unit vector is used (the authors' ortho deformator)
    np.save(tmp_path / "h.npy", v)
    common = dict(shards=1, gan_name="biggan", weights=str(biggan_ckpt), shift=26.0,
                  latents="prior", direction_file=str(tmp_path / "h.npy"))  # fmt: skip
    cfg, _ = resolve_config(**common, mask="bg-removal")
    assert (cfg.mask, cfg.bg_threshold, cfg.shift) == ("bg-removal", 0.95, 26.0)
    assert cfg.direction[3] == 1.0 and sum(abs(x) for x in cfg.direction) == 1.0
    with pytest.raises(UsageError, match="threshold of --mask bg-removal"):
        resolve_config(**common, bg_threshold=0.5)  # mask auto -> lighter


# -- a shard -----------------------------------------------------------------------------------


def test_shard_masks_are_the_rule_on_g_of_z_plus_r_h(biggan_ckpt):
    """Each kept sample: the image is G(z, y), the mask the rule on G(z + r h, y), recomputed
    here from the shard's latent and class streams; the mask-size filter of the authors'
    code (fraction in (0.05, 0.5)) applies to those masks."""
    cfg = _config(biggan_ckpt, mask="bg-removal", bg_threshold=0.5, classes=(3, 5, 700),
                  filters=("mask_size",), min_fraction=0.05)  # fmt: skip
    gan = build(str(biggan_ckpt), "cpu")
    images, masks, metas, attempts, _ = ShardMaker(cfg, gan=gan).samples(2)
    assert len(metas) == 3 and masks.dtype == bool and masks.shape == (3, 128, 128)
    z, _ = ShardLatents(cfg.seed, 2, 120).draw(attempts)
    labels = ShardLatents(cfg.seed, 2, 120).draw_labels(attempts, 1000, cfg.classes)
    h = torch.tensor(cfg.direction, dtype=torch.float32)
    for image, mask, meta in zip(images, masks, metas, strict=True):
        d = meta["draw"]
        assert meta["class"] == int(labels[d])
        zd, y = torch.from_numpy(z[d : d + 1]), torch.tensor([meta["class"]])
        with torch.no_grad():
            x, xs = gan.generate(zd, y), gan.generate(zd + 26.0 * h, y)
        intensity = (0.5 * xs.mean(dim=1) + 0.5)[0]
        want = (intensity < 0.5).numpy()
        # batch composition may move a pixel's float rounding; none is that close here
        near = (intensity - 0.5).abs().numpy() < 1e-5
        assert np.array_equal(mask[~near], want[~near])
        assert 0.05 <= mask.mean() < 0.5
        expect = torch.round((x[0].permute(1, 2, 0) + 1) / 2 * 255).clamp(0, 255).to(torch.uint8)
        assert np.abs(image.astype(int) - expect.numpy().astype(int)).max() <= 1
    # the shard is a pure function of (config, index)
    again = ShardMaker(cfg, gan=gan).samples(2)
    assert again[2] == metas and np.array_equal(again[1], masks)


def test_generator_cli_refuses_a_stray_threshold_in_one_line(biggan_ckpt, tmp_path):
    args = ["--gan", "biggan", "--weights", str(biggan_ckpt), "--mask", "lighter",
            "--bg-threshold", "0.6"]  # fmt: skip
    assert refused_in_one_line(args, tmp_path) == [
        "python -m generator: error: --bg-threshold is the threshold of --mask bg-removal, "
        "which is not chosen"
    ]
