"""What the `python -m eval` sub-commands share: the metric conventions, the options record
stored in every report, the predictor built from `--model` and its options, and the dataset
read from `--data`/`--layout`."""

from __future__ import annotations

from pathlib import Path

from eval.metrics.saliency import SaliencyConventions
from segcore.cli import UsageError

CONVENTIONS = {"paper": SaliencyConventions.paper, "pysod": SaliencyConventions.pysod}


def record_options(args) -> dict:
    """The resolved command-line options, stored in every report (paths as given)."""
    from segcore.storage import redact

    return {
        k: (redact(str(v)) if isinstance(v, str | Path) else v)
        for k, v in sorted(vars(args).items())
    }


def conventions(args) -> SaliencyConventions:
    return CONVENTIONS[args.conventions]()


def make_predictor(args):
    """The Predictor of `--model` with `--device`, `--short-side`, `--no-quantize` and
    `--batch-size`; every problem is a UsageError naming the option."""
    from eval.inference import Predictor

    if not Path(args.model).exists():
        raise UsageError(f"--model {args.model}: no such file or folder")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.short_side < 0:
        raise UsageError(f"--short-side must be >= 0, got {args.short_side}")
    device = _device(args.device)
    try:
        return Predictor(
            args.model,
            device=device,
            short_side=args.short_side or None,
            quantize=not args.no_quantize,
            batch_size=args.batch_size,
        )
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        raise UsageError(f"--model {args.model}: {err}") from err


def _device(name: str):
    import torch

    from segcore.device import resolve_device

    device = resolve_device(name)
    # resolve_device accepts "mps" without asking whether this machine has it
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"--device {name}: MPS is not available on this machine")
    return device


def load_dataset(args):
    """The `--data` folder read with `--layout`, cut to `--limit` pairs."""
    from eval.datasets import load_layout

    if not Path(args.data).is_dir():
        raise UsageError(f"--data {args.data}: no such folder")
    ds = load_layout(args.layout, args.data, skip_bad=args.skip_bad)
    if args.limit is not None:
        if args.limit < 1:
            raise UsageError(f"--limit must be >= 1, got {args.limit}")
        ds.pairs = ds.pairs[: args.limit]
    return ds
