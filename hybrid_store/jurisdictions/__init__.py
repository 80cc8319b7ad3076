"""Jurisdiction profiles: what a registry's parcels are, how they are named and checked, and the
input limits of its filings. The core knows only the committed form (a parcel is its key); a
profile decides the rest. Chosen per registry with ``LANDREG_JURISDICTION`` (default ``bergen``).
"""

from __future__ import annotations

from hybrid_store.errors import ConfigurationError
from hybrid_store.jurisdictions.base import Limits, PlaceInfo, Profile
from hybrid_store.jurisdictions.bergen import BERGEN
from hybrid_store.jurisdictions.nyc import NYC

PROFILES: dict[str, Profile] = {BERGEN.name: BERGEN, NYC.name: NYC}
DEFAULT = BERGEN.name


def get_profile(name: str = DEFAULT) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigurationError(
            f"unknown jurisdiction {name!r}: LANDREG_JURISDICTION is one of {', '.join(sorted(PROFILES))}"
        ) from None


__all__ = ["DEFAULT", "PROFILES", "Limits", "PlaceInfo", "Profile", "get_profile"]
