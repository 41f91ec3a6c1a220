"""What the shard image format costs and loses: bytes per image and JPEG's round-trip error.

    python benchmarks/image_format.py RUN [--samples 1000] [--jpeg-quality 95]

RUN is a generator run made with `--image-format png` (its images are the GAN's uint8 pixels
exactly). For its first --samples images, prints the mean bytes of each image as the generator
encodes it (JPEG at --jpeg-quality, PNG at the run's --png-compression), the whole sample
(image + mask PNG + meta JSON) in each format, and the error of the JPEG round trip against the
lossless pixels (mean and max absolute difference, in 1/255). Measured numbers:
docs/benchmarks.md#shard-image-format.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from segcore import schema, storage
from segcore.cli import UsageError, run_cli
from segcore.samples import decode_sample, encode_jpeg, encode_png

PROG = "image_format.py"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("run", help="generator run folder made with --image-format png")
    p.add_argument("--samples", type=int, default=1000, help="images to measure")
    p.add_argument("--jpeg-quality", type=int, default=95, help="JPEG quality to compare")
    return p


def raw_samples(run: str, limit: int):
    from trainer.data import ErrorCounter, iter_shard

    counter = ErrorCounter(" (benchmark)")
    index = 0
    while True:
        url = storage.join(run, schema.shard_name(index))
        if not storage.exists(url):
            return
        for raw in iter_shard(url, counter):
            yield raw
            limit -= 1
            if limit == 0:
                return
        index += 1


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    config = json.loads(storage.read_bytes(storage.join(args.run, schema.RUN_CONFIG)))["config"]
    if config.get("image_format", "jpg") != "png":
        raise UsageError(
            f"{args.run} holds JPEG images; measure a run made with --image-format png"
        )
    png_level = int(config["png_compression"])
    sizes = {"png": [], "jpg": [], "mask+meta": []}
    errors = []
    for raw in raw_samples(args.run, args.samples):
        img, _ = decode_sample(raw)
        jpg = encode_jpeg(img, args.jpeg_quality)
        sizes["png"].append(len(encode_png(img, png_level)))
        sizes["jpg"].append(len(jpg))
        sizes["mask+meta"].append(len(raw[schema.MASK_KEY]) + len(raw[schema.META_KEY]))
        back, _ = decode_sample({"jpg": jpg, schema.MASK_KEY: raw[schema.MASK_KEY]})
        errors.append(np.abs(back.astype(np.int16) - img.astype(np.int16)))
    if not errors:
        raise UsageError(f"{args.run}: no samples to measure")
    diff = np.stack(errors)
    side = diff.shape[1]
    print(f"{len(errors)} images of {side} x {side} from {args.run}")
    print(f"{'format':32s} {'image bytes':>12s} {'sample bytes':>13s}")
    extra = float(np.mean(sizes["mask+meta"]))
    for name, label in (("jpg", f"JPEG q{args.jpeg_quality}"), ("png", f"PNG level {png_level}")):
        mean = float(np.mean(sizes[name]))
        print(f"{label:32s} {mean:12.0f} {mean + extra:13.0f}")
    print(
        f"JPEG q{args.jpeg_quality} round trip: mean |error| {diff.mean():.2f}/255, "
        f"max {int(diff.max())}/255, pixels changed {float((diff > 0).mean()):.1%}"
    )
    return 0


if __name__ == "__main__":
    run_cli(main, PROG)
