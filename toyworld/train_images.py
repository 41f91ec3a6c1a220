"""The toy-world GAN's training images (rendered once, cached in the run folder) and its sample
grids (PNG sheets of generated images).

Training images are scenes 0..N-1 of `toyworld.world.TRAIN_SEED`, images only: the masks are
never rendered into the cache, the GAN never sees them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segcore.storage import write_local_atomic

RENDER_CHUNK = 500  # scenes per rendering job


def render_images(start: int, stop: int, resolution: int) -> np.ndarray:
    """World images start..stop-1 of TRAIN_SEED as uint8 [N, R, R, 3]."""
    from toyworld.world import TRAIN_SEED, WorldConfig, render_scene

    cfg = WorldConfig(resolution=resolution)
    # [0]: the image; the mask is discarded, the GAN trains on images only
    return np.stack([render_scene(TRAIN_SEED, i, cfg)[0] for i in range(start, stop)])


def cache_path(out: Path, n: int, resolution: int) -> Path:
    return out / f"train_images_{n}_{resolution}.npy"


def load_images(out: Path, n: int, resolution: int, workers: int = 1) -> np.ndarray:
    """World images (uint8 [N,R,R,3]) for training; cached in OUT so a resume skips rendering.

    Scenes are a pure function of (seed, index), so any number of workers renders the same array.
    """
    cache = cache_path(out, n, resolution)
    if cache.exists():
        return np.load(cache)
    out.mkdir(parents=True, exist_ok=True)
    from segcore.progress import progress_bar

    bounds = [(a, min(a + RENDER_CHUNK, n)) for a in range(0, n, RENDER_CHUNK)]
    images = np.empty((n, resolution, resolution, 3), np.uint8)
    bar = progress_bar(total=n, desc="rendering world images")
    if workers <= 1:
        for a, b in bounds:
            images[a:b] = render_images(a, b, resolution)
            bar.update(b - a)
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        ctx = mp.get_context("spawn")  # no fork of a process that may hold CUDA or threads
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            jobs = [(a, b, pool.submit(render_images, a, b, resolution)) for a, b in bounds]
            for a, b, job in jobs:
                images[a:b] = job.result()
                bar.update(b - a)
    bar.close()
    write_local_atomic(cache, lambda f: np.save(f, images))
    return images


def save_grid(images, path: Path, nrow: int = 8) -> None:
    """images float [N,3,R,R] in [-1,1] -> one PNG grid (written atomically)."""
    import cv2

    x = ((images.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    n, r = x.shape[0], x.shape[1]
    rows = (n + nrow - 1) // nrow
    grid = np.zeros((rows * (r + 1), nrow * (r + 1), 3), np.uint8)
    for i in range(n):
        y0, x0 = (i // nrow) * (r + 1), (i % nrow) * (r + 1)
        grid[y0 : y0 + r, x0 : x0 + r] = x[i]
    grid = cv2.resize(grid, None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST)
    ok, png = cv2.imencode(".png", cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"PNG encoding of {path} failed")
    write_local_atomic(path, lambda f: f.write(png.tobytes()))
