"""Beyond the paper: search a segmenting direction directly, without discovery + scoring.

Appendix B scores a direction h by the two-operator restoration loss L_h (low: every pixel
moves by one of two affine colour maps) and the separation D_h (high: the two maps differ). The
paper applies this to K directions found by discovery; here we optimise a unit vector h
jointly with the two operators A1, A2 (all by Adam, gradients through G):

    loss = L_h  -  sep_weight * D_h  +  area_weight * area_penalty

area_penalty = mean over images of relu(area_min - f)^2 + relu(f - area_max)^2, where f is
the soft fraction (softmax(-err / temperature) over the two maps) of the smaller class: it
rules out the pitfall of Appendix B where one map explains every pixel and the other drifts
away to inflate D_h. sep_weight is small (0.1) because D_h is bounded by the clamp: with a
large weight the operators would rather saturate to +-1 than explain G(z + h).

Several random restarts run; each result is refit with the paper's operator fit (Appendix B
settings) and the restart with the lowest L_h - sep_weight * D_h among those that pass the
area filter (< 99% of pixels in one class) wins. Its sign is decided like `score --pick`.
"""

from __future__ import annotations

import json
import sys

import torch

from generator.directions.backend import (
    backend_classes,
    freeze,
    require_differentiable,
    sample_labels,
)
from generator.directions.config import OptimizeConfig
from generator.directions.operators import (
    AffinePair,
    pixel_errors,
    restoration_loss,
    separation,
)
from generator.directions.score import DirectionScorer, FitSettings
from generator.gans.base import check_prior, generate_images, map_prior
from segcore import config as cfgio
from segcore import storage
from segcore.cli import UsageError
from segcore.progress import progress_bar


