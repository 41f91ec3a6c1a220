"""Encoding and decoding of one shard sample, shared by the generator (writer) and the trainer
(reader). Field names and value conventions: segcore/schema.py.

Encoders are deterministic (OpenCV's JPEG and PNG writers with fixed settings), so the same
arrays always give the same bytes; cv2 is imported when called. Images are JPEG (lossy, the
default) or PNG (lossless: decoding gives back the GAN's uint8 pixels exactly); the reader
takes either.
"""

from __future__ import annotations

import json

import numpy as np

from segcore import schema


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """uint8 RGB [H, W, 3] -> JPEG bytes."""
    import cv2

    ok, buf = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def encode_png(rgb: np.ndarray, compression: int) -> bytes:
    """uint8 RGB [H, W, 3] -> lossless PNG bytes."""
    import cv2

    ok, buf = cv2.imencode(".png", rgb[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, int(compression)])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def encode_image(rgb: np.ndarray, image_format: str, *, jpeg_quality: int, png_compression: int):
    """-> (field, bytes): the image in `image_format` (schema.IMAGE_FORMATS) and its field."""
    if image_format == "jpg":
        return schema.IMAGE_KEY, encode_jpeg(rgb, jpeg_quality)
    if image_format == "png":
        return schema.IMAGE_KEYS["png"], encode_png(rgb, png_compression)
    raise ValueError(
        f"unknown image format {image_format!r}; choose {', '.join(schema.IMAGE_FORMATS)}"
    )


def encode_mask_png(mask: np.ndarray, compression: int) -> bytes:
    """bool [H, W] -> single-channel PNG with values {0, 255}."""
    import cv2

    img = np.where(mask, np.uint8(255), np.uint8(0))
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, int(compression)])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def encode_sample(
    key: str,
    image: np.ndarray,
    mask: np.ndarray,
    meta: dict,
    *,
    jpeg_quality: int,
    png_compression: int,
    image_format: str = "jpg",
) -> dict:
    """One WebDataset sample: {"__key__", image (JPEG or PNG), mask PNG, meta JSON} with bytes
    values."""
    field, image_bytes = encode_image(
        image, image_format, jpeg_quality=jpeg_quality, png_compression=png_compression
    )
    return {
        "__key__": key,
        field: image_bytes,
        schema.MASK_KEY: encode_mask_png(mask, png_compression),
        schema.META_KEY: json.dumps(meta, sort_keys=True).encode(),
    }


def image_field(sample: dict) -> str:
    """The sample's image field (`jpg` or `image.png`); ValueError when it has none or both."""
    found = [f for f in schema.IMAGE_KEYS.values() if f in sample]
    if len(found) != 1:
        what = "no image field" if not found else f"two image fields {found}"
        expected = " or ".join(repr(f) for f in schema.IMAGE_KEYS.values())
        raise ValueError(f"sample {sample.get('__key__')!r} has {what} (expected {expected})")
    return found[0]


def decode_sample(sample: dict) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 [H, W, 3], mask uint8 [H, W] as stored) from a raw sample's bytes.

    ValueError (naming the sample) when a field is missing, undecodable, or the two sizes differ.
    """
    import cv2

    key = sample.get("__key__")
    field = image_field(sample)
    if schema.MASK_KEY not in sample:
        raise ValueError(f"sample {key!r} has no {schema.MASK_KEY!r} field")
    # straight to RGB: the same pixels as a BGR decode plus a conversion, without the copy;
    # imdecode reads the format from the bytes, so JPEG and PNG images take the same call
    img = cv2.imdecode(np.frombuffer(sample[field], np.uint8), cv2.IMREAD_COLOR_RGB)
    mask = cv2.imdecode(np.frombuffer(sample[schema.MASK_KEY], np.uint8), cv2.IMREAD_GRAYSCALE)
    if img is None or mask is None:
        raise ValueError(f"sample {key!r}: undecodable image or mask")
    if img.shape[:2] != mask.shape:
        raise ValueError(f"sample {key!r}: image {img.shape[:2]} != mask {mask.shape}")
    return img, mask


def decode_meta(sample: dict) -> dict:
    """The sample's JSON facts (ValueError if missing or malformed)."""
    if schema.META_KEY not in sample:
        raise ValueError(f"sample {sample.get('__key__')!r} has no {schema.META_KEY!r} field")
    return json.loads(sample[schema.META_KEY])
