"""Benchmark of the whole unsupervised pipeline on the embedded toy world (issue 8, item 5).

    .venv/bin/python benchmarks/pipeline_world.py --out runs/bench_world [--parts a,adapted,b,c,d,e]

Every figure is measured against the world's TRUE masks on held-out scenes (TEST_SEED, never seen
by the GAN, whose training used TRAIN_SEED images only):
  (a) the unsupervised pipeline: shipped GAN + shipped direction -> shards -> U-Net -> eval,
      latents from the prior N(0, I) (the paper's "BigBiGAN" rows);
  (adapted) the same pipeline adapted to the target dataset (the paper's "E-BigBiGAN" rows,
      PAPER.md section 4): latents = encoder embeddings of 2,000 unlabelled world TRAINING images
      + 0.2 * N(0, I), alpha 0.2 being the paper's value for datasets other than ImageNet;
  (b) the same U-Net, same steps, trained on world scenes with their TRUE masks (upper bound);
  (c) baselines without training: Otsu grey threshold (minority side = object, and the oracle
      polarity per image), eval's classic baselines (`python -m eval baseline`: rbd, center);
  (d) ablations of (a): no filters / each filter alone / the paper's three filters without
      --min-fraction's lower bound, the other mask rule, and encoder-embedding latents with
      alpha 0 (alpha 0.2 is part "adapted");
  (e) diagnostic, not the method: the same U-Net trained on the GAN's own prior samples with the
      GAN's own alpha > 0.5 as masks (the 2-layer model draws one; the pipeline never reads it).
      (e) - (a) is what imperfect synthetic masks cost; (b) - (e) what the GAN-vs-world gap costs.
Prints one table and writes OUT/results.json. Each part reuses finished steps (rerun = resume).
--seed S changes the generator's latents, the U-Net's initialisation and order and (b)'s training
scenes (use a fresh --out per seed to measure the run-to-run spread); --weights / --direction
measure a candidate GAN instead of the shipped one; --mask sets (a)'s rule (default auto).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
sys.path.insert(0, str(ROOT))

from segcore.storage import write_bytes_atomic  # noqa: E402
from toyworld.world import TEST_SEED, TRAIN_SEED, render_scene, write_folder  # noqa: E402


def sh(cmd: list[str], env=None) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)


def metrics_of(report: Path) -> dict:
    doc = json.loads((report / "metrics.json").read_text())
    return {k: doc[k] for k in ("max_fbeta", "iou", "accuracy", "n_images")}


def train_and_eval(args, shards: Path, n_shards: int, run: Path, test: Path) -> dict:
    """U-Net on `shards` (torchrun, 2 processes), then eval on the held-out world scenes."""
    import os

    if not (run / "unet" / "model.json").exists():
        env = dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo")
        pattern = f"{shards}/shard-{{000000..{n_shards - 1:06d}}}.tar"
        sh(
            [
                str(ROOT / ".venv/bin/torchrun"),
                "--standalone",
                "--nproc_per_node=2",
                "-m",
                "trainer",
                "--shards",
                pattern,
                "--out",
                str(run / "unet"),
                "--resolution",
                "32",
                "--width",
                str(args.width),
                "--batch-size",
                str(args.batch),
                "--steps",
                str(args.steps),
                "--lr-drop-step",
                str(args.lr_drop_step),
                "--workers",
                "0",
                "--log-every",
                "100",
                "--seed",
                str(args.seed),
            ],
            env=env,
        )
    report = run / "eval"
    if not (report / "metrics.json").exists():
        sh(
            [
                PY,
                "-m",
                "eval",
                "saliency",
                "--model",
                str(run / "unet"),
                "--data",
                str(test),
                "--short-side",
                "32",
                "--out",
                str(report),
                "--no-progress",
            ]
        )
    return metrics_of(report)


def _sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def read_options(out: Path) -> dict:
    """OUT/options.json; min_fraction came after layout 2, and an OUT without it ran with 0
    (no lower bound)."""
    return {"min_fraction": 0.0, **json.loads((out / "options.json").read_text())}


def check_options(args, out: Path) -> None:
    """Every finished step under OUT is reused, so OUT must hold results of these options only:
    OUT/options.json records them (weights and direction by content) and a mismatch stops here."""
    from generator.gans.toyworld import DEFAULT_DIRECTION, DEFAULT_WEIGHTS

    keys = (
        "test",
        "shards",
        "per_shard",
        "steps",
        "lr_drop_step",
        "width",
        "batch",
        "mask",
        "min_fraction",
        "seed",
    )
    # layout 2: part "adapted" and OUT/embed/ (an OUT of layout 1 is refused, not mixed)
    options = {"layout": 2, **{k: getattr(args, k) for k in keys}}
    options["weights_sha256"] = _sha(args.weights or DEFAULT_WEIGHTS)
    options["direction_sha256"] = _sha(args.direction or DEFAULT_DIRECTION)
    path = out / "options.json"
    if path.exists():
        old = read_options(out)
        diff = [f"{k}: {old.get(k)!r} vs {v!r}" for k, v in options.items() if old.get(k) != v]
        if diff:
            sys.exit(f"{out} holds results of other options ({'; '.join(diff)}); use a new --out")
    elif out.exists() and any(out.iterdir()):
        sys.exit(f"{out} is not empty and has no options.json (an older run?); use a new --out")
    out.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(str(path), (json.dumps(options, indent=2) + "\n").encode())


def resolved_mask(args) -> str:
    """The rule the generator uses for (a) with this direction (its --mask auto included)."""
    from generator.direction_file import load_direction
    from generator.gans.toyworld import DEFAULT_DIRECTION, build
    from generator.run import resolve_mask

    d = load_direction(args.direction or DEFAULT_DIRECTION, build(args.weights).latent_dim)
    return resolve_mask(args.mask, d.operators is not None)


def gan_options(args) -> list[str]:
    """--weights / --direction of a candidate GAN (default: the shipped ones)."""
    opts = ["--weights", args.weights] if args.weights else []
    return opts + (["--direction", args.direction] if args.direction else [])


def generate(args, out: Path, extra: list[str]) -> None:
    if not (out / "manifest.jsonl").exists():
        sh(
            [
                PY,
                "-m",
                "generator",
                "--gan",
                "toyworld",
                "--shards",
                str(args.shards),
                "--samples-per-shard",
                str(args.per_shard),
                "--out",
                str(out),
                "--workers",
                "2",
                "--device",
                "cpu",
                *gan_options(args),
                "--mask",
                args.mask,
                "--min-fraction",
                str(args.min_fraction),
                "--seed",
                str(args.seed),
                *extra,  # a later option wins (argparse): --mask, --min-fraction
            ]
        )


def write_pair_shards(args, out: Path, source: str, make_pairs) -> None:
    """Shards in the generator's format from `make_pairs(s)` -> (uint8 images [K,H,W,3], bool
    masks [K,H,W]) for shard s; finished shards are kept (rerun = resume)."""
    from generator.shards import encode_jpeg, encode_mask_png, publish_shard
    from segcore import schema

    out.mkdir(parents=True, exist_ok=True)
    for s in range(args.shards):
        if (out / schema.shard_name(s)).exists():
            continue
        images, masks = make_pairs(s)
        samples = [
            {
                "__key__": schema.sample_key(s, j),
                "jpg": encode_jpeg(img, 95),
                "png": encode_mask_png(mask, 3),
                "json": json.dumps({"shard": s, "sample": j, "source": source}).encode(),
            }
            for j, (img, mask) in enumerate(zip(images, masks, strict=True))
        ]
        publish_shard(samples, str(out), s)


def write_true_mask_shards(args, out: Path) -> None:
    """Training scenes of the world WITH their true masks, in the generator's shard format."""

    def pairs(s):
        # seed 7 (+ 1000 * --seed): neither train nor test scenes
        scenes = [
            render_scene(7 + 1000 * args.seed, s * args.per_shard + j)
            for j in range(args.per_shard)
        ]
        return [img for img, _ in scenes], [mask for _, mask in scenes]

    write_pair_shards(args, out, "true-mask", pairs)


