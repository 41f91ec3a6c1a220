"""`eval saliency` (a model) and `eval baseline` (a classic method): predict every image of a
dataset and write the saliency report."""

from __future__ import annotations

from pathlib import Path

from eval.commands.common import conventions, load_dataset, make_predictor, record_options
from segcore.cli import UsageError


def cmd_saliency(args) -> dict:
    return _evaluate(args, lambda: make_predictor(args), "saliency")


def cmd_baseline(args) -> dict:
    from eval.baselines import METHODS

    if args.method not in METHODS:
        raise UsageError(f"unknown --method {args.method!r}; choose one of {', '.join(METHODS)}")
    return _evaluate(args, METHODS[args.method], "baseline")


def _evaluate(args, new_predictor, command: str) -> dict:
    """Score `new_predictor()` on the --data/--layout dataset (read first, so data errors
    come before model loading) and write the report."""
    from eval.report import evaluate_and_report

    ds = load_dataset(args)
    return evaluate_and_report(
        new_predictor(),
        ds,
        args.out,
        name=args.name or Path(args.data).name,
        conventions=conventions(args),
        progress=not args.no_progress,
        extra={"command": command, "cli": record_options(args)},
    )
