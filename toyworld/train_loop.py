"""The toy-world GAN's training run: three phases, checkpointed, resumable exactly.

Phase 1 trains G and D (hinge loss, spectral-norm D, Adam (0.0, 0.9), EMA of G; the 2-layer
generator's foreground is shifted at random before compositing, PerturbGAN's trick that makes
the layers split object from background; see model.py). Phase 2 recomputes the EMA
generator's BatchNorm statistics, then fits an encoder E to invert the frozen EMA generator:
||E(G(z)) - z||^2 on samples plus ||G(E(x)) - x||_1 on real world images. Phase 3 writes the
shippable files:

    OUT/final/toyworld.pt    {"generator": EMA G state dict, "encoder": E state dict}
    OUT/final/toyworld.json  model config, training command, time, steps, sample statistics

OUT/checkpoint.pt (written atomically every `ckpt_every` steps) holds every weight, optimizer
state and random generator state, so a rerun of the same command continues exactly where the
last checkpoint stopped. Sample grids go to OUT/samples/, log records to OUT/train_log.jsonl.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from segcore.config import refuse_if_different
from segcore.device import resolve_device
from segcore.storage import write_local_atomic
from toyworld.train_config import RESUME_MAY_CHANGE, GanTrainConfig
from toyworld.train_images import load_images, save_grid

SAMPLE_STATS_SEED = 1234  # the seed batch whose statistics toyworld.json records
FIXED_Z_SEED = 7  # the latents of the sample grids
STANDING_STATS_SEED = 99  # the latents of the EMA generator's BatchNorm statistics


def atomic_torch_save(obj, path: Path) -> None:
    import torch

    write_local_atomic(path, lambda f: torch.save(obj, f))


def atomic_write_text(path: Path, text: str) -> None:
    write_local_atomic(path, lambda f: f.write(text.encode()))


def resume_config(cfg: GanTrainConfig, model_cfg) -> dict:
    """What a checkpoint records and a resume must agree on: {"train": ..., "model": ...}."""
    train = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in RESUME_MAY_CHANGE}
    return {"train": train, "model": dataclasses.asdict(model_cfg)}


def refuse_other_config(saved: dict, current: dict, ckpt_path: Path) -> None:
    """UsageError naming every option (train or model) that differs from the checkpoint's."""

    def flat(doc: dict) -> dict:  # the option names are unique across train and model
        return {**doc.get("train", {}), **doc.get("model", {})}

    refuse_if_different(flat(saved), flat(current), what=str(ckpt_path))


def sample_statistics(generator, latent_dim: int) -> dict:
    """Statistics of G(z) on a fixed seed batch: recorded at training, checked by the tests."""
    import torch

    z = torch.randn(16, latent_dim, generator=torch.Generator().manual_seed(SAMPLE_STATS_SEED))
    with torch.no_grad():
        x = generator(z)
    return {
        "z_seed": SAMPLE_STATS_SEED,
        "n": 16,
        "mean": float(x.mean()),
        "std": float(x.std()),
        "channel_mean": [float(v) for v in x.mean(dim=(0, 2, 3))],
        "first_pixel": [float(v) for v in x[0, :, 0, 0]],
    }


def standing_stats(generator, latent_dim: int, device, batches: int = 64, batch: int = 128):
    """Replace the EMA generator's BN running stats by their exact average over prior samples.

    The EMA weights never ran in train mode, so the stats copied from the live G do not match
    them; BigGAN's "standing statistics" fix this the same way.
    """
    import torch

    g = torch.Generator().manual_seed(STANDING_STATS_SEED)
    for m in generator.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average
    generator.train()
    with torch.no_grad():
        for _ in range(batches):
            generator(torch.randn(batch, latent_dim, generator=g).to(device))
    for m in generator.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 0.1
    generator.eval()


