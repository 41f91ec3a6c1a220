"""generator.embed: preprocessing, output files, exact resume, any encoder backend."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

import generator.gans
from generator import embed as emb
from segcore.cli import UsageError
from tests.bigbigan.conftest import run_cli


def test_short_side_resize_then_center_crop(tmp_path):
    # 512x256 (w x h): the short side is already 256, so only the center crop acts:
    # columns 128..383 are the green middle half; red/blue quarters are cut away.
    a = np.zeros((256, 512, 3), np.uint8)
    a[:, :128] = (255, 0, 0)
    a[:, 128:384] = (0, 200, 0)
    a[:, 384:] = (0, 0, 255)
    Image.fromarray(a).save(tmp_path / "wide.png")
    x = emb.load_image(tmp_path / "wide.png", 256)
    assert x.shape == (3, 256, 256) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], -1.0)
    np.testing.assert_allclose(x[1], 2 * 200 / 255 - 1, atol=1e-6)
    np.testing.assert_allclose(x[2], -1.0)
    # 100x300 (w x h) -> 256x768 -> rows 256..511 kept: the middle third only.
    b = np.zeros((300, 100, 3), np.uint8)
    b[100:200] = 255
    Image.fromarray(b).save(tmp_path / "tall.png")
    y = emb.load_image(tmp_path / "tall.png", 256)
    assert y.shape == (3, 256, 256)
    assert y[:, 8:-8].min() == 1.0  # well inside the white band
    assert y[:, 0].max() < 1.0 and y[:, -1].max() < 1.0  # band edges are blurred by bilinear


def _images(root, n=5):
    rng = np.random.default_rng(0)
    (root / "sub").mkdir(parents=True)
    sizes = [(300, 260), (256, 256), (260, 400), (512, 300), (280, 280)]
    names = []
    for i in range(n):
        name = f"sub/img{i}.png" if i % 2 else f"img{i}.jpg"
        w, h = sizes[i % len(sizes)]
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / name)
        names.append(name)
    (root / "notes.txt").write_text("not an image")
    return sorted(names)


def _cfg(images, out, names, output="z_mean", chunk=2):
    listing = hashlib.sha256("\n".join(names).encode()).hexdigest()
    return emb.EmbedConfig(
        gan="bigbigan-hub",
        weights=None,
        images=str(images),
        out=str(out),
        output=output,
        size=None,
        chunk_size=chunk,
        n_images=len(names),
        image_list_sha256=listing,
    )


@pytest.fixture
def patched_hub(hub_backend, monkeypatch):
    """load_gan returns the session's fixture module (loading TF once per session)."""
    monkeypatch.setattr(generator.gans, "load_gan", lambda name, weights, device: hub_backend)
    return hub_backend


@pytest.mark.slow
def test_embed_writes_z_and_image_order_and_resumes_exactly(tmp_path, patched_hub, monkeypatch):
    images = tmp_path / "imgs"
    names = _images(images)
    assert emb.list_images(str(images)) == names

    full = tmp_path / "full" / "z.npy"
    assert emb.embed(_cfg(images, full, names), names, 2, "cpu", 2) == 5
    z_full = np.load(full)
    assert z_full.shape == (5, 120) and z_full.dtype == np.float32
    side = json.loads((tmp_path / "full" / "z.json").read_text())
    assert side["images"] == names and side["shape"] == [5, 120] and side["version"]
    assert not (tmp_path / "full" / "z.npy.parts").exists()
    # z_mean of image 3 equals encoding that image alone.
    import torch

    x3 = torch.from_numpy(emb.load_image(images / names[3], 256))[None]
    np.testing.assert_allclose(z_full[3], patched_hub.encode(x3, "z_mean")[0].numpy(), atol=1e-5)

    # Interrupted run: the 4th image fails -> chunk 0 (images 0, 1) is on disk, nothing else.
    out = tmp_path / "res" / "z.npy"
    real = emb.load_image

    def failing(path, size):
        if path.name == names[3].split("/")[-1]:
            raise KeyboardInterrupt
        return real(path, size)

    monkeypatch.setattr(emb, "load_image", failing)
    with pytest.raises(KeyboardInterrupt):
        emb.embed(_cfg(images, out, names), names, 2, "cpu", 1)
    parts = tmp_path / "res" / "z.npy.parts"
    assert sorted(p.name for p in parts.iterdir()) == ["chunk-000000.npy", "progress.json"]
    assert not out.exists()
    monkeypatch.setattr(emb, "load_image", real)
    assert emb.embed(_cfg(images, out, names), names, 2, "cpu", 1) == 3  # resumed: 3 left
    np.testing.assert_array_equal(np.load(out), z_full)
    # Done: a rerun encodes nothing and leaves the file as it is.
    before = out.read_bytes()
    assert emb.embed(_cfg(images, out, names), names, 2, "cpu", 1) == 0
    assert out.read_bytes() == before
    # Another config for the same --out is refused rather than overwritten.
    with pytest.raises(UsageError, match="different run"):
        emb.embed(_cfg(images, out, names, output="z_sample"), names, 2, "cpu", 1)


