"""Mask labelers: `--mask labeler --labeler NAME --labeler-weights FILE` takes each sample's
mask from a SUPERVISED saliency model applied to G(z), instead of the latent shift (the paper's
Table 6 ablation, Appendix A.1). Such a run is not unsupervised: the model was trained on
human-made masks. Manual: docs/labelers.md.

A labeler is an object with `name`, `device` and `masks(images [N, 3, R, R] in [-1, 1]) ->
bool [N, R, R]` (True = object) on that device. Labelers are registered as "module:factory"
strings, imported only when chosen, like the GAN backends (generator/gans/__init__.py); a
factory has the signature `factory(weights: str | None, device) -> labeler`.

This module stays light (no torch import): the generator's config imports it.
"""

from __future__ import annotations

import hashlib
import importlib
import sys

from segcore.cli import UsageError

LABELER_MASK = "labeler"  # the --mask rule of this mode
DEFAULT_LABELER = "u2net"
# name -> "module:factory"
_REGISTRY: dict[str, str] = {
    "u2net": "generator.labelers.u2net:build",  # U2NET or U2NETP, read from the file
}
# the filters of section 3.3 that judge the mask; the histogram filter judges the shifted
# image G(z + r h), which this mode does not render (docs/labelers.md, "Filters")
LABELER_FILTERS = ("components", "mask_size")


def available() -> list[str]:
    return sorted(_REGISTRY)


def load_labeler(name: str, weights: str | None, device="cpu", sha256: str | None = None):
    """Build the labeler `name` with `weights` on `device`; with `sha256`, the file must have
    that digest (the one the run's config recorded). UsageError for any bad input."""
    if name not in _REGISTRY:
        raise UsageError(f"unknown labeler {name!r}; choose one of: {', '.join(available())}")
    if sha256 is not None and weights:
        found = file_sha256(weights)
        if found != sha256:
            raise UsageError(
                f"labeler weights {weights} changed since the run's config was written "
                f"(sha256 {found[:16]}..., recorded {sha256[:16]}...)"
            )
    module_name, _, factory_name = _REGISTRY[name].partition(":")
    factory = getattr(importlib.import_module(module_name), factory_name)
    return factory(weights=weights, device=device)


def file_sha256(path: str) -> str:
    from segcore import storage

    if not storage.exists(path):
        raise UsageError(f"labeler weights not found: {storage.redact(path)}")
    return hashlib.sha256(storage.read_bytes(path)).hexdigest()


def labeler_options(options: dict, *, direction_file, shift) -> dict:
    """Resolve the labeler mode from the generator's options (popping `labeler` and
    `labeler_weights` from `options`): {} when it is off, else the GeneratorConfig fields of the
    mode (mask, labeler, labeler_weights, labeler_sha256, filters without the histogram
    filter). The labeler file is loaded once here, on the CPU, so a bad file is refused before
    anything is written. UsageError for options that do not go together."""
    name = options.pop("labeler", None)
    weights = options.pop("labeler_weights", None)
    mask = options.get("mask", "auto")
    if mask != LABELER_MASK:
        if name is None and weights is None:
            return {}
        if mask != "auto":
            raise UsageError(f"--labeler and --labeler-weights go with --mask {LABELER_MASK}")
    if not weights:
        raise UsageError(f"--mask {LABELER_MASK} needs --labeler-weights FILE")
    if direction_file or shift is not None:
        raise UsageError(
            f"--mask {LABELER_MASK} takes masks from the labeler on G(z): no --direction or "
            "--shift is used"
        )
    name = name or DEFAULT_LABELER
    sha = file_sha256(weights)
    load_labeler(name, weights, "cpu")
    filters = tuple(options.get("filters", LABELER_FILTERS))
    if "histogram" in filters:
        print(
            "generator: --mask labeler: the histogram filter is left out (it judges the "
            "shifted image G(z + r h), which this mode does not render)",
            file=sys.stderr,
        )
        filters = tuple(f for f in filters if f != "histogram")
    print(
        f"generator: masks from {name}, a SUPERVISED saliency model trained on human-made "
        "masks: this run is NOT unsupervised (supervised_masks: true in config.json and the "
        "manifest)",
        file=sys.stderr,
    )
    return {
        "mask": LABELER_MASK,
        "labeler": name,
        "labeler_weights": str(weights),
        "labeler_sha256": sha,
        "filters": filters,
    }