def write_alpha_mask_shards(args, out: Path) -> None:
    """Prior samples of the shipped GAN with its own alpha > 0.5 as masks (diagnostic (e))."""
    import torch

    from generator.gans.toyworld import build
    from generator.shard_maker import to_uint8  # the generator's own image convention

    gan = build(args.weights)

    def pairs(s):
        g = torch.Generator().manual_seed(1000 + s + 100_000 * args.seed)
        z = torch.randn(args.per_shard, gan.latent_dim, generator=g)
        with torch.no_grad():
            images = to_uint8(gan.generate(z))
            alpha = gan.generator.layered(z)[2][:, 0] > 0.5
        return images, alpha.numpy()

    write_pair_shards(args, out, "gan-alpha", pairs)


def embeddings(args, out: Path) -> Path:
    """Encoder embeddings of 2,000 world TRAINING images (TRAIN_SEED, no masks), PAPER.md
    section 4; made once per OUT."""
    emb = out / "embed" / "embeddings.npy"
    if not emb.exists():
        imgs = write_folder(out / "embed" / "images", 2000, seed=TRAIN_SEED)
        sh(
            [
                PY,
                "-m",
                "generator.embed",
                "--gan",
                "toyworld",
                *(["--weights", args.weights] if args.weights else []),
                "--images",
                str(imgs / "images"),
                "--out",
                str(emb),
            ]
        )
    return emb


