"""Encoding and decoding of one shard sample, shared by the generator (writer) and the trainer
(reader). Field names and value conventions: segcore/schema.py.

Encoders are deterministic (OpenCV's JPEG and PNG writers with fixed settings), so the same
arrays always give the same bytes; cv2 is imported when called.
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
) -> dict:
    """One WebDataset sample: {"__key__", image JPEG, mask PNG, meta JSON} with bytes values."""
    return {
        "__key__": key,
        schema.IMAGE_KEY: encode_jpeg(image, jpeg_quality),
        schema.MASK_KEY: encode_mask_png(mask, png_compression),
        schema.META_KEY: json.dumps(meta, sort_keys=True).encode(),
    }


def decode_sample(sample: dict) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 [H, W, 3], mask uint8 [H, W] as stored) from a raw sample's bytes.

    ValueError (naming the sample) when a field is missing, undecodable, or the two sizes differ.
    """
    import cv2

    key = sample.get("__key__")
    for field in (schema.IMAGE_KEY, schema.MASK_KEY):
        if field not in sample:
            raise ValueError(f"sample {key!r} has no {field!r} field")
    # straight to RGB: the same pixels as a BGR decode plus a conversion, without the copy
    img = cv2.imdecode(np.frombuffer(sample[schema.IMAGE_KEY], np.uint8), cv2.IMREAD_COLOR_RGB)
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