def test_backend_without_named_outputs_rejects_output_option():
    class OneOutput:
        name = "tiny"

        def encode(self, x):
            return x

    assert emb._encode_fn(OneOutput(), None).__self__.name == "tiny"
    with pytest.raises(UsageError, match="single output"):
        emb._encode_fn(OneOutput(), "z_mean")


@pytest.mark.slow
@pytest.mark.integration
def test_cli_end_to_end_and_errors(hub_module, tmp_path):
    images = tmp_path / "imgs"
    names = _images(images, n=3)
    out = tmp_path / "z.npy"
    args = [
        "-m",
        "generator.embed",
        "--gan",
        "bigbigan-hub",
        "--weights",
        str(hub_module[0]),
        "--images",
        str(images),
        "--out",
        str(out),
        "--batch-size",
        "2",
        "--device",
        "cpu",
    ]
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert np.load(out).shape == (3, 120)
    assert json.loads((tmp_path / "z.json").read_text())["images"] == names

    bad = run_cli(
        "-m",
        "generator.embed",
        "--gan",
        "bigbigan-hub",
        "--weights",
        str(hub_module[0]),
        "--images",
        str(tmp_path / "none"),
        "--out",
        str(out),
    )
    assert bad.returncode == 2 and "not a directory" in bad.stderr
    # the same output with other options is another run: refused, not mixed
    bad = run_cli(*args[:-6], "--images", str(images), "--out", str(out), "--output", "z_mean")
    ours = [ln for ln in bad.stderr.splitlines() if ln.startswith("python -m generator.embed")]
    assert bad.returncode == 2 and len(ours) == 1 and "different run" in ours[0]
    # an encoder output the module does not have is named (fresh --out, so it gets that far)
    fresh = str(tmp_path / "z2.npy")
    bad = run_cli(*args[:-6], "--images", str(images), "--out", fresh, "--output", "nope")
    ours = [ln for ln in bad.stderr.splitlines() if ln.startswith("python -m generator.embed")]
    assert bad.returncode == 2 and len(ours) == 1 and "nope" in ours[0], bad.stderr[-1500:]


def test_backend_without_encoder_leaves_no_trace(tmp_path, monkeypatch):
    class NoEncoder:
        name, has_encoder = "plain", False

    monkeypatch.setattr(generator.gans, "load_gan", lambda name, weights, device: NoEncoder())
    images = tmp_path / "imgs"
    names = _images(images, n=2)
    out = tmp_path / "z.npy"
    with pytest.raises(UsageError, match="has no encoder"):
        emb.embed(_cfg(images, out, names), names, 2, "cpu", 1)
    assert not (tmp_path / "z.npy.parts").exists() and not out.exists()


@pytest.mark.slow
@pytest.mark.integration
def test_embed_to_s3(tmp_path, patched_hub, s3_env):
    from segcore import storage

    images = tmp_path / "imgs"
    names = _images(images, n=3)
    out = f"s3://{s3_env.bucket}/emb/z.npy"
    assert emb.embed(_cfg(images, out, names), names, 2, "cpu", 1) == 3
    z = np.load(__import__("io").BytesIO(storage.read_bytes(out)))
    assert z.shape == (3, 120) and z.dtype == np.float32
    assert json.loads(storage.read_bytes(f"s3://{s3_env.bucket}/emb/z.json"))["images"] == names
    fs, _ = storage.filesystem(out)
    fs.invalidate_cache()
    # No chunk or progress object is left (SeaweedFS may keep an empty folder entry).
    left = fs.find(f"{s3_env.bucket}/emb/z.npy.parts", detail=True)
    assert [k for k, v in left.items() if v["size"] > 0 or k.endswith(".npy")] == [], left
    assert emb.embed(_cfg(images, out, names), names, 2, "cpu", 1) == 0
