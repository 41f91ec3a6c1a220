"""Embed a folder of images with a GAN's encoder: the latents of E-BigBiGAN (PAPER.md section 4).

    python -m generator.embed --gan bigbigan-hub --images DIR --out z.npy
    python -m generator.embed --gan bigbigan-hub --weights /path/to/module --images DIR \
        --out s3://bucket/emb/z.npy --output z_mean --batch-size 128

Each image (found recursively under DIR, in sorted relative-path order) is resized so that its
short side is 256 (bilinear, like torchvision's Resize on PIL images), center-cropped to
256x256, scaled to [-1, 1] and encoded; BigBiGAN's `z_sample` output is the default (the paper's
choice), `--output z_mean` the alternative. Works with any backend that has an encoder
(`generator.gans.load_gan`); `--size` defaults to the backend's `encoder_resolution` (256).

Writes `z.npy` (float32 [N, latent_dim]) and `z.json` beside it (version, config, the image
order), consumed by the generator's `--latents z.npy`. Large sets are resumable: chunks of
`--chunk-size` images are written atomically to `z.npy.parts/chunk-NNNNNN.npy` with a
`progress.json` holding the config hash; a rerun with the same arguments skips finished chunks,
and a rerun after completion does nothing. The parts folder is removed once `z.npy` is written.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import hashlib
import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from segcore import storage
from segcore.cli import UsageError, run_cli
from segcore.config import config_hash, dump_json

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclasses.dataclass(frozen=True)
class EmbedConfig:
    gan: str
    weights: str | None
    images: str
    out: str
    output: str | None  # encoder output name; None = the backend's default (z_sample)
    size: int | None  # None = the backend's encoder_resolution (256 for BigBiGAN)
    chunk_size: int
    n_images: int
    image_list_sha256: str


def list_images(root: str) -> list[str]:
    """Relative POSIX paths of the image files under `root`, sorted."""
    base = Path(root)
    if not base.is_dir():
        raise UsageError(f"--images: not a directory: {root}")
    names = sorted(
        p.relative_to(base).as_posix()
        for p in base.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )
    if not names:
        raise UsageError(f"--images: no images ({', '.join(IMAGE_EXTENSIONS)}) under {root}")
    return names


def load_image(path: Path, size: int) -> np.ndarray:
    """[3, size, size] float32 in [-1, 1]: short side -> size (bilinear), center crop."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            # torchvision Resize(int): the short side becomes `size`, the long side is truncated.
            if w <= h:
                ow, oh = size, int(size * h / w)
            else:
                ow, oh = int(size * w / h), size
            im = im.resize((ow, oh), Image.BILINEAR)
            top, left = round((oh - size) / 2.0), round((ow - size) / 2.0)
            im = im.crop((left, top, left + size, top + size))
            arr = np.asarray(im, dtype=np.float32)
    except OSError as err:
        raise UsageError(f"cannot read image {path}: {err}") from None
    return (arr.transpose(2, 0, 1) / 255.0) * 2.0 - 1.0


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _read_npy(url: str) -> np.ndarray:
    return np.load(io.BytesIO(storage.read_bytes(url)), allow_pickle=False)


def sidecar_url(out: str) -> str:
    return out[: -len(".npy")] + ".json" if out.endswith(".npy") else out + ".json"


def _encode_fn(backend, output: str | None):
    """backend.encode, with `output=` when the backend names its encoder outputs."""
    names = getattr(backend, "encode_outputs", None)
    if names is None:
        if output is not None:
            raise UsageError(f"--output: the {backend.name} encoder has a single output")
        return backend.encode
    chosen = output or "z_sample"
    if chosen not in names:
        raise UsageError(f"--output {chosen!r}: the encoder has {', '.join(names)}")
    return lambda x: backend.encode(x, output=chosen)


