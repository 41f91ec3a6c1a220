"""`eval wsol`: MaxBoxAcc (CUB, ImageNet) or PxAP (OpenImages) of a model, with the
wsolevaluation metadata and conventions (docs/metrics.md)."""

from __future__ import annotations

from eval.commands.common import make_predictor, record_options
from segcore.cli import UsageError


def cmd_wsol(args) -> dict:
    from eval.batching import predict_stream
    from eval.datasets.wsol import DATASETS, WsolDataset
    from eval.metrics.wsol import PxAP, WsolBoxMetrics, prepare_scoremap
    from eval.progress import with_progress
    from eval.report import write_wsol_report

    if not 0 < args.interval < 1:
        raise UsageError(f"--interval must be in (0, 1), got {args.interval}")
    ds = WsolDataset(args.metadata, args.images, args.masks, args.skip_bad, args.limit)
    expect_masks = args.dataset == "openimages"
    if ds.meta.has_masks != expect_masks:
        kind = "mask (OpenImages)" if ds.meta.has_masks else "box (CUB/ImageNet)"
        raise UsageError(f"--metadata {args.metadata} is {kind} metadata, not {args.dataset}")
    predictor = make_predictor(args)
    metric = PxAP(args.interval) if expect_masks else WsolBoxMetrics(args.interval)
    samples = with_progress(iter(ds), len(ds), f"wsol {args.dataset}", not args.no_progress)
    for s, prob in predict_stream(predictor, samples, lambda s: s.image):
        score = prepare_scoremap(prob)
        if expect_masks:
            metric.update(score, s.mask, s.ignore)
        else:
            metric.update(score, s.boxes)
    if metric.count == 0:
        raise UsageError("every image was skipped; nothing to score")
    result = metric.compute()
    curves = None
    if not expect_masks:
        taus = metric.v1.taus
        curves = {"v1 (delta .5, largest contour)": (taus, metric.v1.accuracy_curves()[0.5])}
        for d, c in metric.v2.accuracy_curves().items():
            curves[f"v2 delta {d} (all contours)"] = (taus, c)
        curves = {k: (x.tolist(), y.tolist()) for k, (x, y) in curves.items()}
    result.update(
        {
            "command": "wsol",
            "cli": record_options(args),
            "dataset": DATASETS[args.dataset],
            "metadata": str(args.metadata),
            "predictor": predictor.settings(),
            "skipped": [{"name": n, "reason": r} for n, r in ds.skipped],
        }
    )
    return write_wsol_report(args.out, args.name or DATASETS[args.dataset], result, curves)
