"""From a scored direction to the direction file the generator reads.

The generator's mask rule is "lighter": M = gray(G(z + r v)) > gray(G(z)). So the saved
vector v must be signed so that the OBJECT brightens:
  1. on +h, find the object class of eq. 7 (`score.object_class`: the class that avoids the
     image border, else the minority) and compare the mean gray change each operator makes
     on its own pixels;
  2. if the object's operator does not brighten more than the background's, refit the
     operators on -h and use -h (sign -1) if it does better there;
  3. the operators saved are those fitted on the signed vector, so they map G(z) to
     G(z + r v) exactly as the generator's affine-mask variant applies them, and
     `bright_operator` is the object's operator. `object_brightens` is false (and a warning
     is printed) when neither sign makes the object lighter.
"""

from __future__ import annotations

import sys

import torch

from generator.direction_file import save_direction
from generator.directions.operators import AffinePair
from generator.directions.score import DirectionScorer
from segcore.cli import UsageError


def brightness_margin(stats: dict) -> float:
    """Mean gray change of the object's operator minus the background's (on their pixels)."""
    obj = stats["object_class"]
    change = stats["gray_change"]
    if change[obj] is None:
        return float("-inf")
    other = change[1 - obj]
    return change[obj] - (other if other is not None else 0.0)


def choose_sign(
    scorer: DirectionScorer, h: torch.Tensor, plus: tuple[AffinePair, dict] | None = None
) -> dict:
    """Decide the sign of h (module docstring) and return the facts the direction file records.

    +h is kept when its object operator brightens more than the background operator;
    otherwise -h is fitted, and kept if it does better (the mask of -h is refitted, not
    assumed to be the mirror of +h's).
    """
    pair, stats = plus if plus is not None else scorer.score(h)
    sign = 1
    if brightness_margin(stats) <= 0:
        pair_m, stats_m = scorer.score(-h)
        if brightness_margin(stats_m) > brightness_margin(stats):
            sign, pair, stats = -1, pair_m, stats_m
    obj = stats["object_class"]
    brightens = brightness_margin(stats) > 0 and (stats["gray_change"][obj] or 0.0) > 0
    if not brightens:
        print(
            "warning: on neither sign does the object class get lighter than the background; "
            "this direction is a poor fit for the 'lighter' mask rule",
            file=sys.stderr,
        )
    return {
        "vector": (sign * h).detach().cpu() + 0.0,  # + 0.0: no "-0.0" in the file
        "sign": sign,
        "pair": pair,
        "bright_operator": obj,
        "object_brightens": bool(brightens),
        "stats": stats,
    }


def write_direction_file(
    url: str,
    choice: dict,
    *,
    gan: str,
    shift: float,
    index: int,
    **info,
) -> None:
    stats = {k: v for k, v in choice["stats"].items() if not k.startswith("_")}
    save_direction(
        url,
        choice["vector"].numpy(),
        gan=gan,
        shift=shift,
        index=index,
        sign=choice["sign"],
        operators=choice["pair"].matrices().numpy(),
        bright_operator=choice["bright_operator"],
        object_brightens=choice["object_brightens"],
        signed_direction_stats=stats,
        **info,
    )


def pick_direction(
    backend,
    directions: torch.Tensor,
    ranking: list[dict],
    scorer: DirectionScorer,
    index: int | None = None,
) -> dict:
    """The best kept direction of `ranking` (or direction `index`, a person's override after
    looking at the sheets) with its sign decided (see module docstring)."""
    if index is None:
        entry = ranking[0]
        if not entry["kept"]:
            raise UsageError(
                "no direction passed the area filter (every one put >= 99% of pixels in one class)"
            )
    else:
        found = [e for e in ranking if e["direction"] == index]
        if not found:
            raise UsageError(f"direction {index} is not among the {len(ranking)} scored")
        entry = found[0]
        if not entry["kept"]:
            print(f"warning: direction {index} was not kept by the ranking rules", file=sys.stderr)
    k = entry["direction"]
    pair = AffinePair.from_matrices(entry["operators"]).to(backend.device)
    choice = choose_sign(scorer, directions[k], plus=(pair, entry))
    choice["index"] = k
    choice["ranking_entry"] = entry
    return choice