def validate(cfg: OptimizeConfig, backend) -> None:
    require_differentiable(backend, "optimize")
    check_prior(backend, cfg.truncation)
    for name in ("steps", "batch", "restarts", "fit_steps", "eval_batch", "sheet_images"):
        if getattr(cfg, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1")
    if cfg.shift <= 0 or cfg.lr <= 0 or cfg.op_lr <= 0 or cfg.temperature <= 0:
        raise UsageError("--shift, --lr, op_lr and temperature must be > 0")
    if not 0 <= cfg.area_min < cfg.area_max <= 1:
        raise UsageError(
            f"need 0 <= --area-min < --area-max <= 1, got {cfg.area_min}, {cfg.area_max}"
        )
    if cfg.sep_weight < 0 or cfg.area_weight < 0:
        raise UsageError("--sep-weight and --area-weight must be >= 0")


def area_penalty(err: torch.Tensor, cfg: OptimizeConfig) -> torch.Tensor:
    soft = torch.softmax(-err / cfg.temperature, dim=1)  # [N, 2, H, W]
    frac = soft.mean(dim=(2, 3))  # [N, 2]
    f = frac.min(dim=1).values
    low = torch.relu(cfg.area_min - f)
    high = torch.relu(f - cfg.area_max)
    return (low.pow(2) + high.pow(2)).mean()


def _one_run(
    backend, cfg: OptimizeConfig, v0: torch.Tensor, restart: int, progress: bool, classes=None
):
    device = backend.device
    v = torch.nn.Parameter(v0.clone().to(device))
    pair = AffinePair().to(device)
    opt_v = torch.optim.Adam([v], lr=cfg.lr)
    opt_a = torch.optim.Adam(pair.parameters(), lr=cfg.op_lr)
    trace = []
    bar = progress_bar(range(cfg.steps), desc=f"optimize (restart {restart})", disable=not progress)
    for step in bar:
        gen = torch.Generator().manual_seed((cfg.seed * 1_000_003 + restart) * 1_000_003 + step)
        z = torch.randn(cfg.batch, backend.latent_dim, generator=gen).to(device)
        # a conditional GAN: each sample's class, the same for G(z) and G(z + shift)
        labels = sample_labels(backend, classes, cfg.batch, (cfg.seed, restart, step), device)
        with torch.no_grad():
            z = map_prior(backend, z, cfg.truncation)  # the backend's latents (W for StyleGAN2)
            x = generate_images(backend, z, labels).float()
        h = v / v.norm()
        y = generate_images(backend, z + cfg.shift * h[None], labels).float()
        pred = pair(x)
        err = pixel_errors(pred, y)
        lh, dh, area = restoration_loss(err), separation(pred), area_penalty(err, cfg)
        loss = lh - cfg.sep_weight * dh + cfg.area_weight * area
        opt_v.zero_grad(set_to_none=True)
        opt_a.zero_grad(set_to_none=True)
        loss.backward()
        opt_v.step()
        opt_a.step()
        if step % 10 == 0 or step == cfg.steps - 1:
            lh, dh, area, loss = (t.detach() for t in (lh, dh, area, loss))
            trace.append(
                {
                    "step": step,
                    "L": float(lh),
                    "D": float(dh),
                    "area": float(area),
                    "loss": float(loss),
                }
            )
            bar.set_postfix(
                L=f"{float(lh):.4f}", D=f"{float(dh):.3f}", area=f"{float(area):.4f}", refresh=False
            )
    return (v.detach() / v.detach().norm()).cpu(), trace


def optimize_direction(backend, cfg: OptimizeConfig, *, init=None, progress: bool = True):
    """Returns (best unit direction [d] on CPU (unsigned), scorer, report dict)."""
    validate(cfg, backend)
    classes = backend_classes(backend, cfg.classes)  # a conditional GAN's --classes
    freeze(backend)
    d = backend.latent_dim
    starts = []
    for r in range(cfg.restarts):
        if r == 0 and init is not None:
            starts.append(torch.as_tensor(init, dtype=torch.float32).reshape(d))
        else:
            gen = torch.Generator().manual_seed(cfg.seed * 7919 + r)
            starts.append(torch.randn(d, generator=gen))
    scorer = DirectionScorer(
        backend,
        FitSettings(
            shift=cfg.shift,
            steps=cfg.fit_steps,
            eval_batch=max(cfg.eval_batch, cfg.sheet_images),
            seed=cfg.seed,
            truncation=cfg.truncation,
            classes=classes,
        ),
    )
    runs = []
    for r, v0 in enumerate(starts):
        h, trace = _one_run(backend, cfg, v0 / v0.norm(), r, progress, classes)
        pair, stats = scorer.score(h)
        stats = {k: v for k, v in stats.items() if not k.startswith("_")}
        objective = stats["restoration_loss"] - cfg.sep_weight * stats["separation"]
        runs.append(
            {
                "restart": r,
                "vector": h,
                "objective": objective,
                "valid": stats["dominant_fraction"] < 0.99,
                "stats": stats,
                "pair": pair,
                "trace": trace,
            }
        )
        print(
            f"restart {r}: L_h {stats['restoration_loss']:.5f}  D_h {stats['separation']:.4f}  "
            f"dominant {stats['dominant_fraction']:.3f}",
            file=sys.stderr,
        )
    valid = [r for r in runs if r["valid"]]
    if not valid:
        raise UsageError(
            "every restart ended with >= 99% of the pixels in one class; try a larger "
            "--area-weight or --shift"
        )
    best = min(valid, key=lambda r: (r["objective"], r["restart"]))
    report = {
        "best_restart": best["restart"],
        "restarts": [
            {
                "restart": r["restart"],
                "objective": r["objective"],
                "valid": r["valid"],
                "vector": r["vector"].tolist(),
                **r["stats"],
                "trace": r["trace"],
            }
            for r in runs
        ],
    }
    return best["vector"], (best["pair"], best["stats"]), scorer, report


def run_optimize(cfg: OptimizeConfig) -> int:
    from generator.direction_file import load_direction
    from generator.directions.pick import choose_sign, write_direction_file
    from generator.directions.sheets import sheet_png
    from generator.gans import load_gan
    from segcore.device import resolve_device

    device = resolve_device(cfg.device)
    backend = load_gan(cfg.gan, cfg.weights, device)
    validate(cfg, backend)
    init = load_direction(cfg.init, backend.latent_dim).vector if cfg.init else None
    print(
        f"optimising a segmenting direction of GAN {backend.name!r} (latent "
        f"{backend.latent_dim}, {backend.resolution}px) on {device}: {cfg.restarts} restarts x "
        f"{cfg.steps} steps",
        file=sys.stderr,
    )
    h, plus, scorer, report = optimize_direction(backend, cfg, init=init)
    choice = choose_sign(scorer, h, plus=plus)
    out = cfg.out
    storage.write_bytes_atomic(storage.join(out, "config.json"), cfgio.dump_json(cfg).encode())
    storage.write_bytes_atomic(
        storage.join(out, "optimize.json"), (json.dumps(report, indent=1) + "\n").encode()
    )
    t = scorer.evaluate(choice["vector"], choice["pair"], n=cfg.sheet_images, tensors=True)
    t = t["_tensors"]
    storage.write_bytes_atomic(
        storage.join(out, "sheet.png"),
        sheet_png(t["x"], t["y"], t["approx"], t["assign"] == choice["bright_operator"]),
    )
    url = storage.join(out, "direction.json")
    write_direction_file(
        url, choice, gan=cfg.gan, shift=cfg.shift, index=-1, method="optimize",
        best_restart=report["best_restart"],
    )  # fmt: skip
    print(
        f"sign {choice['sign']:+d}, object operator {choice['bright_operator']} (brightens: "
        f"{choice['object_brightens']}); wrote {storage.redact(url)}",
        file=sys.stderr,
    )
    return 0
