"""A whole generator run: resolve inputs into a GeneratorConfig, open (or resume) the run
folder, generate the missing shards on Ray, consolidate `manifest.jsonl`.

Everything the user can get wrong is checked in `resolve_config` / `check_output` BEFORE
anything is written, so a refused run leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from collections.abc import Iterator

from generator.config import GeneratorConfig
from generator.manifest import open_run, write_jsonl
from generator.ray_runner import (
    GenerationFailed,
    RaySettings,
    check_settings,
    init_ray,
    run_shards,
)
from segcore import recipes, schema, storage
from segcore.cli import UsageError

MASK_AUTO = "auto"  # the mask rule of `resolve_mask`: chosen by the direction file
DEFAULT_SHIFT = GeneratorConfig.__dataclass_fields__["shift"].default  # without one in the file
NORM_TOLERANCE = 1e-4  # a stored direction this close to norm 1 is reported as unit length


def resolve_direction(gan, direction_file: str | None):
    """The Direction for this run: the file if given, else the backend's default, else refuse."""
    from generator.direction_file import load_direction

    if direction_file:
        return load_direction(direction_file, gan.latent_dim)
    default = getattr(gan, "default_direction", None)
    if default is None:
        raise UsageError(
            f"GAN {gan.name!r} ships no default direction; pass --direction FILE (the file "
            "'python -m generator.directions score --pick' writes, or a .npy/.pt vector)"
        )
    return default()


def report_norm(direction, direction_file: str | None, scale: str) -> None:
    """Say once what `--shift` multiplies when the stored vector is not of unit length."""
    if abs(direction.norm - 1.0) <= NORM_TOLERANCE:
        return
    name = storage.redact(str(direction_file)) if direction_file else "the GAN's direction"
    if scale == "raw":
        how = "--direction-scale raw keeps it: z moves by --shift x that norm"
    else:
        how = (
            "it is scaled to norm 1, so z moves by exactly --shift (--direction-scale raw "
            "keeps the stored vector, as the authors' code does)"
        )
    print(f"generator: direction {name} has norm {direction.norm:.6g} as stored; {how}")


def resolve_mask(mask: str, has_operators: bool) -> str:
    """`auto` -> Appendix B's "affine" rule for a direction picked by `directions score --pick`
    (it carries the operators fit for it), the paper's "lighter" rule for a plain vector such
    as h_bg. Any other rule is returned as given."""
    if mask != MASK_AUTO:
        return mask
    return "affine" if has_operators else "lighter"


def resolve_config(
    *,
    shards: int,
    gan_name: str,
    weights: str | None,
    direction_file: str | None,
    shift: float | None,
    latents: str,
    alpha: float | None = None,
    latents_target: str | None = None,
    recipe: str = recipes.DEFAULT,
    overrides: tuple[str, ...] = (),
    direction_scale: str = "unit",
    **options,
):
    """-> (GeneratorConfig, embeddings array or None). UsageError on any bad input.

    `recipe` is the name the options were resolved with (segcore.recipes; its values are
    already in the arguments) and `overrides` the options given over it: both are recorded.
    With embeddings latents the alpha is `alpha`, else that of `latents_target`, else the
    recipe's; none of them is an error."""
    from generator.classes import parse_classes
    from generator.gans import load_gan
    from generator.gans.base import check_prior, num_classes
    from generator.labelers import labeler_options
    from generator.latents import PRIOR, load_embeddings

    if shards < 1:
        raise UsageError(f"--shards must be >= 1, got {shards}")
    chosen = recipes.get(recipe)
    recipes.require_direction(chosen, direction_file)
    gan = load_gan(gan_name, weights, "cpu")
    check_prior(gan, options.get("truncation", 1.0))  # a truncation needs a prior mapping
    # --classes SPEC -> sorted ids (generator/classes.py); refused for an unconditional GAN
    options["classes"] = parse_classes(options.get("classes"), num_classes(gan))
    # --mask labeler (generator/labelers): masks from a saliency model on G(z), no direction
    labeled = labeler_options(options, direction_file=direction_file, shift=shift)
    if not labeled:
        direction = resolve_direction(gan, direction_file)
        report_norm(direction, direction_file, direction_scale)
    embeddings = sha = None
    if latents != PRIOR:
        embeddings = load_embeddings(latents, gan.latent_dim)
        sha = hashlib.sha256(embeddings.tobytes()).hexdigest()
    alpha = recipes.resolve_alpha(chosen, embeddings is not None, alpha, latents_target)
    if alpha is not None:
        options["alpha"] = alpha
    if labeled:  # no G(z + r h) is rendered: no direction, shift 0
        fields = {**options, **labeled, "recipe": chosen.name, "overrides": tuple(overrides)}
        try:
            config = GeneratorConfig(
                shards=shards, gan=gan_name, weights=weights, direction=(), shift=0.0,
                latents=str(latents), latents_sha256=sha, **fields,
            )  # fmt: skip
        except ValueError as err:
            raise UsageError(str(err)) from err
        return config, embeddings
    shift = float(shift if shift is not None else (direction.shift or DEFAULT_SHIFT))
    if not math.isfinite(shift) or shift <= 0:
        # z + r h with r <= 0 moves away from the lighter object (section 3.1): masks empty
        raise UsageError(f"--shift must be a finite number > 0, got {shift}")
    operators = direction.operators.tolist() if direction.operators is not None else None
    # MASK_AUTO is the CLI's default, and the library's too
    options["mask"] = resolve_mask(options.get("mask", MASK_AUTO), operators is not None)
    vector = direction.vector
    if direction_scale == "raw" and direction.stored is not None:
        vector = direction.stored
    try:
        config = GeneratorConfig(
            shards=shards,
            gan=gan_name,
            weights=weights,
            direction=tuple(float(v) for v in vector),
            direction_scale=direction_scale,
            direction_norm=float(direction.norm),
            recipe=chosen.name,
            overrides=tuple(overrides),
            direction_file=str(direction_file) if direction_file else None,
            shift=shift,
            latents=str(latents),
            latents_sha256=sha,
            operators=operators,
            bright_operator=direction.bright_operator,
            **options,
        )
    except ValueError as err:
        raise UsageError(str(err)) from err
    return config, embeddings


