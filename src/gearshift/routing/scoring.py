"""Model profiles for offline scoring, where models are given by name only (``--models a,b``).

Names the catalogue knows get its ability, prices, context window and capabilities. Names it does
not know are taken as listed from the lightest to the strongest, spread evenly over abilities
0.45..0.85, so ``--models weak,strong`` means what it says. Built without the configuration layer
or a price look-up: scoring needs abilities only, and ``gearshift score`` starts faster.
"""

from __future__ import annotations

from collections.abc import Sequence

from gearshift.catalogue import lookup
from gearshift.routing.profiles import ModelProfile

__all__ = ["profiles_for_names"]

LIGHTEST, STRONGEST = 0.45, 0.85
_PER_MTOK = 1e-6


def profiles_for_names(names: Sequence[str]) -> list[ModelProfile]:
    unknown = [n for n in names if lookup(n) is None]
    step = (STRONGEST - LIGHTEST) / (len(unknown) - 1) if len(unknown) > 1 else 0.0
    profiles = []
    for name in names:
        entry = lookup(name)
        if entry is None:
            pos = unknown.index(name)
            ability = LIGHTEST + pos * step if len(unknown) > 1 else 0.65
            profiles.append(
                ModelProfile(
                    name=name,
                    ability=round(ability, 4),
                    ability_source="position in the model list",
                    tier=2,
                    input_per_token=0.0,
                    output_per_token=0.0,
                    priced=False,
                    price_source="unknown",
                    context_window=None,
                    tools=True,
                    vision=False,
                    json_mode=True,
                )
            )
        else:
            profiles.append(
                ModelProfile(
                    name=name,
                    ability=entry.ability,
                    ability_source="catalogue",
                    tier=entry.tier,
                    input_per_token=entry.input_per_mtok * _PER_MTOK,
                    output_per_token=entry.output_per_mtok * _PER_MTOK,
                    priced=True,
                    price_source="catalogue",
                    context_window=entry.context_window,
                    tools=entry.tools,
                    vision=entry.vision,
                    json_mode=entry.json_mode,
                )
            )
    return profiles
