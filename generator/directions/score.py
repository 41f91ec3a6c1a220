"""Score candidate directions and rank them (Appendix B.2 of the paper).

For each unit direction h (shifted by r, the paper uses r = 5):
  1. fit A1, A2 on pairs (G(z), G(z + r h)) -- eq. 6, Adam lr 5e-3, 200 steps, batch 4;
  2. on a fixed evaluation batch record L_h (eq. 5), D_h, and the class fractions of eq. 7;
  3. drop directions that put >= 99% of the pixels in one class ("area filtration");
  4. keep the top 20% by D_h and order them by L_h (the paper then looks at the first 10).
The ranking lists every direction: kept ones first (by L_h), then the other valid ones (by
L_h), then the dropped ones.

Every direction sees the same z's (one seed), so G(z) is generated once and cached, and the
comparison between directions is not blurred by sampling noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from generator.directions.backend import sample_labels, sample_z
from generator.directions.operators import (
    AffinePair,
    approximation,
    assignment,
    fit_operators,
    pixel_errors,
    restoration_loss,
    separation,
)
from generator.gans.base import generate_images, map_prior
from generator.masks import gray
from segcore.progress import progress_bar

# Object-class rule (see docs/directions.md): the object is the class that is under-represented
# on the image border (backgrounds surround objects); when the border gives no evidence (shares
# within BORDER_MARGIN), the object is the minority class by area.
BORDER_MARGIN = 0.02


@dataclass(frozen=True)
class FitSettings:
    shift: float = 5.0
    steps: int = 200  # Appendix B
    lr: float = 5e-3  # Appendix B
    batch: int = 4  # Appendix B
    pool_size: int = 0  # 0: fresh z every step (paper); N: draw batches from N fixed z's
    eval_batch: int = 16
    init_bias: float = 0.1
    gen_batch: int = 32  # images per generator call
    seed: int = 0
    truncation: float = 1.0  # psi of the backend's prior mapping (generator.gans.base)
    classes: tuple[int, ...] | None = None  # a conditional GAN's parsed --classes (None: all)


def _generate(backend, z: torch.Tensor, gen_batch: int, labels=None) -> torch.Tensor:
    """G(z) in chunks of gen_batch; `labels` [N]: the classes of a conditional GAN's samples."""
    zs = z.split(gen_batch)
    parts = [None] * len(zs) if labels is None else labels.split(gen_batch)
    with torch.no_grad():
        chunks = [generate_images(backend, c, y) for c, y in zip(zs, parts, strict=True)]
        return torch.cat(chunks).float()


