"""Embed a folder of images with a GAN's encoder: the latents of the paper's E-BigBiGAN.

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

from segcore import options, storage
from segcore.cli import UsageError, run_cli
from segcore.config import config_hash, differences, dump_json

PROG = "python -m generator.embed"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclasses.dataclass(frozen=True)
class EmbedConfig:
    """What is embedded, and how; its hash identifies the run (resume, "already complete")."""

    images: str  # the folder, resolved
    out: str  # the output .npy (local path or fsspec URL)
    n_images: int
    image_list_sha256: str
    gan: str = "bigbigan-hub"
    weights: str | None = None
    output: str | None = None  # encoder output name; None = the backend's default (z_sample)
    size: int | None = None  # None = the backend's encoder_resolution (256 for BigBiGAN)
    chunk_size: int = 4096  # images per resumable chunk


@dataclasses.dataclass(frozen=True)
class EmbedSettings:
    """How the embedding runs; not part of the config hash, so a resumed run may change them."""

    batch_size: int = 64
    device: str = "auto"
    workers: int = 4  # image decoding threads


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


def embed(cfg: EmbedConfig, names: list[str], batch_size: int, device, workers: int) -> int:
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
            f"{storage.redact(cfg.out)} exists from a different run ({_what_differs(done, cfg)}); "
            "remove it or choose another --out"
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
                f"{storage.redact(parts)} holds chunks of a different run "
                f"({_what_differs(rec, cfg)}); delete it or rerun with the same arguments"
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


def _what_differs(saved: dict, cfg: EmbedConfig) -> str:
    """The fields in which the run recorded in `saved` (progress.json or the z.json sidecar)
    differs from `cfg`; the config hashes when no field does."""
    diff = differences(saved.get("config", {}), cfg)
    return "; ".join(diff) or f"config hash {saved.get('config_hash')} != {config_hash(cfg)}"


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


_CONFIG_HELP = {
    "images": "folder of images (searched recursively)",
    "out": "output .npy (local path or fsspec URL)",
    "gan": "a backend with an encoder",
    "weights": "backend weights / TF-Hub handle (none: the backend's default)",
    "output": "encoder output: z_sample (the paper's) or z_mean (none: z_sample)",
    "size": "resize/crop size (none: the backend's encoder resolution, 256)",
    "chunk_size": "images per resumable chunk",
}
_SETTINGS_HELP = {
    "batch_size": "images per encoder call",
    "device": "torch device: auto (cuda if available), cpu, cuda, cuda:N",
    "workers": "image decoding threads",
}


def build_parser() -> options.Parser:
    parser = options.Parser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    derived = ("n_images", "image_list_sha256")  # from the folder's listing
    options.add_options(parser, EmbedConfig, skip=derived, help=_CONFIG_HELP)
    options.add_options(parser, EmbedSettings, help=_SETTINGS_HELP)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from segcore.device import resolve_device

    args = build_parser().parse_args(argv)
    if args.batch_size < 1 or args.chunk_size < 1:
        raise UsageError("--batch-size and --chunk-size must be >= 1")
    if not args.out.endswith(".npy"):
        raise UsageError(f"--out must end with .npy, got {args.out}")
    names = list_images(args.images)
    device = resolve_device(args.device)
    cfg = options.config_from_args(
        EmbedConfig,
        args,
        images=str(Path(args.images).resolve()),
        n_images=len(names),
        image_list_sha256=hashlib.sha256("\n".join(names).encode()).hexdigest(),
    )
    embed(cfg, names, args.batch_size, device, args.workers)
    return 0


if __name__ == "__main__":
    run_cli(main, PROG)