def embed(cfg: EmbedConfig, names: list[str], batch_size: int, device: str, workers: int) -> int:
    """Run (or resume, or skip) the embedding described by `cfg`; returns the images encoded."""
    import torch

    from generator.gans import load_gan
    from segcore.progress import progress_bar

    h = config_hash(cfg)
    side = sidecar_url(cfg.out)
    if storage.exists(cfg.out) and storage.exists(side):
        done = json.loads(storage.read_bytes(side))
        if done.get("config_hash") == h:
            print(f"{storage.redact(cfg.out)} is already complete ({cfg.n_images} images)")
            return 0
        raise UsageError(
            f"{storage.redact(cfg.out)} exists from a different run (config hash "
            f"{done.get('config_hash')} != {h}); remove it or choose another --out"
        )
    parts = cfg.out + ".parts"
    progress = storage.join(parts, "progress.json")
    n_chunks = -(-cfg.n_images // cfg.chunk_size)
    chunk_name = "chunk-{:06d}.npy".format
    finished = {n for n in storage.list_names(parts) if n.startswith("chunk-")}
    if finished:
        if not storage.exists(progress):
            raise UsageError(f"{storage.redact(parts)} has chunks but no progress.json; delete it")
        rec = json.loads(storage.read_bytes(progress))
        if rec.get("config_hash") != h:
            raise UsageError(
                f"{storage.redact(parts)} holds chunks of a different run; delete it or "
                "rerun with the same arguments"
            )
    todo = [i for i in range(n_chunks) if chunk_name(i) not in finished]
    sizes = [min(cfg.chunk_size, cfg.n_images - i * cfg.chunk_size) for i in range(n_chunks)]
    done_images = cfg.n_images - sum(sizes[i] for i in todo)

    encoded = 0
    if todo:
        # Check the backend before recording anything, so a wrong --gan leaves no trace.
        backend = load_gan(cfg.gan, cfg.weights, device)
        if not backend.has_encoder:
            raise UsageError(f"--gan {cfg.gan} has no encoder; use e.g. bigbigan-hub")
        encode = _encode_fn(backend, cfg.output)
        size = cfg.size or int(getattr(backend, "encoder_resolution", 256))
        if not finished:
            storage.write_bytes_atomic(progress, dump_json(cfg, config_hash=h).encode())
        root = Path(cfg.images)
        bar = progress_bar(total=cfg.n_images, initial=done_images, unit="img", desc="embed")
        with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
            for i in todo:
                chunk = names[i * cfg.chunk_size : (i + 1) * cfg.chunk_size]
                out = []
                for j in range(0, len(chunk), batch_size):
                    batch = chunk[j : j + batch_size]
                    arrays = list(pool.map(lambda n: load_image(root / n, size), batch))
                    x = torch.from_numpy(np.stack(arrays)).to(backend.device)
                    with torch.no_grad():
                        z = encode(x)
                    out.append(z.detach().float().cpu().numpy())
                    bar.update(len(batch))
                array = np.concatenate(out).astype(np.float32)
                if array.shape != (len(chunk), backend.latent_dim):
                    raise RuntimeError(f"encoder returned {array.shape} for {len(chunk)} images")
                storage.write_bytes_atomic(storage.join(parts, chunk_name(i)), _npy_bytes(array))
                encoded += len(chunk)
        bar.close()

    z = np.concatenate([_read_npy(storage.join(parts, chunk_name(i))) for i in range(n_chunks)])
    if z.shape[0] != cfg.n_images or z.dtype != np.float32 or z.ndim != 2:
        raise RuntimeError(f"assembled {z.shape} {z.dtype}, expected [{cfg.n_images}, d] float32")
    # Sidecar first: `z.npy` appearing last marks completion (both must exist to count as done).
    info = json.loads(dump_json(cfg, config_hash=h))
    info.update(images=names, shape=list(z.shape), format="gan-objseg/embeddings/v1")
    storage.write_bytes_atomic(side, (json.dumps(info, indent=1) + "\n").encode())
    storage.write_bytes_atomic(cfg.out, _npy_bytes(z))
    _remove_parts(parts, n_chunks, chunk_name)
    print(f"wrote {storage.redact(cfg.out)}: {z.shape[0]} x {z.shape[1]} ({encoded} encoded now)")
    return encoded


def _remove_parts(parts: str, n_chunks: int, chunk_name) -> None:
    names = [chunk_name(i) for i in range(n_chunks)] + ["progress.json"]
    if storage.is_remote(parts):
        fs, path = storage.filesystem(parts)
        fs.rm([f"{path.rstrip('/')}/{n}" for n in names if fs.exists(f"{path.rstrip('/')}/{n}")])
        return
    base = storage.local_path(parts)
    for n in names:
        (base / n).unlink(missing_ok=True)
    if base.is_dir() and not any(base.iterdir()):
        base.rmdir()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m generator.embed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--gan", default="bigbigan-hub", help="a backend with an encoder")
    parser.add_argument("--weights", default=None, help="backend weights / TF-Hub handle")
    parser.add_argument("--images", required=True, help="folder of images (searched recursively)")
    parser.add_argument("--out", required=True, help="output .npy (local path or fsspec URL)")
    parser.add_argument(
        "--output", default=None, help="encoder output: z_sample (default, paper) or z_mean"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--chunk-size", type=int, default=4096, help="images per resumable chunk")
    parser.add_argument(
        "--size",
        type=int,
        default=None,
        help="resize/crop size (default: the backend's encoder resolution, 256)",
    )
    parser.add_argument("--device", default=None, help="torch device (default: cuda if present)")
    parser.add_argument("--workers", type=int, default=4, help="image decoding threads")
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.chunk_size < 1:
        raise UsageError("--batch-size and --chunk-size must be >= 1")
    if not args.out.endswith(".npy"):
        raise UsageError(f"--out must end with .npy, got {args.out}")
    names = list_images(args.images)
    device = args.device
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    listing = hashlib.sha256("\n".join(names).encode()).hexdigest()
    cfg = EmbedConfig(
        gan=args.gan,
        weights=args.weights,
        images=str(Path(args.images).resolve()),
        out=args.out,
        output=args.output,
        size=args.size,
        chunk_size=args.chunk_size,
        n_images=len(names),
        image_list_sha256=listing,
    )
    embed(cfg, names, args.batch_size, device, args.workers)
    return 0


if __name__ == "__main__":
    run_cli(main, "python -m generator.embed")
