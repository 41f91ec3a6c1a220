"""The experiment's report (`toyworld.experiment`, step 6): OUT/metrics.json and OUT/report.md.

    python -m toyworld.report OUT

Reads every finished eval report under OUT/eval/<set>/metrics.json (written by
`python -m eval saliency`) and writes, per set, the headline metrics, and what made the shards
(OUT/shards/config.json: latents, alpha, mask rule, mask-size lower bound, counts; no paths).
When the experiment self-trained (OUT/unet_self), the sets scored with the self-trained U-Net
(<set>_self_trained) are rows of their own beside the synthetic U-Net's, and the report states
the self-training settings (OUT/unet_self/config.json; no paths).
Light: no torch import.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from segcore import __version__, schema, storage
from segcore.cli import UsageError, run_cli

HEADLINE = ("max_fbeta", "iou", "accuracy", "mae", "n_images")
NOTE = (
    "The embedded GAN was trained on a procedural world of simple shapes (32x32). Its scores on "
    "the held-out world scenes, measured against their true masks, are the meaningful test of "
    "the pipeline. A GAN of toy shapes is not expected to segment real horses: the Weizmann "
    "horse numbers are shown for honesty, not as a result; the paper's numbers need BigBiGAN "
    "(`--gan bigbigan`)."
)


def generator_settings(out: Path) -> dict:
    """What made the shards (OUT/shards/config.json): latents (prior, or embeddings with their
    alpha), mask rule, the mask-size filter's lower bound, counts. Paths are left out (they
    may name a bucket)."""
    path = out / "shards" / schema.RUN_CONFIG
    if not path.exists():
        return {}
    try:
        c = json.loads(path.read_text())["config"]
    except (ValueError, KeyError, TypeError) as e:
        raise UsageError(f"{path}: not a generator config.json ({e!r})") from e
    prior = c.get("latents", "prior") == "prior"
    return {
        "gan": c.get("gan"),
        "latents": "prior N(0, I)" if prior else "encoder embeddings",
        "alpha": None if prior else c.get("alpha"),
        "mask": c.get("mask"),
        "min_fraction": c.get("min_fraction", 0.0),  # absent: the generator ran without a bound
        "shards": c.get("shards"),
        "samples_per_shard": c.get("samples_per_shard"),
    }


def self_training_settings(out: Path) -> dict:
    """The self-training options of OUT/unet_self/config.json (no paths), or {}."""
    path = out / "unet_self" / "config.json"
    if not path.exists():
        return {}
    try:
        c = json.loads(path.read_text())["config"]
        keys = ("adapt_rounds", "adapt_steps", "adapt_margin", "adapt_keep", "adapt_mix")
        found = {k.removeprefix("adapt_"): c[k] for k in keys}
        # options a trainer of before them did not record: it ran without them
        for key, before in (("adapt_refine", "none"), ("adapt_jitter", 0.0),
                            ("adapt_schedule", "constant")):  # fmt: skip
            found[key.removeprefix("adapt_")] = c.get(key, before)
    except (ValueError, KeyError, TypeError) as e:
        raise UsageError(f"{path}: not a self-trained trainer config.json ({e!r})") from e
    found["synthetic_steps"] = c.get("steps")
    return found


def assemble(out: Path) -> dict:
    sets = {}
    for path in sorted((out / "eval").glob("*/metrics.json")):
        doc = json.loads(path.read_text())
        sets[path.parent.name] = {k: doc[k] for k in HEADLINE if k in doc}
        sets[path.parent.name]["name"] = doc.get("name", path.parent.name)
    if not sets:
        raise UsageError(f"no finished evaluation under {out / 'eval'} (*/metrics.json)")
    result = {"version": __version__, "sets": sets, "note": NOTE}
    result.update({k: v for k, v in sets.items()})  # per set at the top level too
    manifest = out / "shards" / schema.MANIFEST_JSONL
    if manifest.exists():
        result["generator_manifest"] = str(manifest.relative_to(out))  # no absolute paths
    gen = generator_settings(out)
    if gen:
        result["generator"] = gen
    adapted = self_training_settings(out)
    if adapted:
        result["self_training"] = adapted
    storage.write_bytes_atomic(
        str(out / "metrics.json"), (json.dumps(result, indent=2) + "\n").encode()
    )

    lines = ["# Demo report: embedded toy-world GAN -> masks -> U-Net", "", NOTE, ""]
    if gen:
        lines += [
            "Synthetic data: "
            + ", ".join(f"{k} {v}" for k, v in gen.items() if v is not None)
            + ".",
            "",
        ]
    if adapted:
        lines += [
            "Self-trained rows: the same U-Net continued after its "
            f"{adapted['synthetic_steps']} synthetic steps for {adapted['rounds']} rounds x "
            f"{adapted['steps']} steps on unlabelled images it labelled itself (margin "
            f"{adapted['margin']}, keep {adapted['keep']}, mix {adapted['mix']}, label "
            f"refinement {adapted['refine']}, jitter {adapted['jitter']}, lr "
            f"{adapted['schedule']} within each round; docs/self-training.md). No label of "
            "those images was read.",
            "",
        ]
    lines += ["| set | images | max F-beta | IoU | accuracy |", "|---|---|---|---|---|"]
    for _key, m in sets.items():
        lines.append(
            f"| {m['name']} | {m.get('n_images')} | {m.get('max_fbeta', float('nan')):.3f} | "
            f"{m.get('iou', float('nan')):.3f} | {m.get('accuracy', float('nan')):.3f} |"
        )
    lines += ["", "Per-set reports (curves.png, grid.png of best/worst images, summary.md):", ""]
    lines += [f"- `eval/{key}/`" for key in sets]
    storage.write_bytes_atomic(str(out / "report.md"), ("\n".join(lines) + "\n").encode())
    return result


def summary_lines(result: dict) -> list[str]:
    """One line per evaluated set: max F-beta, IoU, accuracy, images."""
    nan = float("nan")
    return [
        f"{key}: maxFbeta {m.get('max_fbeta', nan):.3f}  IoU {m.get('iou', nan):.3f}  "
        f"accuracy {m.get('accuracy', nan):.3f}  ({m.get('n_images')} images)"
        for key, m in result["sets"].items()
    ]


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) != 1:
        raise UsageError("usage: python -m toyworld.report OUT")
    for line in summary_lines(assemble(Path(args[0]))):
        print(line)
    return 0


if __name__ == "__main__":
    run_cli(main, "python -m toyworld.report")
