"""Self-training's inputs and pure functions: the target folder (labels never opened, bad input
-> one line), pseudo-label selection, agreement, batches and the loss that ignores."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from segcore.cli import UsageError
from trainer import adapt_config, config, target_images
from trainer.adapt_labels import (
    IGNORE,
    agreement,
    jitter,
    masked_loss,
    select,
    target_batch,
    targets,
)


def write_images(folder: Path, n: int, size: int = 32, suffix: str = ".png") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        img = np.full((size, size, 3), (10 * i, 2 * i, 255 - i), np.uint8)
        path = folder / f"{i:03d}{suffix}"
        assert cv2.imwrite(str(path), img)
        paths.append(path)
    return paths


def test_labels_beside_the_images_are_never_opened_nor_listed(tmp_path):
    root = tmp_path / "set"
    write_images(root / "images", 5)
    write_images(root / "masks", 5)  # a dataset folder's labels, beside the images
    (root / "masks").chmod(0)  # unreadable too (root ignores the mode: the hook below is proof)
    touched: list[str] = []
    active = [True]

    def hook(event, args):
        if active[0] and event in ("open", "os.scandir", "os.listdir") and args and args[0]:
            touched.append(str(args[0]))

    sys.addaudithook(hook)  # audit hooks cannot be removed: `active` switches it off
    try:
        got = target_images.load(str(root), 32, 0.05)
    finally:
        active[0] = False
        (root / "masks").chmod(0o755)
    seen = touched
    assert got.names == tuple(f"{i:03d}.png" for i in range(5)) and got.skipped == 0
    assert got.images.shape == (5, 32, 32, 3)
    # written by OpenCV as BGR (30, 6, 252): read back as RGB
    np.testing.assert_array_equal(got.images[3, 0, 0], [252, 6, 30])
    assert not [p for p in seen if "masks" in p], "a label file or folder was touched"
    assert sum(p.endswith(".png") for p in seen) == 5


def test_resized_to_the_training_side(tmp_path):
    write_images(tmp_path, 2, size=48)
    got = target_images.load(str(tmp_path), 32, 0.05)
    assert got.images.shape == (2, 32, 32, 3)


def test_a_corrupt_image_among_many_is_skipped_and_counted(tmp_path, capsys):
    write_images(tmp_path, 25)
    (tmp_path / "007.png").write_bytes(b"not a png at all")
    got = target_images.load(str(tmp_path), 32, 0.05)
    assert got.skipped == 1 and len(got.names) == 24 and "007.png" not in got.names
    assert "skipped undecodable target image 007.png" in capsys.readouterr().err
    with pytest.raises(UsageError, match=r"2 of 25 images do not decode"):
        (tmp_path / "008.png").write_bytes(b"")
        target_images.load(str(tmp_path), 32, 0.05)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d.mkdir(), r"no image in it"),
        (lambda d: None, r"no such folder"),
        (lambda d: (write_images(d, 2), (d / "notes.txt").write_text("x")), r"1 file\(s\) are not"),
        (lambda d: write_images(d, 3, size=24), r"is 24x24, smaller than the training side 32"),
        (lambda d: (d.mkdir(), (d / "a.png").write_bytes(b"x")), r"none of its 1 images decodes"),
    ],
)
def test_bad_target_folders_are_one_line_errors(tmp_path, make, message):
    folder = tmp_path / "t"
    make(folder)
    with pytest.raises(UsageError, match=message) as err:
        target_images.load(str(folder), 32, 0.05)
    assert "\n" not in str(err.value)


def test_remote_target_folder_is_refused():
    with pytest.raises(UsageError, match="a local folder is needed"):
        target_images.image_folder("s3://bucket/images")


def test_select_keeps_the_most_confident_images_and_counts_pixels():
    q = np.array([
        [[255, 255], [0, 0]],  # all certain
        [[128, 120], [0, 255]],  # half certain (margin 0.3: p <= 0.2 or >= 0.8)
        [[200, 60], [140, 100]],  # none certain
    ], dtype=np.uint8)  # fmt: skip
    kept, stats = select(q, margin=0.3, keep=0.67)
    assert kept.tolist() == [0, 1]
    assert stats["adapt_kept_images"] == 2
    assert stats["adapt_kept_pixels"] == 6 / 8
    assert stats["adapt_certain_pixels"] == 6 / 12
    assert stats["adapt_foreground"] == 4 / 8  # q >= 128 among the kept images' pixels
    assert stats["adapt_min_kept_confidence"] == 0.5
    np.testing.assert_array_equal(targets(q, 0.3)[1], [[IGNORE, IGNORE], [0, 1]])
    assert select(q, 0.3, keep=0.01)[0].tolist() == [0]  # at least one image


def test_agreement_is_the_iou_of_the_two_rounds_foreground():
    a = np.array([[[255, 255, 0, 0]]], np.uint8)
    b = np.array([[[255, 0, 200, 0]]], np.uint8)
    assert agreement(a, b) == 1 / 3
    assert agreement(a, a) == 1.0
    assert agreement(np.zeros_like(a), np.zeros_like(a)) == 1.0


def test_target_batch_is_a_pure_function_of_the_key_and_keeps_pairs_together():
    n, side = 6, 16
    images = np.stack([np.full((side, side, 3), 40 * i, np.uint8) for i in range(n)])
    labels = np.stack([np.full((side, side), i % 2, np.uint8) for i in range(n)])
    labels[5] = IGNORE
    kept = np.array([1, 4, 5])
    x1, y1 = target_batch(images, labels, kept, 8, (0, 1, 7), 0.5)
    x2, y2 = target_batch(images, labels, kept, 8, (0, 1, 7), 0.5)
    x3, _ = target_batch(images, labels, kept, 8, (0, 1, 8), 0.5)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2) and not np.array_equal(x1, x3)
    for img, lab in zip(x1, y1, strict=True):
        i = int(img[0, 0, 0]) // 40
        assert i in (1, 4, 5) and (img == 40 * i).all()  # only kept images, whole
        assert (lab == labels[i, 0, 0]).all()  # with their own labels


def test_a_crop_keeps_image_and_label_aligned():
    side = 32
    ramp = np.tile(np.arange(side, dtype=np.uint8) * 8, (side, 1))
    images = np.repeat(ramp[None, :, :, None], 3, axis=3)
    labels = (ramp[None] >= 128).astype(np.uint8)  # right half foreground
    x, y = target_batch(images, labels, np.array([0]), 16, (3, 0, 0), 0.3)
    # where the crop shows the dark left part, the label is background, and the reverse
    assert (y[x[..., 0] <= 100] == 0).all() and (y[x[..., 0] >= 156] == 1).all()
    assert {int(v) for v in np.unique(y)} <= {0, 1}


def test_masked_loss_ignores_pixels_and_equals_the_plain_loss_without_them():
    torch.manual_seed(0)
    logits = torch.randn(2, 2, 4, 4, requires_grad=True)
    target = torch.randint(0, 2, (2, 4, 4), dtype=torch.uint8)
    plain = torch.nn.functional.cross_entropy(logits, target.long())
    torch.testing.assert_close(masked_loss(logits, target, "ce"), plain, rtol=0, atol=1e-6)
    ignored = target.clone()
    ignored[1] = IGNORE
    only_first = torch.nn.functional.cross_entropy(logits[:1], target[:1].long())
    torch.testing.assert_close(masked_loss(logits, ignored, "ce"), only_first, rtol=0, atol=1e-6)
    one = torch.randn(2, 1, 4, 4)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(one[:1, 0], target[:1].float())
    torch.testing.assert_close(masked_loss(one, ignored, "bce"), bce, rtol=0, atol=1e-6)
    none = torch.full_like(target, IGNORE)
    loss = masked_loss(logits, none, "ce")
    loss.backward()
    assert loss.item() == 0.0 and logits.grad is not None


def test_options_are_checked_and_shown_in_help():
    base = {"shards": "x", "out": "y"}
    for field, value, message in [
        ("adapt_margin", 0.5, r"--adapt-margin must be in \[0, 0.5\)"),
        ("adapt_keep", 0.0, r"--adapt-keep must be in \(0, 1\]"),
        ("adapt_rounds", 0, r"--adapt-rounds must be >= 1"),
        ("adapt_mix", 0.01, r"takes no target image from a per-rank batch of 8"),
        ("adapt_jitter", 1.0, r"--adapt-jitter must be in \[0, 1\)"),
        ("adapt_schedule", "linear", r"--adapt-schedule must be one of"),
    ]:
        with pytest.raises(ValueError, match=message):
            config.TrainConfig(
                **base, adapt_images="d", per_rank_batch=8, batch_size=8, **{field: value}
            )
    text = config.build_parser().format_help()
    assert "--adapt-images" in text and "--no-adapt-flip-tta" in text
    cfg = config.TrainConfig(**base, steps=10, adapt_images="d", adapt_rounds=3, adapt_steps=4)
    assert adapt_config.total_steps(cfg) == 22
    assert adapt_config.target_count(config.TrainConfig(**base, per_rank_batch=9)) == 4


def test_cosine_restarts_each_round_and_falls_towards_zero():
    base = {"shards": "x", "out": "y", "steps": 10, "adapt_images": "d", "adapt_steps": 4}
    cosine = config.TrainConfig(**base, adapt_schedule="cosine")
    got = [adapt_config.lr_factor(cosine, s) for s in range(10, 18)]
    half = 0.5 * (1 + np.cos(np.pi / 4))  # 0.854 at the round's second step
    expect = [1.0, half, 0.5, 1 - half] * 2
    np.testing.assert_allclose(got, expect, rtol=0, atol=1e-12)
    constant = config.TrainConfig(**base, adapt_schedule="constant")
    assert {adapt_config.lr_factor(constant, s) for s in range(10, 18)} == {1.0}


def test_jitter_scales_each_image_by_its_own_draw_and_is_keyed():
    side = 8
    gray = np.full((64, side, side, 3), 100, np.uint8)  # contrast and saturation leave it be
    out = jitter(gray, 0.4, (0, 0, 3))
    ratio = out[:, 0, 0, 0] / 100.0
    assert (out == out[:, :1, :1, :1]).all()  # one factor per image, the same on all pixels
    assert ratio.min() >= 0.6 - 0.006 and ratio.max() <= 1.4 + 0.006 and ratio.std() > 0.1
    assert np.array_equal(out, jitter(gray, 0.4, (0, 0, 3)))
    assert not np.array_equal(out, jitter(gray, 0.4, (0, 0, 4)))
    assert jitter(gray, 0.0, (0, 0, 3)) is gray
    color = np.zeros((16, side, side, 3), np.uint8)
    color[..., 0] = 200  # saturated red: saturation and contrast change its channels apart
    moved = jitter(color, 0.4, (1, 0, 0)).astype(int)
    assert (moved[..., 1] > 0).any()  # red mixed towards its gray: green rises above 0


def test_resume_rule_frees_the_adapt_options_only_before_self_training():
    may = frozenset({"steps", "out"})
    cfg = config.TrainConfig(shards="x", out="y", steps=10, adapt_images="d", adapt_steps=5)
    synthetic = {"steps": 10, "adapt_images": None}
    ignore, limit = adapt_config.resume_rule(synthetic, 10, cfg, may)
    assert ignore >= adapt_config.ADAPT_KEYS and "steps" in ignore and limit == 10
    adapting = {"steps": 10, "adapt_images": "d"}
    ignore, limit = adapt_config.resume_rule(adapting, 11, cfg, may)
    assert ignore == {"out"} and limit == 25
    assert adapt_config.resume_rule(adapting, 10, cfg, may)[1] == 10  # not begun yet


def test_frames_in_subfolders_are_read_and_label_folders_never_listed(tmp_path):
    write_images(tmp_path / "bmx", 2)
    write_images(tmp_path / "swan" / "x", 1)
    write_images(tmp_path / "Annotations" / "bmx", 2)  # a video set's labels: never entered
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "notes.txt").write_text("hidden: left aside")
    (tmp_path / "Annotations").chmod(0)
    try:
        got = target_images.load(str(tmp_path), 32, 0.05)
    finally:
        (tmp_path / "Annotations").chmod(0o755)
    assert got.names == ("bmx/000.png", "bmx/001.png", "swan/x/000.png")


def test_unsure_or_unstable_labels_are_named_in_a_warning():
    from trainer.adapt_labels import doubt

    assert doubt({"adapt_certain_pixels": 0.94}) is None
    assert doubt({"adapt_certain_pixels": 0.95, "adapt_agreement": 0.96}) is None
    text = doubt({"adapt_certain_pixels": 0.58, "adapt_agreement": 0.53})
    assert "only 58% of the pixels are outside the margin" in text
    assert "agree with the last round's at IoU 0.53 only" in text
    assert "the margin" not in doubt({"adapt_certain_pixels": 0.9, "adapt_agreement": 0.7})
