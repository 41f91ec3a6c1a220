"""Unsupervised discovery of interpretable latent directions (Voynov & Babenko 2020), the
first step of the paper's search for the segmenting direction (the paper, Appendix B).

A deformator A (orthogonal, `deformator.py`) turns (k, eps) into the latent shift
A(eps e_k); a reconstructor (`reconstructor.py`) sees (G(z), G(z + A(eps e_k))) and must tell
k (cross-entropy) and eps (L1, weight 0.25). Both are trained jointly with Adam (lr 1e-4),
batch 32, eps = 6 U(-1, 1) pushed to |eps| >= 0.5; G is frozen. Directions that the
reconstructor can tell apart are distinct, and in practice interpretable.

Every step draws its z, k and eps from a generator seeded by (seed, step), so a resumed run
repeats exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import dataclasses
import io
import sys

import torch
from torch.nn import functional as F

from generator.directions.backend import (
    backend_classes,
    freeze,
    require_differentiable,
    sample_labels,
)
from generator.directions.config import DiscoverConfig, resume_hash
from generator.directions.deformator import OrthogonalDeformator
from generator.directions.reconstructor import Reconstructor
from generator.gans.base import check_prior, generate_images, map_prior
from segcore import __version__, storage
from segcore import config as cfgio
from segcore.cli import UsageError
from segcore.progress import progress_bar

# Options that may differ between a run and its resumption.
RESUME_FREE = ("out", "steps", "ckpt_every", "log_every", "device")


def checkpoint_url(out: str) -> str:
    return f"{out}.ckpt"


def sample_step(cfg: DiscoverConfig, step: int, latent_dim: int):
    """z, k, eps of one step, drawn on the CPU from a (seed, step)-seeded generator."""
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
    z = torch.randn(cfg.batch, latent_dim, generator=gen)
    k = torch.randint(cfg.k, (cfg.batch,), generator=gen)
    eps = cfg.shift_scale * (2 * torch.rand(cfg.batch, generator=gen) - 1)
    # push |eps| up to min_shift, keeping the sign (Voynov & Babenko: shifts too small to see)
    small = eps.abs() < cfg.min_shift
    eps = torch.where(small, torch.where(eps < 0, -cfg.min_shift, cfg.min_shift), eps)
    return z, k, eps


def validate(cfg: DiscoverConfig, backend) -> None:
    require_differentiable(backend, "discover")
    check_prior(backend, cfg.truncation)
    d = backend.latent_dim
    if not 1 <= cfg.k <= d:
        raise UsageError(
            f"--k {cfg.k}: an orthogonal deformator gives at most latent size = {d} directions"
        )
    for name in ("steps", "batch", "width", "ckpt_every", "log_every"):
        if getattr(cfg, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1")
    if cfg.lr <= 0 or cfg.shift_scale <= 0 or not 0 <= cfg.min_shift <= cfg.shift_scale:
        raise UsageError("need lr > 0, shift_scale > 0 and 0 <= min_shift <= shift_scale")


def _save(url: str, obj) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    storage.write_bytes_atomic(url, buf.getvalue())


def _load(url: str):
    return torch.load(io.BytesIO(storage.read_bytes(url)), map_location="cpu", weights_only=True)


def discover(backend, cfg: DiscoverConfig, *, resume: bool = False, progress: bool = True):
    """Train deformator + reconstructor; returns (directions [K, d] on CPU, history dict).

    With `cfg.out` set, writes the directions tensor to `cfg.out` and a checkpoint to
    `cfg.out + ".ckpt"` every `ckpt_every` steps and at the end (atomically). `resume`
    continues from that checkpoint if it exists; without `resume` an existing checkpoint is
    an error (so a finished run is never overwritten by accident).
    """
    validate(cfg, backend)
    classes = backend_classes(backend, cfg.classes)  # a conditional GAN's --classes
    freeze(backend)
    device = backend.device
    torch.manual_seed(cfg.seed)
    deformator = OrthogonalDeformator(backend.latent_dim, cfg.k, cfg.init_scale, cfg.seed).to(
        device
    )
    reconstructor = Reconstructor(cfg.k, backend.resolution, cfg.width).to(device)
    opt_d = torch.optim.Adam(deformator.parameters(), lr=cfg.lr)
    opt_r = torch.optim.Adam(reconstructor.parameters(), lr=cfg.lr)
    history = {"step": [], "accuracy": [], "loss": [], "shift_l1": []}
    chash = resume_hash(cfg, RESUME_FREE)
    start = 0

    ckpt = checkpoint_url(cfg.out) if cfg.out else None
    if ckpt and storage.exists(ckpt):
        if not resume:
            raise UsageError(
                f"checkpoint {storage.redact(ckpt)} exists; pass --resume to continue it "
                "or choose another --out"
            )
        state = _load(ckpt)
        if state.get("config_hash") != chash:
            diff = cfgio.differences(state.get("config", {}), cfg, ignore=RESUME_FREE)
            named = "; ".join(diff) or f"config hash {state.get('config_hash')} -> {chash}"
            raise UsageError(
                f"checkpoint {storage.redact(ckpt)} was made with other options ({named}); "
                f"only {', '.join(RESUME_FREE)} may change on resume"
            )
        deformator.load_state_dict(state["deformator"])
        reconstructor.load_state_dict(state["reconstructor"])
        opt_d.load_state_dict(state["opt_deformator"])
        opt_r.load_state_dict(state["opt_reconstructor"])
        history = state["history"]
        start = int(state["step"])
        print(f"resuming from step {start} ({storage.redact(ckpt)})", file=sys.stderr)
    elif resume and ckpt:
        print(f"no checkpoint at {storage.redact(ckpt)}; starting fresh", file=sys.stderr)

    def save(step: int) -> None:
        if not cfg.out:
            return
        dirs = deformator.directions()
        _save(
            ckpt,
            {
                "step": step,
                "deformator": deformator.state_dict(),
                "reconstructor": reconstructor.state_dict(),
                "opt_deformator": opt_d.state_dict(),
                "opt_reconstructor": opt_r.state_dict(),
                "history": history,
                "directions": dirs,
                "config": dataclasses.asdict(cfg),
                "config_hash": chash,
                "version": __version__,
            },
        )
        _save(cfg.out, dirs)  # the tensor `score` reads (written after the checkpoint)

    reconstructor.train()
    hits = seen = 0
    bar = progress_bar(range(start, cfg.steps), desc="discover", disable=not progress, initial=start,
               total=cfg.steps)  # fmt: skip
    for step in bar:
        z, k, eps = sample_step(cfg, step, backend.latent_dim)
        z, k, eps = z.to(device), k.to(device), eps.to(device)
        code = torch.zeros(cfg.batch, cfg.k, device=device)
        code[torch.arange(cfg.batch, device=device), k] = eps
        # a conditional GAN: each sample's class, the same for G(z) and G(z + shift)
        labels = sample_labels(backend, classes, cfg.batch, (cfg.seed, step), device)
        with torch.no_grad():
            z = map_prior(backend, z, cfg.truncation)  # the backend's latents (W for StyleGAN2)
            x = generate_images(backend, z, labels)
        y = generate_images(backend, z + deformator(code), labels)
        logits, eps_pred = reconstructor(x.float(), y.float())
        loss_k = F.cross_entropy(logits, k)
        loss_eps = (eps_pred - eps).abs().mean()
        loss = loss_k + cfg.shift_weight * loss_eps
        opt_d.zero_grad(set_to_none=True)
        opt_r.zero_grad(set_to_none=True)
        loss.backward()
        opt_d.step()
        opt_r.step()

        hits += int((logits.argmax(1) == k).sum())
        seen += cfg.batch
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            acc = hits / seen
            history["step"].append(done)
            history["accuracy"].append(acc)
            history["loss"].append(float(loss.detach()))
            history["shift_l1"].append(float(loss_eps.detach()))
            bar.set_postfix(acc=f"{acc:.3f}", loss=f"{float(loss.detach()):.3f}", refresh=False)
            hits = seen = 0
        if done % cfg.ckpt_every == 0 and done != cfg.steps:
            save(done)
    save(cfg.steps)
    if cfg.out:
        storage.write_bytes_atomic(
            f"{cfg.out}.config.json", cfgio.dump_json(cfg, latent_dim=backend.latent_dim).encode()
        )
    return deformator.directions(), history


def run_discover(cfg: DiscoverConfig, *, resume: bool = False) -> int:
    from generator.gans import load_gan
    from segcore.device import resolve_device

    device = resolve_device(cfg.device)
    backend = load_gan(cfg.gan, cfg.weights, device)
    validate(cfg, backend)
    print(
        f"discovering {cfg.k} directions of GAN {backend.name!r} (latent {backend.latent_dim}, "
        f"{backend.resolution}px) on {device}: {cfg.steps} steps of batch {cfg.batch}",
        file=sys.stderr,
    )
    dirs, history = discover(backend, cfg, resume=resume)
    acc = history["accuracy"][-1] if history["accuracy"] else float("nan")
    print(
        f"wrote {storage.redact(cfg.out)} ({tuple(dirs.shape)}), reconstructor accuracy {acc:.3f}"
        f" (chance {1 / cfg.k:.3f}); checkpoint {storage.redact(checkpoint_url(cfg.out))}",
        file=sys.stderr,
    )
    return 0
