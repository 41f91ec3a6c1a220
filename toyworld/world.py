"""A procedural world of one object per scene, with the true mask of every scene.

This is the embedded benchmark of the project: a GAN is trained on the IMAGES of this world only
(never the masks), and the unsupervised pipeline built on it is measured against the masks. The
world is designed around what the method exploits (the paper, section 3.1): the object's
brightness and the background's brightness are independent factors with a large variance, so a
GAN that models the world has a reason to encode "lighten the object, not the background" as a
latent direction. It is also designed so that a global colour/brightness threshold does not solve
it: the object is as often darker as lighter than its background, objects sometimes differ from
the background by hue only, and the background carries gradients, low-frequency noise and clutter
shapes of its own.

Scenes are a pure function of (seed, index): `render_scene(seed, i)` gives the same image and mask
on every machine (numpy PCG64 + OpenCV drawing, no threads involved).

Rendering is supersampled (`SUPERSAMPLE` x the output size) and area-downsampled, so edges are
antialiased; the true mask is the pixel's object coverage >= 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from segcore import storage

SUPERSAMPLE = 4
SHAPES = ("ellipse", "polygon", "blob")


@dataclass(frozen=True)
class WorldConfig:
    resolution: int = 32
    # object area as a fraction of the frame (true mask), drawn uniformly in this range
    min_area: float = 0.15
    max_area: float = 0.40
    # independent brightness levels of object and background (value in HSV-like terms)
    min_level: float = 0.12
    max_level: float = 0.92
    max_clutter: int = 4


def _rng(seed: int, index: int) -> np.random.Generator:
    # SeedSequence of the pair: scene i of seed s never collides with scene j of seed t.
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def _colour(rng: np.random.Generator, level: float) -> np.ndarray:
    """An RGB colour (float in [0,1]) of a random hue and saturation at luminance ~ `level`."""
    hue = rng.uniform(0, 360)
    sat = rng.uniform(0.15, 0.85)
    hsv = np.array([[[hue, sat, 1.0]]], dtype=np.float32)
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]
    # scale so that the grey value (the paper's section 3.1 weights) equals the requested level
    gray = float(rgb @ np.array([0.2989, 0.5870, 0.1140], dtype=np.float32))
    rgb = rgb * (level / max(gray, 1e-3))
    return np.clip(rgb, 0.0, 1.0)


def _low_freq_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    grid = rng.normal(0, 1, (cells, cells)).astype(np.float32)
    return cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)


def _gradient(rng: np.random.Generator, size: int) -> np.ndarray:
    """A linear ramp in [-0.5, 0.5] at a random angle."""
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1) - 0.5
    ramp = np.cos(angle) * xx + np.sin(angle) * yy
    return ramp / max(float(np.abs(ramp).max()), 1e-6) * 0.5


def _shape_mask(rng: np.random.Generator, size: int, area: float, centre, kind: str) -> np.ndarray:
    """A filled shape of about `area` (fraction of size^2) at `centre`, as uint8 {0,255}."""
    mask = np.zeros((size, size), np.uint8)
    radius = np.sqrt(area / np.pi) * size  # radius of the disc of that area
    cx, cy = centre
    if kind == "ellipse":
        aspect = rng.uniform(0.55, 1.0)
        a, b = radius / np.sqrt(aspect), radius * np.sqrt(aspect)
        cv2.ellipse(
            mask,
            (int(cx * 16), int(cy * 16)),
            (int(a * 16), int(b * 16)),
            rng.uniform(0, 180),
            0,
            360,
            255,
            -1,
            cv2.LINE_8,
            4,
        )
    else:
        if kind == "polygon":
            n = int(rng.integers(3, 8))
            angles = np.sort(rng.uniform(0, 2 * np.pi, n))
            angles = (angles + np.linspace(0, 2 * np.pi, n, endpoint=False)) / 2  # spread out
            radii = radius * rng.uniform(0.85, 1.35, n)
        else:  # blob: a circle with a smooth radial perturbation
            n = 48
            angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
            radii = np.full(n, radius, np.float64)
            for k in (2, 3, 4):
                radii *= 1 + rng.uniform(0, 0.22) * np.cos(k * angles + rng.uniform(0, 2 * np.pi))
        # rescale so the polygon has the requested area (shoelace formula): a random triangle
        # would otherwise be far smaller than the disc of the same radius
        x, y = radii * np.cos(angles), radii * np.sin(angles)
        poly_area = 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
        scale = np.sqrt(area * size * size / max(poly_area, 1e-6))
        pts = np.stack([cx + scale * x, cy + scale * y], axis=1)
        cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], 255, cv2.LINE_8, 4)
    return mask


def render_scene(
    seed: int, index: int, config: WorldConfig = WorldConfig()
) -> tuple[np.ndarray, np.ndarray]:
    """Scene `index` of world `seed`: (image uint8 HxWx3 RGB, mask bool HxW)."""
    return _render(seed, index, config, with_object=True)


def render_background(seed: int, index: int, config: WorldConfig = WorldConfig()) -> np.ndarray:
    """Scene `index` without its object (same random draws): lets tests check the true mask."""
    return _render(seed, index, config, with_object=False)[0]


def _render(seed: int, index: int, config: WorldConfig, with_object: bool):
    rng = _rng(seed, index)
    res = config.resolution
    size = res * SUPERSAMPLE

    # Background: two colours of independent hue around one brightness level, a gradient
    # between them, low-frequency noise, and clutter shapes (smaller than the object).
    bg_level = rng.uniform(config.min_level, config.max_level)
    c1 = _colour(rng, np.clip(bg_level + rng.uniform(-0.25, 0.25), 0.03, 0.97))
    c2 = _colour(rng, np.clip(bg_level + rng.uniform(-0.25, 0.25), 0.03, 0.97))
    t = _gradient(rng, size)[..., None] + 0.5
    img = (1 - t) * c1 + t * c2
    img += 0.08 * _low_freq_noise(rng, size, int(rng.integers(3, 7)))[..., None]
    for _ in range(int(rng.integers(0, config.max_clutter + 1))):
        kind = SHAPES[int(rng.integers(0, 3))]
        centre = rng.uniform(0.05, 0.95, 2) * size
        clutter = _shape_mask(rng, size, rng.uniform(0.01, 0.04), centre, kind) > 127
        level = np.clip(bg_level + rng.uniform(-0.3, 0.3), 0.03, 0.97)
        img[clutter] = 0.3 * img[clutter] + 0.7 * _colour(rng, level)

    # Object: its own brightness level, independent of the background's.
    area = rng.uniform(config.min_area, config.max_area)
    kind = SHAPES[int(rng.integers(0, 3))]
    radius = np.sqrt(area / np.pi) * size
    margin = min(radius * 0.8, size * 0.45)
    centre = rng.uniform(margin, size - margin, 2)
    obj = _shape_mask(rng, size, area, centre, kind).astype(np.float32) / 255.0
    obj_level = rng.uniform(config.min_level, config.max_level)
    colour = _colour(rng, obj_level)
    # mild shading (a lit side) and a faint low-frequency texture, so the object is not flat
    shade = 1.0 + rng.uniform(0.0, 0.35) * _gradient(rng, size)
    texture = 1.0 + 0.05 * _low_freq_noise(rng, size, int(rng.integers(4, 9)))
    obj_rgb = colour[None, None, :] * (shade * texture)[..., None]
    if with_object:
        img = (1 - obj[..., None]) * img + obj[..., None] * obj_rgb

    img = cv2.resize(np.clip(img, 0, 1), (res, res), interpolation=cv2.INTER_AREA)
    cover = cv2.resize(obj, (res, res), interpolation=cv2.INTER_AREA)
    image = np.round(img * 255).astype(np.uint8)
    return image, cover >= 0.5


def render_batch(
    seed: int, start: int, count: int, config: WorldConfig = WorldConfig()
) -> tuple[np.ndarray, np.ndarray]:
    """Scenes start..start+count-1: (uint8 [N,H,W,3], bool [N,H,W])."""
    res = config.resolution
    images = np.empty((count, res, res, 3), np.uint8)
    masks = np.empty((count, res, res), bool)
    for j in range(count):
        images[j], masks[j] = render_scene(seed, start + j, config)
    return images, masks


# The training images of the GAN and the held-out test scenes come from different seeds.
TRAIN_SEED = 0
TEST_SEED = 1_000_003


def write_folder(
    out: str | Path, count: int, seed: int = TEST_SEED, config: WorldConfig = WorldConfig()
) -> Path:
    """Write `count` scenes as images/NNNNN.png + masks/NNNNN.png (the generic eval layout).

    Idempotent: a scene whose two files exist is skipped; files are written atomically, so an
    interrupted run never leaves a half-written PNG.
    """
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    for i in range(count):
        name = f"{i:05d}.png"
        img_path, mask_path = out / "images" / name, out / "masks" / name
        if img_path.exists() and mask_path.exists():
            continue
        image, mask = render_scene(seed, i, config)
        for path, arr in (
            (img_path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR)),
            (mask_path, mask.astype(np.uint8) * 255),
        ):
            ok, buf = cv2.imencode(".png", arr)
            if not ok:
                raise OSError(f"cannot encode {path}")
            storage.write_bytes_atomic(str(path), buf.tobytes())
    return out


PROG = "python -m toyworld.world"
DEFAULT_COUNT = 1000  # scenes the CLI writes


def parser():
    from segcore.options import Parser

    p = Parser(prog=PROG, description="Write world scenes as images/ + masks/ (eval's layout).")
    p.add_argument("out", help="folder to write images/ and masks/ into")
    p.add_argument("--count", type=int, default=DEFAULT_COUNT, help="scenes (default: %(default)s)")
    p.add_argument(
        "--seed", type=int, default=TEST_SEED, help="world seed (default: %(default)s, TEST_SEED)"
    )
    p.add_argument(
        "--resolution",
        type=int,
        default=WorldConfig.resolution,
        help="image size in pixels, >= 8 (default: %(default)s)",
    )
    return p


def main(argv=None) -> None:
    """python -m toyworld.world OUT [--count N] [--seed S] [--resolution R]; exits."""
    from segcore.cli import UsageError, run_cli

    def _main(argv):
        args = parser().parse_args(argv)
        if args.count < 1 or args.resolution < 8:
            raise UsageError("--count must be >= 1 and --resolution >= 8")
        out = write_folder(args.out, args.count, args.seed, WorldConfig(resolution=args.resolution))
        print(f"wrote {args.count} scenes to {out}")

    run_cli(lambda _: _main(argv), PROG)


if __name__ == "__main__":
    main()
