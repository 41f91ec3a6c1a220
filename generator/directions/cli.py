"""`python -m generator.directions {discover,score,optimize}`: see the package docstring.

--gan takes a registry name or a "module.path:factory" spec (generator/directions/backend.py).
Bad input ends with one line on stderr and exit 2 (segcore.cli).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from segcore import config as cfgio
from segcore import storage
from segcore.cli import UsageError

PROG = "python -m generator.directions"


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors follow the one-line / exit 2 rule too
        raise UsageError(message)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gan", required=True, help="registry name or module.path:factory")
    p.add_argument("--weights", default=None, help="backend weights (backend-specific)")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda:0 ...")
    p.add_argument("--seed", type=int, default=0)


def build_parser() -> argparse.ArgumentParser:
    from generator.directions.config import DiscoverConfig, OptimizeConfig, ScoreConfig

    parser = _Parser(prog=PROG, description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    fmt = {"formatter_class": argparse.ArgumentDefaultsHelpFormatter}

    s = sub.add_parser("score", help="rank directions by Appendix B (L_h, D_h, area filter)", **fmt)
    _common(s)
    d = ScoreConfig.__dataclass_fields__
    s.add_argument("--directions", required=True, help="dirs.pt [K,d], .npy, or 'coords'")
    s.add_argument("--out", required=True, help="output folder (ranking.json, sheets, ...)")
    s.add_argument("--shift", type=float, default=d["shift"].default)
    s.add_argument("--steps", type=int, default=d["steps"].default, help="Adam steps per fit")
    s.add_argument("--lr", type=float, default=d["lr"].default)
    s.add_argument("--batch", type=int, default=d["batch"].default)
    s.add_argument(
        "--pool-size",
        type=int,
        default=0,
        help="0: fresh z every step (paper); N: draw the batches from N fixed z's (faster)",
    )
    s.add_argument("--eval-batch", type=int, default=d["eval_batch"].default)
    s.add_argument("--keep-top", type=float, default=d["keep_top"].default)
    s.add_argument("--dominant-max", type=float, default=d["dominant_max"].default)
    s.add_argument("--sheets", type=int, default=d["sheets"].default, help="PNG sheets to write")
    s.add_argument("--sheet-images", type=int, default=d["sheet_images"].default)
    s.add_argument("--gen-batch", type=int, default=d["gen_batch"].default)
    s.add_argument("--pick", action="store_true", help="write DIR/direction.json for the best")
    s.add_argument(
        "--pick-direction",
        type=int,
        default=None,
        help="with --pick: take this direction index instead of the best ranked one",
    )

    g = sub.add_parser("discover", help="Voynov & Babenko 2020 unsupervised directions", **fmt)
    _common(g)
    d = DiscoverConfig.__dataclass_fields__
    g.add_argument("--k", type=int, required=True, help="number of directions (<= latent size)")
    g.add_argument("--steps", type=int, required=True)
    g.add_argument("--out", required=True, help="dirs.pt; the checkpoint is OUT.ckpt")
    g.add_argument("--batch", type=int, default=d["batch"].default)
    g.add_argument("--lr", type=float, default=d["lr"].default)
    g.add_argument("--width", type=int, default=d["width"].default, help="reconstructor width")
    g.add_argument("--ckpt-every", type=int, default=d["ckpt_every"].default)
    g.add_argument("--log-every", type=int, default=d["log_every"].default)
    g.add_argument("--shift-scale", type=float, default=d["shift_scale"].default,
                   help="eps = shift_scale * U(-1, 1)")  # fmt: skip
    g.add_argument("--min-shift", type=float, default=d["min_shift"].default,
                   help="|eps| pushed up to this")  # fmt: skip
    g.add_argument("--shift-weight", type=float, default=d["shift_weight"].default,
                   help="weight of the L1 loss on eps")  # fmt: skip
    g.add_argument("--resume", action="store_true", help="continue from OUT.ckpt if present")

    o = sub.add_parser("optimize", help="directly optimise a segmenting direction", **fmt)
    _common(o)
    d = OptimizeConfig.__dataclass_fields__
    o.add_argument("--out", required=True, help="output folder (direction.json, ...)")
    for name in ("shift", "lr", "op_lr", "sep_weight", "area_weight", "area_min", "area_max",
                 "temperature"):  # fmt: skip
        o.add_argument("--" + name.replace("_", "-"), type=float, default=d[name].default)
    for name in ("steps", "batch", "restarts", "fit_steps", "eval_batch"):
        o.add_argument("--" + name.replace("_", "-"), type=int, default=d[name].default)
    o.add_argument("--init", default=None, help="start from this direction file")
    for sp in (s, g, o):  # show every default in --help, not only those with a help text
        for action in sp._actions:
            if action.help is None and action.option_strings:
                action.help = "(default: %(default)s)"
    return parser


def _config(cls, args: argparse.Namespace):
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in vars(args).items() if k in names})


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
    chash = cfgio.config_hash(cfg, exclude=SCORE_RESUME_FREE)
    if old.get("config_hash") != chash or old.get("directions_sha") != _sha(dirs):
        raise UsageError(
            f"{storage.redact(cfg.out)} holds scores made with other options or directions; "
            "choose another --out (or delete it)"
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

    from generator.directions.backend import resolve_device
    from generator.directions.loading import load_directions
    from generator.directions.operators import AffinePair
    from generator.directions.pick import pick_direction, write_direction_file
    from generator.directions.score import DirectionScorer, FitSettings, score_directions
    from generator.directions.sheets import sheet_png
    from generator.gans import load_gan

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
    )
    out = cfg.out
    known = _score_resume_state(cfg, dirs, backend.latent_dim)
    if known:
        print(f"reusing {len(known)} directions already scored in {out}", file=sys.stderr)
    chash = cfgio.config_hash(cfg, exclude=SCORE_RESUME_FREE)
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
        return run_score(_config(ScoreConfig, args))
    if args.command == "discover":
        from generator.directions.discover import run_discover

        return run_discover(_config(DiscoverConfig, args), resume=args.resume)
    from generator.directions.optimize import run_optimize

    return run_optimize(_config(OptimizeConfig, args))
