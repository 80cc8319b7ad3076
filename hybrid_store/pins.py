"""Facts about a registry fixed at its first use: its jurisdiction.

Parcel keys are committed, and a jurisdiction profile decides how they are spelled, so a registry
keeps the jurisdiction it started with. Starting landreg with another ``LANDREG_JURISDICTION`` on an
existing registry is refused, just as silently switching contracts is: the trust root and every
proof bundle name the jurisdiction, and an auditor must never be shown keys read by the wrong rules.
"""

from __future__ import annotations

import weakref

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hybrid_store.db.engine import Database
from hybrid_store.db.models import Municipality, Parcel, RegistryPin
from hybrid_store.errors import ConfigurationError
from hybrid_store.jurisdictions import Profile, get_profile

JURISDICTION = "jurisdiction"


#: a pin never changes once made (the table refuses updates), so each engine asks for it once
_PINNED: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()


def pinned_jurisdiction(session: Session) -> str | None:
    bind = session.get_bind()
    engine = bind.engine if isinstance(bind, Connection) else bind
    if (known := _PINNED.get(engine)) is not None:
        return known
    value = session.scalar(select(RegistryPin.value).where(RegistryPin.name == JURISDICTION))
    if value is not None:
        _PINNED[engine] = value
    return value


def registry_profile(session: Session) -> Profile:
    """The profile this registry is pinned to (``bergen`` for one not yet used)."""
    return get_profile(pinned_jurisdiction(session) or "bergen")


def pin_jurisdiction(db: Database, profile: Profile) -> None:
    """Pin ``profile`` as the registry's jurisdiction on first use (and give the parcel table its
    places); refuse a different one afterwards with ``ConfigurationError``."""
    with db.read() as s:
        pinned = pinned_jurisdiction(s)
    if pinned == profile.name:
        return
    if pinned is not None:
        raise ConfigurationError(
            f"this registry's jurisdiction is {pinned!r} (pinned at its first use), but LANDREG_JURISDICTION is "
            f"{profile.name!r}: parcel keys are committed, so a registry never changes jurisdiction. Unset "
            f"LANDREG_JURISDICTION or set it to {pinned!r}; a registry of another jurisdiction needs a database of its own"
        )
    try:
        with db.write() as s:
            _seed_places(s, profile)
            s.execute(insert(RegistryPin).values(name=JURISDICTION, value=profile.name))
    except IntegrityError:  # another process pinned it first: check what it pinned
        pin_jurisdiction(db, profile)


def _seed_places(s: Session, profile: Profile) -> None:
    """The parcel table's places are the profile's (Bergen's 70 municipalities come with the first
    migration; an empty registry of another jurisdiction trades them for its own)."""
    codes = profile.place_codes()
    have = set(s.scalars(select(Municipality.code)))
    if not s.scalar(select(func.count()).select_from(Parcel)):
        s.execute(delete(Municipality).where(Municipality.code.not_in(codes)))
    for place in profile.places():
        if place.code not in have:
            s.add(Municipality(code=place.code, county_code="", district_code="", name=place.name,
                               kind=place.kind or profile.place_label))  # fmt: skip