def trim_log(path: Path, state: dict) -> None:
    """Drop log records written after the checkpoint a run resumes from (a run stopped between
    checkpoints logged steps it is about to redo), so the log describes the weights."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("step", 0) > state["step"]:
            continue
        if rec.get("encoder_step", 0) > state["encoder_step"]:
            continue
        keep.append(line)
    atomic_write_text(path, "".join(k + "\n" for k in keep))


def device_name(device) -> str:
    """'cpu' or 'cuda (NVIDIA H200)': the device type and card, as toyworld.json records it."""
    import torch

    if device.type == "cuda":
        return f"{device.type} ({torch.cuda.get_device_name(device)})"
    return device.type


def train(out: Path, cfg: GanTrainConfig, model_cfg, command: str) -> Path:
    """Run (or resume) the three phases in `out`; returns the folder of the shippable files."""
    import torch
    import torch.nn.functional as F

    from segcore.progress import progress_bar
    from toyworld.model import Discriminator, Encoder, Generator, shift_layer

    torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    out.mkdir(parents=True, exist_ok=True)
    (out / "samples").mkdir(exist_ok=True)
    config_doc = resume_config(cfg, model_cfg)
    ckpt_path = out / "checkpoint.pt"

    torch.manual_seed(cfg.seed)  # initial weights are a function of --seed
    G, D, E = Generator(model_cfg), Discriminator(model_cfg), Encoder(model_cfg)
    G_ema = Generator(model_cfg)
    G_ema.load_state_dict(G.state_dict())
    for mod in (G, D, E, G_ema):
        mod.to(device)
    opt_g = torch.optim.Adam(G.parameters(), cfg.lr_g, betas=(cfg.beta1, 0.9))
    opt_d = torch.optim.Adam(D.parameters(), cfg.lr_d, betas=(cfg.beta1, 0.9))
    opt_e = torch.optim.Adam(E.parameters(), cfg.lr_e, betas=(0.5, 0.999))
    rng = torch.Generator().manual_seed(cfg.seed)
    state = {"step": 0, "encoder_step": 0, "elapsed_s": 0.0}

    if ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        refuse_other_config(ck["config"], config_doc, ckpt_path)
        for mod, key in ((G, "G"), (D, "D"), (E, "E"), (G_ema, "G_ema")):
            mod.load_state_dict(ck[key], strict=True)
        for opt, key in ((opt_g, "opt_g"), (opt_d, "opt_d"), (opt_e, "opt_e")):
            opt.load_state_dict(ck[key])
        rng.set_state(ck["rng"])
        torch.set_rng_state(ck["torch_rng"])
        state = ck["state"]
        if state["step"] < cfg.steps and state["encoder_step"] > 0:
            state["encoder_step"] = 0  # the GAN trains further: the encoder must be refitted
        trim_log(out / "train_log.jsonl", state)
        print(f"resumed from {ckpt_path} at step {state['step']}", flush=True)

    def checkpoint():
        atomic_torch_save(
            {
                "config": config_doc,
                "G": G.state_dict(),
                "D": D.state_dict(),
                "E": E.state_dict(),
                "G_ema": G_ema.state_dict(),
                "opt_g": opt_g.state_dict(),
                "opt_d": opt_d.state_dict(),
                "opt_e": opt_e.state_dict(),
                "rng": rng.get_state(),
                "torch_rng": torch.get_rng_state(),
                "state": state,
            },
            ckpt_path,
        )

    images = load_images(out, cfg.n_train, model_cfg.resolution, cfg.render_workers)
    images = torch.from_numpy(images).to(device)
    d = model_cfg.latent_dim

    # All randomness comes from the CPU generator `rng` (its state is checkpointed), then moves
    # to the device: the same draws on any device, and an exact resume.
    def randn(n):
        return torch.randn(n, d, generator=rng).to(device)

    def real_batch():
        idx = torch.randint(0, images.shape[0], (cfg.batch,), generator=rng).to(device)
        return images[idx].permute(0, 3, 1, 2).float() / 127.5 - 1.0

    fixed_z = torch.randn(64, d, generator=torch.Generator().manual_seed(FIXED_Z_SEED)).to(device)

    def fake_batch(z):
        """(images, area penalty): composites with the foreground shifted (2-layer model)."""
        if model_cfg.layers == 1:
            return G(z), torch.zeros(())
        bg, fg, alpha = G.layered(z)
        if cfg.shift > 0:
            s = torch.randint(-cfg.shift, cfg.shift + 1, (z.shape[0], 2), generator=rng)
            s = s.to(device)
            fg, alpha = shift_layer(fg, s), shift_layer(alpha, s)
        area = alpha.mean(dim=(1, 2, 3))
        penalty = (F.relu(cfg.min_area - area) + F.relu(area - cfg.max_area)).mean()
        return alpha * fg + (1 - alpha) * bg, penalty

    def log(rec: dict) -> None:
        with open(out / "train_log.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")
        print(json.dumps(rec), flush=True)

    t_start = time.time() - state["elapsed_s"]

    # Phase 1: the GAN.
    bar = progress_bar(total=cfg.steps, initial=state["step"], desc="GAN")
    t_last = time.time()
    while state["step"] < cfg.steps:
        G.train()
        x = real_batch()
        z = randn(cfg.batch)
        with torch.no_grad():
            fake, _ = fake_batch(z)
        if cfg.loss == "hinge":
            loss_d = F.relu(1 - D(x)).mean() + F.relu(1 + D(fake)).mean()
        else:  # non-saturating: softplus(-D(x)) + softplus(D(fake))
            loss_d = F.softplus(-D(x)).mean() + F.softplus(D(fake)).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        z = randn(cfg.batch)
        fake, area_penalty = fake_batch(z)
        score = D(fake)
        loss_g = -score.mean() if cfg.loss == "hinge" else F.softplus(-score).mean()
        loss_g = loss_g + cfg.area_weight * area_penalty
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        with torch.no_grad():
            # torch's private _foreach_lerp_ (torch 2.x): one fused lerp over all parameters
            torch._foreach_lerp_(list(G_ema.parameters()), list(G.parameters()), 1 - cfg.ema_decay)
            for be, b in zip(G_ema.buffers(), G.buffers(), strict=True):
                be.copy_(b)
        state["step"] += 1
        bar.update(1)
        step = state["step"]
        if step % cfg.log_every == 0:
            now = time.time()
            rec = {
                "step": step,
                "loss_d": round(loss_d.item(), 4),
                "loss_g": round(loss_g.item(), 4),
                "area_penalty": round(float(area_penalty.detach()), 4),
                "s_per_step": round((now - t_last) / cfg.log_every, 3),
                "elapsed_s": round(now - t_start, 1),
            }
            t_last = now
            log(rec)
        if step % cfg.sample_every == 0 or step == cfg.steps:
            G_ema.eval()
            with torch.no_grad():
                grid = G_ema(fixed_z)
            save_grid(grid, out / "samples" / f"step-{step:06d}.png")
            if model_cfg.layers == 2:  # what the layers learnt: alpha as a grey grid
                with torch.no_grad():
                    alpha = G_ema.layered(fixed_z)[2]
                save_grid(
                    alpha.expand(-1, 3, -1, -1) * 2 - 1, out / "samples" / f"alpha-{step:06d}.png"
                )
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            state["elapsed_s"] = time.time() - t_start
            checkpoint()
    bar.close()

    # Phase 2: the encoder, inverting the frozen EMA generator (the E-BigBiGAN latents of the
    # paper, section 3.2, need E).
    if state["encoder_step"] == 0:
        standing_stats(G_ema, d, device)
    G_ema.eval()
    for p in G_ema.parameters():
        p.requires_grad_(False)
    bar = progress_bar(total=cfg.encoder_steps, initial=state["encoder_step"], desc="E")
    while state["encoder_step"] < cfg.encoder_steps:
        E.train()
        z = randn(cfg.batch)
        with torch.no_grad():
            xg = G_ema(z)
        x = real_batch()
        loss_z = F.mse_loss(E(xg), z)
        loss_x = F.l1_loss(G_ema(E(x)), x)
        loss = loss_z + cfg.recon_weight * loss_x
        opt_e.zero_grad(set_to_none=True)
        loss.backward()
        opt_e.step()
        state["encoder_step"] += 1
        bar.update(1)
        es = state["encoder_step"]
        if es % cfg.log_every == 0:
            rec = {"encoder_step": es, "loss_z": round(loss_z.item(), 4)}
            rec["loss_x"] = round(loss_x.item(), 4)
            log(rec)
        if es % cfg.ckpt_every == 0 or es == cfg.encoder_steps:
            state["elapsed_s"] = time.time() - t_start
            checkpoint()
    bar.close()
    E.eval()

    # Phase 3: the shippable files.
    final = out / "final"
    final.mkdir(exist_ok=True)
    with torch.no_grad():
        x = real_batch()[:32]
        recon = G_ema(E(x))
    save_grid(torch.cat([x, recon]), out / "samples" / "encoder-reconstructions.png")
    save_grid(G_ema(fixed_z).detach(), out / "samples" / "final-ema.png")
    G_ema.cpu()  # ship CPU tensors; the recorded sample statistics are computed on the CPU
    E.cpu()
    atomic_torch_save(
        {"generator": G_ema.state_dict(), "encoder": E.state_dict()}, final / "toyworld.pt"
    )
    from segcore import __version__
    from toyworld.model import WEIGHTS_FORMAT as model_format

    meta = {
        "format": model_format,
        "version": __version__,
        "model": dataclasses.asdict(model_cfg),
        "train": dataclasses.asdict(cfg),
        "command": command,
        "steps": state["step"],
        "encoder_steps": state["encoder_step"],
        "train_seconds": round(state["elapsed_s"], 1),
        "device": device_name(device),
        "torch_threads": cfg.threads,
        "trained_on": "world images only (toyworld.world, TRAIN_SEED), no masks",
        "sample_statistics": sample_statistics(G_ema, d),
    }
    atomic_write_text(final / "toyworld.json", json.dumps(meta, indent=2) + "\n")
    print(f"wrote {final / 'toyworld.pt'} and {final / 'toyworld.json'}", flush=True)
    return final
