"""Model profiles for offline scoring, where models are given by name only (``--models a,b``).

Names the catalogue knows get its ability and prices. Names it does not know are taken as listed
from the lightest to the strongest, spread evenly over abilities 0.45..0.85, so
``--models weak,strong`` means what it says.
"""

from __future__ import annotations

from collections.abc import Sequence

from gearshift.catalogue import lookup
from gearshift.config import ModelConfig
from gearshift.routing.profiles import ModelProfile, build_profiles

__all__ = ["profiles_for_names"]

LIGHTEST, STRONGEST = 0.45, 0.85


def profiles_for_names(names: Sequence[str]) -> list[ModelProfile]:
    unknown = [n for n in names if lookup(n) is None]
    configs = []
    for n in names:
        if n in unknown:
            pos = unknown.index(n)
            step = (STRONGEST - LIGHTEST) / (len(unknown) - 1) if len(unknown) > 1 else 0.0
            ability = LIGHTEST + pos * step if len(unknown) > 1 else 0.65
            configs.append(ModelConfig(name=n, ability=round(ability, 4)))
        else:
            configs.append(ModelConfig(name=n))
    return build_profiles(configs)