def otsu(test_n: int) -> dict:
    from eval.metrics import SaliencyMetrics

    minority, oracle = SaliencyMetrics(), SaliencyMetrics()
    for i in range(test_n):
        img, mask = render_scene(TEST_SEED, i)
        gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        t, _ = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        pred = gray > t
        minority.update((pred if pred.mean() < 0.5 else ~pred).astype(np.float32), mask)
        a, b = pred, ~pred
        iou_a = (a & mask).sum() / max((a | mask).sum(), 1)
        iou_b = (b & mask).sum() / max((b | mask).sum(), 1)
        oracle.update((a if iou_a >= iou_b else b).astype(np.float32), mask)
    keys = ("max_fbeta", "iou", "accuracy", "n_images")
    return {
        "otsu_minority": {k: minority.compute()[k] for k in keys},
        "otsu_oracle_polarity": {k: oracle.compute()[k] for k in keys},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/bench_world")
    p.add_argument("--parts", default="a,adapted,b,c,d,e")
    p.add_argument("--test", type=int, default=1000, help="held-out scenes")
    p.add_argument("--shards", type=int, default=8)
    p.add_argument("--per-shard", type=int, default=500)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument(
        "--lr-drop-step",
        type=int,
        default=8000,
        help="U-Net lr x0.2 from this step (default: the trainer's, i.e. no drop in 600 steps)",
    )
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--mask", default="auto", choices=("auto", "affine", "lighter"), help="(a) rule")
    p.add_argument(
        "--min-fraction",
        type=float,
        default=0.02,
        help="the generator's --min-fraction for (a), adapted and (d), as in `make demo` "
        "(0: the paper's filters exactly)",
    )
    p.add_argument("--seed", type=int, default=0, help="generator/trainer seed (run-to-run spread)")
    p.add_argument("--weights", help="toyworld weights .pt to measure (default: shipped)")
    p.add_argument("--direction", help="direction .json to measure (default: shipped)")
    args = p.parse_args()
    if args.weights and not args.direction:
        p.error("--weights needs --direction: the shipped direction belongs to the shipped GAN")
    out = Path(args.out).resolve()
    parts = set(args.parts.split(","))
    check_options(args, out)
    test = write_folder(out / "world_test", args.test, seed=TEST_SEED)
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}

    def record(name, value):
        results[name] = value
        write_bytes_atomic(str(results_path), (json.dumps(results, indent=2) + "\n").encode())
        print(name, json.dumps(value), flush=True)

    t0 = time.time()
    if "a" in parts:
        generate(args, out / "a" / "shards", [])
        record(
            "a_unsupervised",
            train_and_eval(args, out / "a" / "shards", args.shards, out / "a", test),
        )
    if "adapted" in parts:
        extra = ["--latents", str(embeddings(args, out)), "--alpha", "0.2"]
        generate(args, out / "adapted" / "shards", extra)
        record(
            "a_adapted",
            train_and_eval(args, out / "adapted" / "shards", args.shards, out / "adapted", test),
        )
    if "b" in parts:
        write_true_mask_shards(args, out / "b" / "shards")
        record(
            "b_true_masks", train_and_eval(args, out / "b" / "shards", args.shards, out / "b", test)
        )
    if "c" in parts:
        for name, value in otsu(args.test).items():
            record("c_" + name, value)
        for method in ("rbd", "center"):
            rep = out / "c" / method
            if not (rep / "metrics.json").exists():
                sh(
                    [
                        PY,
                        "-m",
                        "eval",
                        "baseline",
                        "--method",
                        method,
                        "--data",
                        str(test),
                        "--out",
                        str(rep),
                        "--no-progress",
                    ]
                )
            record("c_" + method, metrics_of(rep))
    if "d" in parts:
        other = "affine" if resolved_mask(args) == "lighter" else "lighter"
        variants = {
            # without the mask_size filter its lower bound has no meaning (the generator refuses it)
            "filters_none": ["--filters", "none", "--min-fraction", "0"],
            "filters_components": ["--filters", "components", "--min-fraction", "0"],
            "filters_mask_size": ["--filters", "mask_size"],
            "filters_histogram": ["--filters", "histogram", "--min-fraction", "0"],
            # the paper's three filters exactly: (a) without the lower bound (when it has one)
            **({"filters_paper": ["--min-fraction", "0"]} if args.min_fraction > 0 else {}),
            # the other rule: "lighter" (section 2) when (a) uses "affine" (Appendix B), or back
            f"mask_{other}": ["--mask", other],
        }
        variants["embeddings_alpha0"] = ["--latents", str(embeddings(args, out)), "--alpha", "0"]
        for name, extra in variants.items():
            run = out / "d" / name
            generate(args, run / "shards", extra)
            record("d_" + name, train_and_eval(args, run / "shards", args.shards, run, test))

    if "e" in parts:
        write_alpha_mask_shards(args, out / "e" / "shards")
        record(
            "e_gan_alpha_masks",
            train_and_eval(args, out / "e" / "shards", args.shards, out / "e", test),
        )

    print(f"\n{'':28s} {'maxFbeta':>9s} {'IoU':>7s} {'acc':>7s} {'n':>6s}")
    for name, m in results.items():
        print(
            f"{name:28s} {m['max_fbeta']:9.3f} {m['iou']:7.3f} {m['accuracy']:7.3f} {m['n_images']:6d}"
        )
    for name in ("a_unsupervised", "a_adapted"):
        if name in results and "b_true_masks" in results:
            ratio = results[name]["iou"] / results["b_true_masks"]["iou"]
            print(f"{name} / b_true_masks IoU ratio: {ratio:.3f}")
    print(f"results: {results_path}  ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
