"""`python -m generator.directions {discover,score,optimize}`: see the package docstring.

--gan takes a registry name or a "module.path:factory" spec (generator.gans.load_gan).
Bad input ends with one line on stderr and exit 2 (segcore.cli).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from segcore import config as cfgio
from segcore import options, storage
from segcore.cli import UsageError

PROG = "python -m generator.directions"


# Help texts of the flags; each default comes from the command's config (config.py).
_COMMON_HELP = {
    "gan": "registry name or module.path:factory",
    "weights": "backend weights (backend-specific)",
    "device": "auto (cuda if available), cpu, cuda:0 ...",
    "seed": "seed of every random draw",
    "truncation": "psi in (0, 1] of the GAN's prior mapping (stylegan2: z -> w, then w_avg + "
    "psi (w - w_avg)); 1: none",
    "classes": "a class-conditional GAN (biggan): classes the samples' classes are drawn from, "
    "uniformly: ids and ranges such as '1,5,10-20', or a file of them (none: all)",
}
_SCORE_HELP = {
    "directions": "dirs.pt [K,d], .npy, or 'coords'",
    "out": "output folder (ranking.json, sheets, ...)",
    "shift": "shift r of each direction",
    "steps": "Adam steps per fit",
    "lr": "Adam learning rate of the operator fit",
    "batch": "images per fit step",
    "pool_size": "0: fresh z every step (paper); N: draw the batches from N fixed z's (faster)",
    "eval_batch": "images of the evaluation batch",
    "keep_top": "fraction of the valid directions kept by separation D_h",
    "dominant_max": "drop a direction that puts this fraction of the pixels in one class",
    "sheets": "PNG sheets to write",
    "sheet_images": "images per sheet",
    "pick": "write DIR/direction.json for the best",
    "pick_direction": "with --pick: take this direction index instead of the best ranked one",
    "gen_batch": "images per generator call",
}
_DISCOVER_HELP = {
    "out": "dirs.pt; the checkpoint is OUT.ckpt",
    "k": "number of directions (<= latent size)",
    "steps": "training steps",
    "batch": "batch size",
    "lr": "Adam learning rate (deformator and reconstructor)",
    "shift_scale": "eps = shift_scale * U(-1, 1)",
    "min_shift": "|eps| pushed up to this",
    "shift_weight": "weight of the L1 loss on eps",
    "width": "reconstructor width",
    "ckpt_every": "steps between checkpoints",
    "log_every": "steps between log lines",
}
_OPTIMIZE_HELP = {
    "out": "output folder (direction.json, ...)",
    "shift": "shift r of the direction",
    "steps": "Adam steps per restart",
    "batch": "images per step",
    "lr": "Adam learning rate of the direction",
    "op_lr": "Adam learning rate of the operators",
    "sep_weight": "weight of the separation D_h in the loss",
    "area_weight": "weight of the area penalty",
    "area_min": "smallest object fraction without penalty",
    "area_max": "largest object fraction without penalty",
    "temperature": "soft assignment temperature of the area term",
    "restarts": "random restarts",
    "init": "start from this direction file (none: random starts)",
    "fit_steps": "Adam steps of the final operator fit",
    "eval_batch": "images of the final evaluation batch",
}
# config fields that are library settings, not flags
_NOT_FLAGS = {"score": ("init_bias",), "discover": ("init_scale",), "optimize": ("sheet_images",)}


def _add_command(sub, name: str, cls, helps: dict, text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=text, description=text)
    options.add_options(p, cls, only=_COMMON_HELP, help=_COMMON_HELP)
    skip = (*_COMMON_HELP, *_NOT_FLAGS[name])
    rest = [f.name for f in dataclasses.fields(cls) if f.name not in skip]
    options.add_options(p, cls, only=rest, help=helps)
    return p


def build_parser() -> argparse.ArgumentParser:
    from generator.directions.config import DiscoverConfig, OptimizeConfig, ScoreConfig

    parser = options.Parser(prog=PROG, description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=options.Parser)
    text = "rank directions by Appendix B (L_h, D_h, area filter)"
    _add_command(sub, "score", ScoreConfig, _SCORE_HELP, text)
    text = "Voynov & Babenko 2020 unsupervised directions"
    g = _add_command(sub, "discover", DiscoverConfig, _DISCOVER_HELP, text)
    g.add_argument(
        "--resume", action="store_true", help="continue from OUT.ckpt if present (default: no)"
    )
    text = "directly optimise a segmenting direction"
    _add_command(sub, "optimize", OptimizeConfig, _OPTIMIZE_HELP, text)
    return parser


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise UsageError(message)


# Options that do not change any direction's score: a rerun may differ in them and still reuse
# the per-direction scores in OUT/scores/ (the directions themselves are checked by content).
SCORE_RESUME_FREE = (
    "out", "directions", "sheets", "pick", "pick_direction", "device", "gen_batch"
)  # fmt: skip


def _score_resume_state(cfg, dirs, latent_dim: int) -> dict[int, dict]:
    """Entries already scored in cfg.out by a run with the same options and directions."""
    cfg_url = storage.join(cfg.out, "config.json")
    if not storage.exists(cfg_url):
        return {}
    try:
        old = json.loads(storage.read_bytes(cfg_url))
    except ValueError as err:
        raise UsageError(f"{storage.redact(cfg_url)} is not valid JSON: {err}") from err
    from generator.directions.config import resume_hash

    chash, sha = resume_hash(cfg, SCORE_RESUME_FREE), _sha(dirs)
    if old.get("config_hash") != chash or old.get("directions_sha") != sha:
        diff = cfgio.differences(old.get("config", {}), cfg, ignore=SCORE_RESUME_FREE)
        if old.get("directions_sha") != sha:
            diff.append(f"directions sha256: {old.get('directions_sha')} -> {sha}")
        named = "; ".join(diff) or f"config hash {old.get('config_hash')} -> {chash}"
        raise UsageError(
            f"{storage.redact(cfg.out)} holds scores made with other options or directions "
            f"({named}); choose another --out (or delete it)"
        )
    known = {}
    for name in storage.list_names(storage.join(cfg.out, "scores")):
        if name.startswith("dir_") and name.endswith(".json"):
            entry = json.loads(storage.read_bytes(storage.join(cfg.out, "scores", name)))
            known[int(entry["direction"])] = entry
    return known


def _sha(dirs) -> str:
    import hashlib

    return hashlib.sha256(dirs.contiguous().numpy().tobytes()).hexdigest()[:16]


def run_score(cfg) -> int:
    import torch

    from generator.directions.backend import backend_classes
    from generator.directions.config import resume_hash
    from generator.directions.loading import load_directions
    from generator.directions.operators import AffinePair
    from generator.directions.pick import pick_direction, write_direction_file
    from generator.directions.score import DirectionScorer, FitSettings, score_directions
    from generator.directions.sheets import sheet_png
    from generator.gans import load_gan
    from generator.gans.base import check_prior
    from segcore.device import resolve_device

    _check(cfg.shift > 0, f"--shift must be > 0, got {cfg.shift}")
    for name in ("steps", "batch", "eval_batch", "gen_batch"):
        _check(getattr(cfg, name) >= 1, f"--{name.replace('_', '-')} must be >= 1")
    _check(cfg.pool_size >= 0, "--pool-size must be >= 0")
    _check(0 < cfg.keep_top <= 1, f"--keep-top must be in (0, 1], got {cfg.keep_top}")
    _check(0.5 < cfg.dominant_max <= 1, "--dominant-max must be in (0.5, 1]")
    _check(cfg.sheets >= 0 and cfg.sheet_images >= 1, "--sheets >= 0, --sheet-images >= 1")
    _check(cfg.pick_direction is None or cfg.pick, "--pick-direction needs --pick")

    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    backend = load_gan(cfg.gan, cfg.weights, device)
    check_prior(backend, cfg.truncation)
    dirs = load_directions(cfg.directions, backend.latent_dim)
    print(
        f"scoring {dirs.shape[0]} directions of GAN {backend.name!r} (latent {backend.latent_dim},"
        f" {backend.resolution}px) on {device}, shift {cfg.shift}",
        file=sys.stderr,
    )
    settings = FitSettings(
        shift=cfg.shift,
        steps=cfg.steps,
        lr=cfg.lr,
        batch=cfg.batch,
        pool_size=cfg.pool_size,
        eval_batch=max(cfg.eval_batch, cfg.sheet_images),
        init_bias=cfg.init_bias,
        gen_batch=cfg.gen_batch,
        seed=cfg.seed,
        truncation=cfg.truncation,
        classes=backend_classes(backend, cfg.classes),  # a conditional GAN's --classes
    )
    out = cfg.out
    known = _score_resume_state(cfg, dirs, backend.latent_dim)
    if known:
        print(f"reusing {len(known)} directions already scored in {out}", file=sys.stderr)
    chash = resume_hash(cfg, SCORE_RESUME_FREE)
    storage.write_bytes_atomic(
        storage.join(out, "config.json"),
        cfgio.dump_json(cfg, config_hash=chash, directions_sha=_sha(dirs)).encode(),
    )

    def on_scored(k: int, entry: dict) -> None:
        # one small file per direction: an interrupted run resumes where it stopped
        storage.write_bytes_atomic(
            storage.join(out, "scores", f"dir_{k:05d}.json"), json.dumps(entry).encode()
        )

    scorer = DirectionScorer(backend, settings)
    ranking = score_directions(
        backend,
        dirs,
        settings,
        keep_top=cfg.keep_top,
        dominant_max=cfg.dominant_max,
        scorer=scorer,
        known=known,
        on_scored=on_scored,
    )
    storage.write_bytes_atomic(
        storage.join(out, "ranking.json"), (json.dumps(ranking, indent=1) + "\n").encode()
    )
    for e in ranking[: cfg.sheets]:
        pair = AffinePair.from_matrices(e["operators"]).to(device)
        t = scorer.evaluate(dirs[e["direction"]], pair, n=cfg.sheet_images, tensors=True)
        t = t["_tensors"]
        mask = t["assign"] == e["object_class"]  # the object as decided on the whole eval batch
        name = f"sheet_rank{e['rank']:03d}_dir{e['direction']:04d}.png"
        storage.write_bytes_atomic(
            storage.join(out, name), sheet_png(t["x"], t["y"], t["approx"], mask)
        )
    print("rank direction  L_h       D_h      dominant kept", file=sys.stderr)
    for e in ranking[: max(cfg.sheets, 10)]:
        print(
            f"{e['rank']:4d} {e['direction']:9d}  {e['restoration_loss']:.5f}  "
            f"{e['separation']:.5f}  {e['dominant_fraction']:.3f}    {e['kept']}",
            file=sys.stderr,
        )
    print(f"wrote {storage.redact(storage.join(out, 'ranking.json'))}", file=sys.stderr)
    if cfg.pick:
        choice = pick_direction(backend, dirs, ranking, scorer, index=cfg.pick_direction)
        url = storage.join(out, "direction.json")
        write_direction_file(
            url,
            choice,
            gan=cfg.gan,
            shift=cfg.shift,
            index=choice["index"],
            ranking_entry=choice["ranking_entry"],
            source=storage.redact(cfg.directions),
        )
        print(
            f"picked direction {choice['index']} with sign {choice['sign']:+d} "
            f"(object = operator {choice['bright_operator']}, brightens: "
            f"{choice['object_brightens']}); wrote {storage.redact(url)}",
            file=sys.stderr,
        )
    return 0


def main(argv=None) -> int:
    from generator.directions.config import DiscoverConfig, OptimizeConfig, ScoreConfig

    args = build_parser().parse_args(argv)
    if args.command == "score":
        return run_score(options.config_from_args(ScoreConfig, args))
    if args.command == "discover":
        from generator.directions.discover import run_discover

        return run_discover(options.config_from_args(DiscoverConfig, args), resume=args.resume)
    from generator.directions.optimize import run_optimize

    return run_optimize(options.config_from_args(OptimizeConfig, args))