def check_output(out: str) -> None:
    """Refuse an output that cannot be written or reached, without creating anything."""
    if storage.is_remote(out):
        _probe_remote(out)
        return
    path = storage.local_path(out)
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"output {path} is under a file ({probe}), not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"output {path} is not writable ({probe} is read-only)")
    try:  # the kernel's own answer (root passes os.access on /proc and /sys): a folder, removed
        os.rmdir(tempfile.mkdtemp(prefix=".gan-objseg-probe-", dir=probe))
    except OSError as err:
        raise UsageError(f"output {path} is not writable ({probe}: {err.strerror})") from err


def _probe_remote(out: str) -> None:
    """One quick listing of the bucket: fails fast (no long retry loop) on a bad endpoint,
    bad credentials or a missing bucket."""
    import fsspec

    opts = dict(storage.storage_options(out))
    if out.startswith(("s3://", "s3a://")):
        # a short probe: botocore/s3fs would otherwise retry a dead endpoint for ~20 s
        opts.update(
            skip_instance_cache=True,
            config_kwargs={
                "connect_timeout": 5,
                "read_timeout": 15,
                "retries": {"max_attempts": 1},
            },
        )
    try:
        fs, path = fsspec.core.url_to_fs(out, **opts)
        bucket = path.split("/", 1)[0]
        fs.ls(bucket)
    except FileNotFoundError as err:
        raise UsageError(f"bucket of {storage.redact(out)} does not exist") from err
    except Exception as err:  # any client/network/auth error: report it on one line
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UsageError(f"cannot reach {storage.redact(out)}: {msg}") from err


def missing(shards: int, finished) -> Iterator[int]:
    """The indices below `shards` not in `finished`, in order, one at a time (no list of
    every index is held: --shards may be in the millions)."""
    return (i for i in range(shards) if i not in finished)


def generate(
    config: GeneratorConfig,
    out: str,
    embeddings,
    settings: RaySettings,
    crash_marker: str | None = None,
    resume: bool = True,
) -> dict[int, dict]:
    """Open/resume the run and make every missing shard; -> all finished records.
    GenerationFailed (one line) when the store cannot be read or written past the deadline."""
    if not storage.is_remote(out):
        # actors may run in another working directory: give them an absolute path
        out = str(storage.local_path(out).absolute())
    check_output(out)
    check_settings(settings)
    try:
        finished = open_run(out, config, resume, settings.upload_deadline)
    except (UsageError, GenerationFailed):
        raise
    except Exception as err:  # any client or network error reading the run: one line
        raise GenerationFailed(
            f"cannot read the run at {storage.redact(out)}: {storage.first_line(err)}"
        ) from err
    total = config.shards - sum(1 for i in finished if i < config.shards)
    if finished:
        print(
            f"generator: resuming {storage.redact(out)}: {len(finished)} shard(s) already "
            f"finished, {total} to make"
        )
    if total:
        started = init_ray(settings)
        try:
            todo = missing(config.shards, finished)
            made = run_shards(config, out, todo, total, embeddings, settings, crash_marker)
            finished.update(made)
        finally:
            if started:
                import ray

                ray.shutdown()
    try:
        write_jsonl(out, finished, settings.upload_deadline)
    except OSError as err:  # StoreUnavailable past the deadline, or a local disk error
        raise GenerationFailed(
            f"every shard is made, but {schema.MANIFEST_JSONL} could not be written: "
            f"{storage.first_line(err)}; rerun the same command to write it"
        ) from err
    return finished


def summary(records: dict[int, dict]) -> str:
    samples = sum(r["count"] for r in records.values())
    drawn = sum(r["attempts"] for r in records.values())
    rej: dict[str, int] = {}
    for r in records.values():
        for name, n in r["rejected"].items():
            rej[name] = rej.get(name, 0) + n
    parts = ", ".join(f"{k} rejected {v}" for k, v in sorted(rej.items()))
    return (
        f"{len(records)} shards, {samples} samples from {drawn} draws "
        f"(acceptance {samples / max(drawn, 1):.1%}; {parts})"
    )
