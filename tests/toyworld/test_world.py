"""The procedural world: deterministic scenes whose masks are exactly where the object is."""

import cv2
import numpy as np
import pytest

from toyworld import world
from toyworld.world import WorldConfig, render_background, render_scene


def test_scenes_are_a_pure_function_of_seed_and_index():
    a_img, a_mask = render_scene(5, 17)
    b_img, b_mask = render_scene(5, 17)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_mask, b_mask)
    c_img, _ = render_scene(5, 18)
    d_img, _ = render_scene(6, 17)
    assert not np.array_equal(a_img, c_img)
    assert not np.array_equal(a_img, d_img)


def test_scene_types_and_shapes():
    img, mask = render_scene(0, 0, WorldConfig(resolution=48))
    assert img.dtype == np.uint8 and img.shape == (48, 48, 3)
    assert mask.dtype == bool and mask.shape == (48, 48)


@pytest.mark.parametrize("index", range(40))
def test_mask_is_where_the_image_differs_from_the_background(index):
    # The same scene rendered without its object: pixels inside the mask must have changed
    # (the object covers them), pixels away from the mask must be untouched.
    img, mask = render_scene(3, index)
    bg = render_background(3, index)
    changed = np.abs(img.astype(int) - bg.astype(int)).max(axis=2) > 0
    near = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert not (changed & ~near).any(), "pixels changed outside the (dilated) mask"
    # an object may match the background colour in a few pixels, never in most of them
    assert changed[mask].mean() > 0.9


def test_object_sizes_are_in_the_configured_range():
    cfg = WorldConfig()
    fractions = np.array([render_scene(1, i)[1].mean() for i in range(200)])
    # antialiased coverage >= 0.5 can move the area by a boundary's worth of pixels, and the
    # frame may cut a part of an object off (a few scenes), never most of it
    in_range = (fractions > cfg.min_area - 0.04) & (fractions < cfg.max_area + 0.04)
    assert in_range.mean() > 0.95
    assert fractions.min() > 0.05 and fractions.max() < cfg.max_area + 0.04
    assert fractions.std() > 0.05  # sizes vary


def test_object_and_background_brightness_vary_independently():
    # The method needs "object lighter" and "background lighter" as separate factors.
    w = np.array([0.2989, 0.5870, 0.1140])
    obj, bg = [], []
    for i in range(300):
        img, mask = render_scene(2, i)
        gray = img.astype(float) @ w
        obj.append(gray[mask].mean())
        bg.append(gray[~mask].mean())
    obj, bg = np.array(obj), np.array(bg)
    assert obj.std() > 40 and bg.std() > 40
    assert abs(np.corrcoef(obj, bg)[0, 1]) < 0.2
    # the object is brighter than its background about as often as darker
    assert 0.3 < (obj > bg).mean() < 0.7


def test_a_global_threshold_does_not_solve_the_world():
    # Otsu on grey levels, taking the minority side as the object (a fair polarity guess).
    ious = []
    for i in range(300):
        img, mask = render_scene(world.TEST_SEED, i)
        gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        t, _ = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        pred = gray > t
        pred = pred if pred.mean() < 0.5 else ~pred
        ious.append((pred & mask).sum() / max((pred | mask).sum(), 1))
    assert np.mean(ious) < 0.62


def test_write_folder_is_readable_by_eval_and_idempotent(tmp_path):
    from eval.datasets import FolderPairs

    out = world.write_folder(tmp_path / "w", 5, seed=11)
    names = sorted(p.name for p in (out / "images").iterdir())
    assert names == [f"{i:05d}.png" for i in range(5)]
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    world.write_folder(out, 5, seed=11)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == before
    pairs = {s.name: s for s in FolderPairs(out)}
    assert len(pairs) == 5
    for i in range(5):
        img, mask = render_scene(11, i)
        sample = next(v for k, v in pairs.items() if k.startswith(f"{i:05d}"))
        assert np.array_equal(sample.image, img)
        assert np.array_equal(sample.mask, mask)


def test_cli_writes_scenes_and_rejects_bad_counts(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        world.main([str(tmp_path / "x"), "--count", "0"])
    assert exc.value.code == 2
    assert "--count" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        world.main([str(tmp_path / "y"), "--count", "2"])
    assert exc.value.code == 0
    assert len(list((tmp_path / "y" / "masks").iterdir())) == 2
