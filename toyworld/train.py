"""Train the embedded toy-world GAN on world IMAGES only (never masks), on CPU or a GPU.

    nice -n 10 python -m toyworld.train --out runs/toyworld [--device cuda]

Phase 1 trains G and D (hinge loss, spectral-norm D, Adam (0.0, 0.9), EMA of G; the 2-layer
generator's foreground is shifted at random before compositing, PerturbGAN's trick that makes
the layers split object from background; see model.py). Phase 2 recomputes the EMA
generator's BatchNorm statistics, then fits an encoder E to invert the frozen EMA generator:
||E(G(z)) - z||^2 on samples plus ||G(E(x)) - x||_1 on real world images. Phase 3 writes the
shippable files:

    OUT/final/toyworld.pt    {"generator": EMA G state dict, "encoder": E state dict}
    OUT/final/toyworld.json  model config, training command, time, steps, sample statistics

Rerunning the same command resumes from OUT/checkpoint.pt (written atomically every
--ckpt-every steps) and continues exactly where it stopped; sample grids go to OUT/samples/.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from segcore.cli import UsageError, run_cli
from segcore.storage import write_local_atomic

PROG = "python -m toyworld.train"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    steps: int = 8000
    encoder_steps: int = 3000
    batch: int = 64
    lr_g: float = 2e-4
    lr_d: float = 4e-4
    lr_e: float = 5e-4
    beta1: float = 0.0  # Adam (beta1, 0.9) for G and D; DCGAN used 0.5
    loss: str = "hinge"  # or "ns": the non-saturating logistic loss of DCGAN
    ema_decay: float = 0.998
    recon_weight: float = 1.0
    # 2-layer generator only (PerturbGAN): the foreground and its alpha are shifted by up to
    # --shift pixels before compositing, so a realistic image needs a real object/background
    # split; the mean of the SHIFTED alpha (what the composite shows: pixels pushed past the
    # border are gone) is kept within [--min-area, --max-area] by a hinge penalty.
    shift: int = 4
    min_area: float = 0.05
    max_area: float = 0.5
    area_weight: float = 1.0
    n_train: int = 60000
    seed: int = 0
    threads: int = 2
    device: str = "cpu"  # or cuda, cuda:1, ...
    render_workers: int = 1  # processes rendering the training images (once; cached in OUT)
    ckpt_every: int = 250
    sample_every: int = 500
    log_every: int = 50


def _atomic_torch_save(obj, path: Path) -> None:
    import torch

    write_local_atomic(path, lambda f: torch.save(obj, f))


def _atomic_write_text(path: Path, text: str) -> None:
    write_local_atomic(path, lambda f: f.write(text.encode()))


def _render_images(start: int, stop: int, resolution: int) -> np.ndarray:
    from toyworld.world import TRAIN_SEED, WorldConfig, render_scene

    cfg = WorldConfig(resolution=resolution)
    # [0]: the image; the mask is discarded, the GAN trains on images only
    return np.stack([render_scene(TRAIN_SEED, i, cfg)[0] for i in range(start, stop)])


def _load_images(out: Path, n: int, resolution: int, workers: int = 1) -> np.ndarray:
    """World images (uint8 [N,R,R,3]) for training; cached in OUT so a resume skips rendering.

    Scenes are a pure function of (seed, index), so any number of workers renders the same array.
    """
    cache = out / f"train_images_{n}_{resolution}.npy"
    if cache.exists():
        return np.load(cache)
    out.mkdir(parents=True, exist_ok=True)
    from segcore.progress import progress_bar

    chunk = 500
    bounds = [(a, min(a + chunk, n)) for a in range(0, n, chunk)]
    images = np.empty((n, resolution, resolution, 3), np.uint8)
    bar = progress_bar(total=n, desc="rendering world images")
    if workers <= 1:
        for a, b in bounds:
            images[a:b] = _render_images(a, b, resolution)
            bar.update(b - a)
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        ctx = mp.get_context("spawn")  # no fork of a process that may hold CUDA or threads
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            jobs = [(a, b, pool.submit(_render_images, a, b, resolution)) for a, b in bounds]
            for a, b, job in jobs:
                images[a:b] = job.result()
                bar.update(b - a)
    bar.close()
    write_local_atomic(cache, lambda f: np.save(f, images))
    return images


def save_grid(images, path: Path, nrow: int = 8) -> None:
    """images float [N,3,R,R] in [-1,1] -> one PNG grid (written atomically)."""
    import cv2

    x = ((images.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    n, r = x.shape[0], x.shape[1]
    rows = (n + nrow - 1) // nrow
    grid = np.zeros((rows * (r + 1), nrow * (r + 1), 3), np.uint8)
    for i in range(n):
        y0, x0 = (i // nrow) * (r + 1), (i % nrow) * (r + 1)
        grid[y0 : y0 + r, x0 : x0 + r] = x[i]
    grid = cv2.resize(grid, None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST)
    ok, png = cv2.imencode(".png", cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    assert ok  # encoding a uint8 HxWx3 array cannot fail
    write_local_atomic(path, lambda f: f.write(png.tobytes()))


def sample_statistics(generator, latent_dim: int) -> dict:
    """Statistics of G(z) on a fixed seed batch: recorded at training, checked by the tests."""
    import torch

    z = torch.randn(16, latent_dim, generator=torch.Generator().manual_seed(1234))
    with torch.no_grad():
        x = generator(z)
    return {
        "z_seed": 1234,
        "n": 16,
        "mean": float(x.mean()),
        "std": float(x.std()),
        "channel_mean": [float(v) for v in x.mean(dim=(0, 2, 3))],
        "first_pixel": [float(v) for v in x[0, :, 0, 0]],
    }


def _standing_stats(
    generator, latent_dim: int, device, batches: int = 64, batch: int = 128
) -> None:
    """Replace the EMA generator's BN running stats by their exact average over prior samples.

    The EMA weights never ran in train mode, so the stats copied from the live G do not match
    them; BigGAN's "standing statistics" fix this the same way.
    """
    import torch

    g = torch.Generator().manual_seed(99)
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


def _trim_log(path: Path, state: dict) -> None:
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
    _atomic_write_text(path, "".join(k + "\n" for k in keep))


def _device_name(device) -> str:
    import torch

    if device.type == "cuda":
        return f"{device.type} ({torch.cuda.get_device_name(device)})"
    return device.type


def train(out: Path, cfg: TrainConfig, model_cfg, command: str) -> Path:
    import torch
    import torch.nn.functional as F

    from segcore.progress import progress_bar
    from toyworld.model import Discriminator, Encoder, Generator, shift_layer

    torch.set_num_threads(cfg.threads)
    device = torch.device(cfg.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    out.mkdir(parents=True, exist_ok=True)
    (out / "samples").mkdir(exist_ok=True)
    # What a resume must agree on: everything that changes the math. --steps/--encoder-steps
    # may change between runs (extend or cut a run short), and so may logging and threads.
    schedule = (
        "steps",
        "encoder_steps",
        "threads",
        "device",
        "render_workers",
        "ckpt_every",
        "sample_every",
        "log_every",
    )
    config_doc = {
        "train": {k: v for k, v in dataclasses.asdict(cfg).items() if k not in schedule},
        "model": dataclasses.asdict(model_cfg),
    }
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
        if ck["config"] != config_doc:
            raise UsageError(
                f"{ckpt_path} was written with a different configuration; "
                "use another --out or the same options"
            )
        for mod, key in ((G, "G"), (D, "D"), (E, "E"), (G_ema, "G_ema")):
            mod.load_state_dict(ck[key], strict=True)
        for opt, key in ((opt_g, "opt_g"), (opt_d, "opt_d"), (opt_e, "opt_e")):
            opt.load_state_dict(ck[key])
        rng.set_state(ck["rng"])
        torch.set_rng_state(ck["torch_rng"])
        state = ck["state"]
        if state["step"] < cfg.steps and state["encoder_step"] > 0:
            state["encoder_step"] = 0  # the GAN trains further: the encoder must be refitted
        _trim_log(out / "train_log.jsonl", state)
        print(f"resumed from {ckpt_path} at step {state['step']}", flush=True)

    def checkpoint():
        _atomic_torch_save(
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

    images = _load_images(out, cfg.n_train, model_cfg.resolution, cfg.render_workers)
    images = torch.from_numpy(images).to(device)
    d = model_cfg.latent_dim

    # All randomness comes from the CPU generator `rng` (its state is checkpointed), then moves
    # to the device: the same draws on any device, and an exact resume.
    def randn(n):
        return torch.randn(n, d, generator=rng).to(device)

    def real_batch():
        idx = torch.randint(0, images.shape[0], (cfg.batch,), generator=rng).to(device)
        return images[idx].permute(0, 3, 1, 2).float() / 127.5 - 1.0

    fixed_z = torch.randn(64, d, generator=torch.Generator().manual_seed(7)).to(device)

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
            # private but stable since torch 2.0: one fused lerp over all parameters
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

    # Phase 2: the encoder, inverting the frozen EMA generator (PAPER.md section 4 needs E).
    if state["encoder_step"] == 0:
        _standing_stats(G_ema, d, device)
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
    _atomic_torch_save(
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
        "device": _device_name(device),
        "torch_threads": cfg.threads,
        "trained_on": "world images only (toyworld.world, TRAIN_SEED), no masks",
        "sample_statistics": sample_statistics(G_ema, d),
    }
    _atomic_write_text(final / "toyworld.json", json.dumps(meta, indent=2) + "\n")
    print(f"wrote {final / 'toyworld.pt'} and {final / 'toyworld.json'}", flush=True)
    return final


def main(argv=None) -> int:
    from toyworld.model import ModelConfig

    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="run folder (checkpoint, samples, final/)")
    for f in dataclasses.fields(TrainConfig):
        p.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default)
    for f in dataclasses.fields(ModelConfig):
        p.add_argument("--" + f.name.replace("_", "-"), type=int, default=f.default)
    args = p.parse_args(argv)
    cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})
    try:
        model_cfg = ModelConfig(
            **{f.name: getattr(args, f.name) for f in dataclasses.fields(ModelConfig)}
        )
        model_cfg.levels  # noqa: B018 - validates the resolution
    except ValueError as err:
        raise UsageError(str(err)) from err
    if cfg.loss not in ("hinge", "ns"):
        raise UsageError(f"--loss must be hinge or ns, got {cfg.loss!r}")
    if not 0 <= cfg.beta1 < 1:
        raise UsageError(f"--beta1 must be in [0, 1), got {cfg.beta1}")
    if cfg.shift < 0 or not 0 <= cfg.min_area <= cfg.max_area <= 1:
        raise UsageError("--shift must be >= 0 and 0 <= --min-area <= --max-area <= 1")
    if cfg.render_workers < 1:
        raise UsageError(f"--render-workers must be >= 1, got {cfg.render_workers}")
    try:
        import torch

        dev = torch.device(cfg.device)
    except RuntimeError as err:
        raise UsageError(f"--device {cfg.device!r}: {err}") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {cfg.device}: no CUDA device is available")
    if dev.type == "cuda" and (dev.index or 0) >= torch.cuda.device_count():
        raise UsageError(f"--device {cfg.device}: only {torch.cuda.device_count()} CUDA device(s)")
    if cfg.steps < 1 or cfg.batch < 2 or cfg.n_train < cfg.batch:
        raise UsageError("--steps must be >= 1, --batch >= 2 and --n-train >= --batch")
    command = " ".join([PROG] + (sys.argv[1:] if argv is None else list(argv)))
    train(Path(args.out), cfg, model_cfg, command)
    return 0


if __name__ == "__main__":
    run_cli(main, PROG)
