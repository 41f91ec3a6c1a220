"""From a scored direction to the direction file the generator reads (PAPER.md section 2).

The generator's mask rule is "lighter": M = gray(G(z + r v)) > gray(G(z)). So the saved
vector v must be signed so that the OBJECT brightens:
  1. on +h, find the object class of eq. 7 (`score.object_class`: the class that avoids the
     image border, else the minority) and compare the mean gray change each operator makes
     on its own pixels;
  2. if the object's operator brightens less than the background's, use -h (sign -1);
  3. refit the operators on the signed vector, so that `operators` map G(z) to G(z + r v)
     exactly as the generator's affine-mask variant applies them, and `bright_operator` is
     the object's operator.
"""

from __future__ import annotations

import torch

from generator.direction_file import save_direction
from generator.directions.operators import AffinePair
from generator.directions.score import DirectionScorer


def _brightens_more(stats: dict) -> bool:
    obj = stats["object_class"]
    change = stats["gray_change"]
    if change[obj] is None:
        return False
    other = change[1 - obj]
    return change[obj] > (other if other is not None else 0.0)


def choose_sign(
    scorer: DirectionScorer, h: torch.Tensor, plus: tuple[AffinePair, dict] | None = None
) -> dict:
    """Decide the sign of h and refit; returns the facts the direction file records."""
    pair, stats = plus if plus is not None else scorer.score(h)
    sign = 1 if _brightens_more(stats) else -1
    if sign == -1:
        pair, stats = scorer.score(-h)
    obj = stats["object_class"]
    return {
        "vector": (sign * h).detach().cpu() + 0.0,  # + 0.0: no "-0.0" in the file
        "sign": sign,
        "pair": pair,
        "bright_operator": obj,
        "object_brightens": bool(
            stats["gray_change"][obj] is not None and stats["gray_change"][obj] > 0
        ),
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
    backend, directions: torch.Tensor, ranking: list[dict], scorer: DirectionScorer
) -> dict:
    """The best kept direction of `ranking` with its sign decided (see module docstring)."""
    best = ranking[0]
    if not best["kept"]:
        from segcore.cli import UsageError

        raise UsageError(
            "no direction passed the area filter (every one put >= 99% of pixels in one class)"
        )
    k = best["direction"]
    h = directions[k]
    pair = AffinePair.from_matrices(best["operators"]).to(backend.device)
    choice = choose_sign(scorer, h, plus=(pair, best))
    choice["index"] = k
    choice["ranking_entry"] = best
    return choice
