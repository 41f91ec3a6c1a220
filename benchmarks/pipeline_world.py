"""Benchmark of the whole unsupervised pipeline on the embedded toy world.

    python benchmarks/pipeline_world.py --out runs/bench_world [--parts a,adapted,b,c,d,e]

Every figure is measured against the world's TRUE masks on held-out scenes (TEST_SEED, never seen
by the GAN, whose training used TRAIN_SEED images only):
  (a) the unsupervised pipeline: shipped GAN + shipped direction -> shards -> U-Net -> eval,
      latents from the prior N(0, I) (the paper's "BigBiGAN" rows);
  (adapted) the same pipeline adapted to the target dataset (the paper's "E-BigBiGAN" rows,
      section 3.2): latents = encoder embeddings of 2,000 unlabelled world TRAINING images
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
The steps are those of the experiment behind `make demo` (`toyworld.experiment_steps`: the
stages' public command lines, run with this Python), so (a) at the defaults is the demo's run.
Prints one table and writes OUT/results.json; OUT/options.json records the options and a rerun
with other ones is refused. Each part reuses finished steps (rerun = resume).
--seed S changes the generator's latents, the U-Net's initialisation and order and (b)'s training
scenes (use a fresh --out per seed to measure the run-to-run spread); --weights / --direction
measure a candidate GAN instead of the shipped one; --mask sets (a)'s rule (default auto).
Measured numbers: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from segcore import schema
from segcore.cli import UsageError, run_cli
from segcore.config import config_hash, dump_json, refuse_if_different
from segcore.samples import encode_jpeg, encode_mask_png
from segcore.storage import write_bytes_atomic
from toyworld import DEFAULT_DIRECTION, DEFAULT_WEIGHTS
from toyworld.experiment import MASKS, ExperimentConfig
from toyworld.experiment_record import check_options, content_sha
from toyworld.experiment_steps import (
    failed_stage,
    generate,
    run_command,
    train_and_evaluate,
    world_embeddings,
    world_scenes,
)
from toyworld.world import TEST_SEED, render_scene

PROG = "pipeline_world.py"
LAYOUT = 2  # OUT's folder structure: part "adapted" and OUT/embed/
HEADLINE = ("max_fbeta", "iou", "accuracy", "n_images")


def metrics_of(report: Path) -> dict:
    doc = json.loads((report / "metrics.json").read_text())
    return {k: doc[k] for k in HEADLINE}


def record_options(args, out: Path) -> None:
    """Every finished step under OUT is reused, so OUT must hold results of these options only
    (weights and direction recorded by content)."""
    keys = ("test", "shards", "per_shard", "steps", "lr_drop_step", "width", "batch", "mask")
    options = {"layout": LAYOUT, **{k: getattr(args, k) for k in keys}}
    options.update(min_fraction=args.min_fraction, seed=args.seed)
    if args.image_format != "jpg":  # recorded only when set: folders made before keep resuming
        options["image_format"] = args.image_format
    options["weights_sha256"] = content_sha(args.weights or DEFAULT_WEIGHTS)
    options["direction_sha256"] = content_sha(args.direction or DEFAULT_DIRECTION)
    check_options(out, options)


def resolved_mask(args) -> str:
    """The rule the generator uses for (a) with this direction (its --mask auto included)."""
    from generator.direction_file import load_direction
    from generator.gans import load_gan
    from generator.run import resolve_mask

    latent_dim = load_gan("toyworld", args.weights).latent_dim
    d = load_direction(args.direction or DEFAULT_DIRECTION, latent_dim)
    return resolve_mask(args.mask, d.operators is not None)


@dataclass(frozen=True)
class PairShards:
    """The config.json of a folder of (image, mask) shards made outside the generator (parts b
    and e): where the pairs come from, counts and seed (and the GAN's weights for e)."""

    source: str  # "true-mask" or "gan-alpha", also in each sample's meta
    shards: int
    samples_per_shard: int
    seed: int
    weights_sha256: str | None = None


def write_pair_shards(config: PairShards, out: Path, make_pairs) -> None:
    """Shards in the generator's format, with its run-folder bookkeeping (segcore/schema.py:
    config.json, a manifest record per finished shard, manifest.jsonl), from `make_pairs(s)` ->
    (uint8 images [K, H, W, 3], bool masks [K, H, W]) for shard s. A shard with its record is
    kept (rerun = resume); one without is made again, byte for byte the same."""
    from generator.manifest import finished_records, make_record, write_jsonl, write_record
    from generator.shards import publish_shard

    out.mkdir(parents=True, exist_ok=True)
    digest = config_hash(config)
    config_path = out / schema.RUN_CONFIG
    if config_path.exists():
        saved = json.loads(config_path.read_text())["config"]
        refuse_if_different(saved, config, what=str(out), hint="use a new --out")
    else:
        blob = dump_json(config, config_hash=digest, software="gan-objseg")
        write_bytes_atomic(str(config_path), blob.encode())
    finished = finished_records(str(out))
    for s in range(config.shards):
        if s in finished:
            continue
        images, masks = make_pairs(s)
        samples = [
            {
                "__key__": schema.sample_key(s, j),
                schema.IMAGE_KEY: encode_jpeg(img, 95),
                schema.MASK_KEY: encode_mask_png(mask, 3),
                schema.META_KEY: json.dumps(
                    {"shard": s, "sample": j, "source": config.source}
                ).encode(),
            }
            for j, (img, mask) in enumerate(zip(images, masks, strict=True))
        ]
        size, sha = publish_shard(samples, str(out), s)
        n = len(samples)
        finished[s] = make_record(s, n, n, {}, size, sha, digest, source=config.source)
        write_record(str(out), finished[s])
    write_jsonl(str(out), finished)


def true_mask_pairs(args):
    """Training scenes of the world WITH their true masks (part b)."""

    def pairs(s):
        # seed 7 (+ 1000 * --seed): neither train nor test scenes
        scenes = [
            render_scene(7 + 1000 * args.seed, s * args.per_shard + j)
            for j in range(args.per_shard)
        ]
        return [img for img, _ in scenes], [mask for _, mask in scenes]

    return pairs


def gan_alpha_pairs(args):
    """Prior samples of the GAN with its own alpha > 0.5 as masks (diagnostic e)."""
    import torch

    from generator.gans import load_gan
    from generator.shard_maker import to_uint8  # the generator's own image convention

    gan = load_gan("toyworld", args.weights)

    def pairs(s):
        g = torch.Generator().manual_seed(1000 + s + 100_000 * args.seed)
        z = torch.randn(args.per_shard, gan.latent_dim, generator=g)
        with torch.no_grad():
            images = to_uint8(gan.generate(z))
            alpha = gan.generator.alpha(z)[:, 0] > 0.5
        return images, alpha.numpy()

    return pairs


def bytes_per_sample(shards: Path) -> dict:
    """Mean tar bytes per sample of a generator run (image, mask, meta and tar headers)."""
    records = [
        json.loads(line) for line in (shards / schema.MANIFEST_JSONL).read_text().splitlines()
    ]
    size, count = sum(r["bytes"] for r in records), sum(r["count"] for r in records)
    return {"mean": size / count, "bytes": size, "samples": count}


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
    return {
        "otsu_minority": {k: minority.compute()[k] for k in HEADLINE},
        "otsu_oracle_polarity": {k: oracle.compute()[k] for k in HEADLINE},
    }


def baseline(method: str, test: Path, out: Path) -> dict:
    """`python -m eval baseline --method METHOD` on the held-out scenes (made once)."""
    if not (out / "metrics.json").exists():
        cmd = ["-m", "eval", "baseline", "--method", method, "--data", str(test)]
        run_command([sys.executable, *cmd, "--out", str(out), "--no-progress"])
    return metrics_of(out)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", default="runs/bench_world", help="benchmark folder")
    p.add_argument("--parts", default="a,adapted,b,c,d,e", help="comma list of parts to run")
    p.add_argument("--test", type=int, default=1000, help="held-out scenes")
    p.add_argument("--shards", type=int, default=8, help="shards per training set")
    p.add_argument("--per-shard", type=int, default=500, help="samples per shard")
    p.add_argument("--steps", type=int, default=600, help="U-Net steps")
    p.add_argument(
        "--lr-drop-step",
        type=int,
        default=8000,
        help="U-Net lr x0.2 from this step (the trainer's default: no drop in 600 steps)",
    )
    p.add_argument("--width", type=float, default=0.25, help="U-Net width")
    p.add_argument("--batch", type=int, default=32, help="U-Net batch")
    p.add_argument("--mask", default="auto", choices=MASKS, help="(a)'s rule")
    p.add_argument(
        "--min-fraction",
        type=float,
        default=0.02,
        help="the generator's --min-fraction for (a), adapted and (d), as in `make demo` "
        "(0: the paper's filters exactly)",
    )
    p.add_argument("--seed", type=int, default=0, help="generator/trainer seed (run-to-run spread)")
    p.add_argument("--weights", help="toyworld weights .pt to measure (none: the shipped ones)")
    p.add_argument("--direction", help="direction .json to measure (none: the shipped one)")
    p.add_argument(
        "--image-format",
        default="jpg",
        choices=schema.IMAGE_FORMATS,
        help="the generator's --image-format for the GAN parts (a, adapted, d): JPEG q95 or "
        "lossless PNG",
    )
    return p


def main(argv=None) -> int:
    try:
        return run_benchmark(build_parser().parse_args(argv))
    except subprocess.CalledProcessError as err:  # the stage has printed why
        print(f"{PROG}: error: '{failed_stage(err)}' exited with {err.returncode}", file=sys.stderr)
        return err.returncode


def run_benchmark(args) -> int:
    parts = set(args.parts.split(","))
    unknown = parts - {"a", "adapted", "b", "c", "d", "e"}
    if unknown:
        raise UsageError(f"--parts: unknown part(s) {', '.join(sorted(unknown))}")
    try:
        cfg = ExperimentConfig(
            test=args.test,
            shards=args.shards,
            samples_per_shard=args.per_shard,
            mask=args.mask,
            min_fraction=args.min_fraction,
            steps=args.steps,
            width=args.width,
            batch_size=args.batch,
            lr_drop_step=args.lr_drop_step,
            seed=args.seed,
            weights=args.weights,
            direction=args.direction,
            log_every=100,
        )
    except ValueError as err:
        raise UsageError(str(err)) from err
    out = Path(args.out).resolve()
    record_options(args, out)
    test = world_scenes(out / "world_test", args.test)
    training = cfg.training()
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}

    def record(name, value):
        results[name] = value
        write_bytes_atomic(str(results_path), (json.dumps(results, indent=2) + "\n").encode())
        print(name, json.dumps(value), flush=True)

    def trained(run: Path) -> dict:
        """The U-Net on run/shards, evaluated on the held-out scenes."""
        return metrics_of(train_and_evaluate(training, run / "shards", args.shards, run, test))

    def generation(latents=None):
        """(a)'s generator settings, with --image-format when not the default."""
        gen = cfg.generation(latents)
        return gen if args.image_format == "jpg" else replace(gen, image_format=args.image_format)

    t0 = time.time()
    if "a" in parts:
        generate(generation(), out / "a" / "shards")
        record("a_unsupervised", trained(out / "a"))
        record("a_bytes_per_sample", bytes_per_sample(out / "a" / "shards"))
    if "adapted" in parts:
        emb = world_embeddings(out / "embed", cfg.embed_images, args.weights)
        generate(generation(emb), out / "adapted" / "shards")
        record("a_adapted", trained(out / "adapted"))
    if "b" in parts:
        shards = PairShards("true-mask", args.shards, args.per_shard, args.seed)
        write_pair_shards(shards, out / "b" / "shards", true_mask_pairs(args))
        record("b_true_masks", trained(out / "b"))
    if "c" in parts:
        for name, value in otsu(args.test).items():
            record("c_" + name, value)
        for method in ("rbd", "center"):
            record("c_" + method, baseline(method, test, out / "c" / method))
    if "d" in parts:
        other = "affine" if resolved_mask(args) == "lighter" else "lighter"
        gen = generation()
        variants = {
            # without the mask_size filter its lower bound has no meaning (the generator refuses it)
            "filters_none": replace(gen, filters="none", min_fraction=0.0),
            "filters_components": replace(gen, filters="components", min_fraction=0.0),
            "filters_mask_size": replace(gen, filters="mask_size"),
            "filters_histogram": replace(gen, filters="histogram", min_fraction=0.0),
            # the paper's three filters exactly: (a) without the lower bound (when it has one)
            **({"filters_paper": replace(gen, min_fraction=0.0)} if args.min_fraction > 0 else {}),
            # the other rule: "lighter" (section 3.1) when (a) uses "affine" (Appendix B), or back
            f"mask_{other}": replace(gen, mask=other),
        }
        emb = world_embeddings(out / "embed", cfg.embed_images, args.weights)
        variants["embeddings_alpha0"] = replace(generation(emb), alpha=0.0)
        for name, generation in variants.items():
            run = out / "d" / name
            generate(generation, run / "shards")
            record("d_" + name, trained(run))
    if "e" in parts:
        weights_sha = content_sha(args.weights or DEFAULT_WEIGHTS)
        shards = PairShards("gan-alpha", args.shards, args.per_shard, args.seed, weights_sha)
        write_pair_shards(shards, out / "e" / "shards", gan_alpha_pairs(args))
        record("e_gan_alpha_masks", trained(out / "e"))

    print(f"\n{'':28s} {'maxFbeta':>9s} {'IoU':>7s} {'acc':>7s} {'n':>6s}")
    for name, m in results.items():
        if name == "a_bytes_per_sample":
            print(f"{name:28s} {m['mean']:9.0f} ({args.image_format} images, PNG masks, meta, tar)")
            continue
        print(
            f"{name:28s} {m['max_fbeta']:9.3f} {m['iou']:7.3f} {m['accuracy']:7.3f} {m['n_images']:6d}"
        )
    for name in ("a_unsupervised", "a_adapted"):
        if name in results and "b_true_masks" in results:
            ratio = results[name]["iou"] / results["b_true_masks"]["iou"]
            print(f"{name} / b_true_masks IoU ratio: {ratio:.3f}")
    print(f"results: {results_path}  ({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    run_cli(main, PROG)
