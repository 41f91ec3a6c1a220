"""The loader's fast path gives what the webdataset reader and segcore's decoder give: the same
raw samples from every tar (whole or broken anywhere), and bit-identical batches."""

from __future__ import annotations

import io
import tarfile

import cv2
import numpy as np
import pytest
import torch
from webdataset.tariterators import group_by_keys, tar_file_expander

from tests.trainer.shards import write_generator_shard
from trainer import data, tarstream


def webdataset_samples(blob: bytes) -> tuple[list[dict], int]:
    """(samples, failures) of webdataset's tar_file_expander + group_by_keys: the reference."""
    errors = []

    def handler(err):
        errors.append(err)
        return True

    stream = [{"url": "u", "stream": io.BytesIO(blob)}]
    out = list(group_by_keys(tar_file_expander(stream, handler=handler), handler=handler))
    return out, len(errors)


def fast_samples(blob: bytes) -> tuple[list[dict], int]:
    errors = []

    def handler(err):
        errors.append(err)
        return True

    return list(tarstream.iter_samples(io.BytesIO(blob), "u", handler)), len(errors)


def plain_tar(members: list[tuple[str, bytes]]) -> bytes:
    """A tar written by Python's tarfile (GNU format: long names use an 'L' header)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, blob in members:
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return buf.getvalue()


@pytest.fixture(scope="module")
def generator_shard(tmp_path_factory):
    return write_generator_shard(tmp_path_factory.mktemp("gen") / "shard-000000.tar", 0, 4, 32)


def test_same_samples_as_webdataset_on_whole_and_broken_tars(generator_shard):
    blob = generator_shard.read_bytes()
    whole, bad = fast_samples(blob)
    assert [s["__key__"] for s in whole] == [f"000000_00000{i}" for i in range(4)] and bad == 0
    assert whole == webdataset_samples(blob)[0]
    # Cut anywhere: inside headers, pax records, data and padding.
    for cut in [*range(0, 1100), *range(1100, len(blob), 13)]:
        ours, our_bad = fast_samples(blob[:cut])
        ref, ref_bad = webdataset_samples(blob[:cut])
        assert ours == ref, cut
        assert (our_bad > 0) == (ref_bad > 0), (cut, our_bad, ref_bad)


def test_same_samples_for_other_tar_layouts():
    long_key = "x" * 120  # longer than a ustar name field
    members = [
        ("a.jpg", b"1"), ("a.PNG", b"2"), ("__meta__", b"skip"), ("noext", b"skip"),
        ("a.jpg", b"dup"), (f"dir/{long_key}.jpg", b"3" * 700), ("b.json", b""),
    ]  # fmt: skip
    blob = plain_tar(members)
    ours, our_bad = fast_samples(blob)
    ref, ref_bad = webdataset_samples(blob)
    assert ours == ref and our_bad == ref_bad == 1  # the duplicate 'jpg' of sample 'a'
    assert [s["__key__"] for s in ours] == ["a", f"dir/{long_key}", "b"]
    assert ours[0]["png"] == b"2" and ours[1]["jpg"] == b"3" * 700
    for garbage in (b"", b"\0garbage" * 100, bytes(1024)):
        assert fast_samples(garbage)[0] == webdataset_samples(garbage)[0] == []
    assert fast_samples(b"\0garbage" * 100)[1] == 1


def reference_batches(spec: data.StreamSpec, n_batches: int) -> list[tuple[np.ndarray, ...]]:
    """The stream as the loader built it before: webdataset's reader, a BGR decode and a
    conversion to RGB, cv2.resize to the training side, np.stack."""
    out, images, masks, draw = [], [], [], 0
    while len(out) < n_batches:
        url = data.draw_shard(spec, 0, draw)
        with open(url, "rb") as f:
            raws = webdataset_samples(f.read())[0]
        for raw in raws:
            img = cv2.imdecode(np.frombuffer(raw["jpg"], np.uint8), cv2.IMREAD_COLOR)
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
            mask = cv2.imdecode(np.frombuffer(raw["png"], np.uint8), cv2.IMREAD_GRAYSCALE)
            if img.shape[:2] != (spec.resolution,) * 2:
                side = (spec.resolution, spec.resolution)
                img = cv2.resize(img, side, interpolation=cv2.INTER_AREA)
                mask = cv2.resize(mask, side, interpolation=cv2.INTER_NEAREST)
            images.append(img)
            masks.append(mask)
            if len(images) == spec.batch_size:
                out.append((np.stack(images), np.stack(masks)))
                images, masks = [], []
                if len(out) == n_batches:
                    break
        draw += 1
    return out


@pytest.mark.parametrize("resolution", [128, 64])
def test_batches_are_bit_identical_to_the_reference_decoder(tmp_path, resolution):
    urls = [str(write_generator_shard(tmp_path / f"shard-{i:06d}.tar", i, 7, 128)) for i in (0, 1)]
    spec = data.StreamSpec(tuple(urls), 3, 0, 5, resolution, 0.05)
    got = list(data.ShardStream(spec, total=6, n_workers=1))
    want = reference_batches(spec, 6)
    assert len(got) == len(want) == 6
    for batch, (images, masks) in zip(got, want, strict=True):
        assert batch["image"].dtype == batch["mask"].dtype == torch.uint8
        assert np.array_equal(batch["image"].numpy(), images)
        assert np.array_equal(batch["mask"].numpy(), masks)
    assert set(np.unique(want[0][1])) <= {0, 255} and want[0][0].std() > 10