def border_mask(h: int, w: int, device) -> torch.Tensor:
    width = max(1, min(h, w) // 16)
    m = torch.ones(h, w, dtype=torch.bool, device=device)
    m[width:-width, width:-width] = False
    return m


def object_class(assign: torch.Tensor) -> tuple[int, dict]:
    """Which class (0/1) of eq. 7 is the object; see BORDER_MARGIN for the rule."""
    area1 = float(assign.float().mean())
    border = border_mask(assign.shape[-2], assign.shape[-1], assign.device)
    border1 = float(assign[:, border].float().mean())
    under1 = area1 - border1  # > 0: class 1 avoids the border
    if abs(under1) >= BORDER_MARGIN:
        obj, rule = (1 if under1 > 0 else 0), "avoids the border"
    else:
        obj, rule = (1 if area1 < 0.5 else 0), "minority by area"
    return obj, {
        "class_fraction": [1.0 - area1, area1],
        "border_fraction": [1.0 - border1, border1],
        "object_class": obj,
        "object_rule": rule,
    }


class DirectionScorer:
    """Fits and evaluates directions of one backend with shared, cached G(z)."""

    def __init__(self, backend, settings: FitSettings):
        self.backend = backend
        self.s = settings
        self.device = backend.device
        gen = torch.Generator().manual_seed(settings.seed)
        d = backend.latent_dim
        n_fit = settings.pool_size or settings.steps * settings.batch
        # the backend's latents of prior draws (W for StyleGAN2): directions act on these
        with torch.no_grad():
            z_fit = sample_z(n_fit, d, gen, self.device)
            self.z_fit = map_prior(backend, z_fit, settings.truncation)
            z_eval = sample_z(settings.eval_batch, d, gen, self.device)
            self.z_eval = map_prior(backend, z_eval, settings.truncation)
        if settings.pool_size:
            self.batch_idx = [
                torch.randint(n_fit, (settings.batch,), generator=gen)
                for _ in range(settings.steps)
            ]
        else:
            self.batch_idx = [
                torch.arange(i * settings.batch, (i + 1) * settings.batch)
                for i in range(settings.steps)
            ]
        # a conditional GAN: each z's class (None otherwise), from a stream of its own
        self.labels_fit = sample_labels(backend, settings.classes, n_fit, (settings.seed, 0),
                                        self.device)  # fmt: skip
        self.labels_eval = sample_labels(backend, settings.classes, settings.eval_batch,
                                         (settings.seed, 1), self.device)  # fmt: skip
        self.x_fit = _generate(backend, self.z_fit, settings.gen_batch, self.labels_fit)
        self.x_eval = _generate(backend, self.z_eval, settings.gen_batch, self.labels_eval)

    def shifted(self, h: torch.Tensor, z: torch.Tensor, labels=None) -> torch.Tensor:
        h = h.to(self.device, torch.float32)
        return _generate(self.backend, z + self.s.shift * h[None], self.s.gen_batch, labels)

    def fit(self, h: torch.Tensor) -> AffinePair:
        y_fit = self.shifted(h, self.z_fit, self.labels_fit)

        def batches(step):
            idx = self.batch_idx[step].to(self.device)
            return self.x_fit[idx], y_fit[idx]

        pair, _ = fit_operators(
            batches,
            steps=self.s.steps,
            lr=self.s.lr,
            init_bias=self.s.init_bias,
            device=self.device,
        )
        return pair

    def evaluate(
        self, h: torch.Tensor, pair: AffinePair, n: int | None = None, tensors: bool = False
    ) -> dict:
        """L_h, D_h and the mask statistics on the fixed evaluation batch.

        With `tensors`, the images for a sheet come back under "_tensors" (not JSON).
        """
        x = self.x_eval[:n]
        labels = None if self.labels_eval is None else self.labels_eval[:n]
        y = self.shifted(h, self.z_eval[:n], labels)
        with torch.no_grad():
            pred = pair(x)
            err = pixel_errors(pred, y)
            assign = assignment(err)
            frac1 = float(assign.float().mean())
            # Mean gray change each operator makes on the pixels it owns (which one brightens).
            dgray = gray(pred, channel_dim=2) - gray(x)[:, None]
            change = []
            for j in (0, 1):
                own = assign == j
                change.append(float(dgray[:, j][own].mean()) if own.any() else None)
        obj, obj_info = object_class(assign)
        out = {
            "restoration_loss": float(restoration_loss(err)),
            "separation": float(separation(pred)),
            "dominant_fraction": max(frac1, 1.0 - frac1),
            "gray_change": change,
            "operators": pair.matrices().tolist(),
            **obj_info,
        }
        if tensors:
            out["_tensors"] = {
                "x": x,
                "y": y,
                "approx": approximation(pred, assign),
                "assign": assign,
                "mask": assign == obj,
            }
        return out

    def score(self, h: torch.Tensor) -> tuple[AffinePair, dict]:
        pair = self.fit(h)
        return pair, self.evaluate(h, pair)


def rank(entries: list[dict], *, keep_top: float = 0.2, dominant_max: float = 0.99) -> list:
    """Area filter, top `keep_top` by D_h, then by L_h (Appendix B.2). Adds `kept`, `rank`."""
    for e in entries:
        e["dropped_dominant"] = e["dominant_fraction"] >= dominant_max
    valid = [e for e in entries if not e["dropped_dominant"]]
    n_keep = math.ceil(keep_top * len(valid)) if valid else 0
    by_sep = sorted(valid, key=lambda e: (-e["separation"], e["direction"]))
    kept_ids = {e["direction"] for e in by_sep[: max(1, n_keep) if valid else 0]}
    for e in entries:
        e["kept"] = e["direction"] in kept_ids

    def order(e):
        group = 0 if e["kept"] else (1 if not e["dropped_dominant"] else 2)
        return (group, e["restoration_loss"], e["direction"])

    ranking = sorted(entries, key=order)
    for r, e in enumerate(ranking):
        e["rank"] = r
    return ranking


def score_directions(
    backend,
    directions: torch.Tensor,
    settings: FitSettings = FitSettings(),
    *,
    keep_top: float = 0.2,
    dominant_max: float = 0.99,
    progress: bool = True,
    scorer: DirectionScorer | None = None,
    known: dict[int, dict] | None = None,
    on_scored: Callable[[int, dict], None] | None = None,
) -> list[dict]:
    """Rank the rows of `directions` [K, d]; best first, JSON-ready dicts (module docstring).

    `known` maps direction index -> an entry scored before with the same settings (each
    direction's score depends only on the settings and the direction, so a resumed run
    reuses them); `on_scored(k, entry)` is called after each newly scored direction.
    """
    scorer = scorer or DirectionScorer(backend, settings)
    known = known or {}
    entries = []
    bar = progress_bar(range(directions.shape[0]), desc="scoring directions", disable=not progress)
    for k in bar:
        if k in known:
            entries.append(dict(known[k]))
            continue
        _, stats = scorer.score(directions[k])
        stats["direction"] = k
        entries.append(stats)
        if on_scored is not None:
            on_scored(k, stats)
        bar.set_postfix(
            L=f"{stats['restoration_loss']:.4f}", D=f"{stats['separation']:.3f}", refresh=False
        )
    return rank(entries, keep_top=keep_top, dominant_max=dominant_max)
