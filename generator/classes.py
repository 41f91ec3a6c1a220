"""`--classes SPEC`: the classes a conditional GAN draws its samples from, and the draw.

SPEC is a list of class ids and inclusive ranges, "1,5,10-20" (ImageNet ids 0..999 for BigGAN),
or a file (local path or object-store URL) holding such ids and ranges separated by commas,
spaces or newlines, with `#` starting a comment. The parsed set is sorted and deduplicated, so
"5,1,1-2" and "1,2,5" are the same run. No SPEC means every class of the GAN.

The class of each sample is drawn uniformly from the set (as the authors of the BigGAN
"background removal" masks do, one class per sample), from its own random stream; see
`draw_labels`.
"""

from __future__ import annotations

import re

import numpy as np

from segcore import storage
from segcore.cli import UsageError

_LIST_RE = re.compile(r"^[\d\s,\-]+$")  # a SPEC made of ids and ranges only (else: a file)
_ITEM_RE = re.compile(r"^(\d+)(?:-(\d+))?$")


def _parse_items(text: str, where: str, num_classes: int) -> set[int]:
    ids: set[int] = set()
    for item in re.split(r"[\s,]+", text.strip()):
        if not item:
            continue
        m = _ITEM_RE.match(item)
        if m is None:
            raise UsageError(f"--classes: {where}: {item!r} is not a class id or a range A-B")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if lo > hi:
            raise UsageError(f"--classes: {where}: range {item} is empty (start > end)")
        if hi >= num_classes:
            raise UsageError(
                f"--classes: {where}: class {hi} is out of range; this GAN has classes "
                f"0..{num_classes - 1}"
            )
        ids.update(range(lo, hi + 1))
    return ids


def parse_classes(spec: str | None, num_classes: int) -> tuple[int, ...] | None:
    """The sorted class ids SPEC names (None for no SPEC: every class). UsageError (one line)
    for a malformed item, an id >= num_classes, an unreadable file or an empty set."""
    if spec is None or not spec.strip():
        return None
    if num_classes < 1:
        raise UsageError("--classes needs a class-conditional GAN; this one has no classes")
    if _LIST_RE.match(spec):
        ids = _parse_items(spec, repr(spec), num_classes)
    else:
        shown = storage.redact(spec)
        if not storage.exists(spec):
            raise UsageError(
                f"--classes {shown}: no such file (SPEC is ids and ranges such as "
                "'1,5,10-20', or a file of them)"
            )
        try:
            text = storage.read_bytes(spec).decode("utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise UsageError(f"--classes: cannot read {shown}: {err}") from err
        body = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
        ids = _parse_items(body, shown, num_classes)
    if not ids:
        raise UsageError(f"--classes {spec!r} names no class")
    return tuple(sorted(ids))


def draw_labels(
    rng: np.random.Generator, n: int, num_classes: int, classes: tuple[int, ...] | None
) -> np.ndarray:
    """n class ids (int64), each uniform over `classes` (None: 0..num_classes-1).

    One bounded integer per sample from `rng`, so drawing in batches of any size gives the same
    sequence (tests/generator/test_biggan_classes.py checks it)."""
    if classes is None:
        return rng.integers(0, num_classes, size=n, dtype=np.int64)
    pick = rng.integers(0, len(classes), size=n, dtype=np.int64)
    return np.asarray(classes, dtype=np.int64)[pick]
