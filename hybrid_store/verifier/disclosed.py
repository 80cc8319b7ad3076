"""What a verified bundle says of its record: each field it verified, with its value in words a
reader takes at a glance (amounts with their unit), and each field it withheld.

A disclosed field is *verified* only in the sense the commitment gives: its salt and value hash to
a field hash the record's commitment covers (``verify_offline`` checked that before this is read).
A redacted field is given as its salted hash alone: the bundle proves a value was committed, and
says nothing of what it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hybrid_store.core import bundle as bundles
from hybrid_store.core.commitment import fields_of

#: the committed amounts and their unit: every registry landreg serves records them in US cents
AMOUNT_FIELDS = {"consideration": "US dollars"}


@dataclass(frozen=True)
class Field:
    name: str
    value: Any  # as committed (JSON domain)
    shown: str  # the value in words: "$612,500.00 (US dollars)"
    unit: str | None = None


@dataclass(frozen=True)
class Disclosed:
    verified: tuple[Field, ...]  # disclosed, and matching the commitment
    withheld: tuple[str, ...]  # redacted: given as salted hashes only, in the scheme's order

    def to_json(self) -> dict[str, Any]:
        return {
            "verified": [
                {"name": f.name, "value": f.value, "shown": f.shown, **({"unit": f.unit} if f.unit else {})}
                for f in self.verified
            ],  # fmt: skip
            "withheld": list(self.withheld),
        }

    def describe(self) -> str:
        """One line: how many fields were verified, and which were withheld."""
        if not self.withheld:
            return f"all {len(self.verified)} fields disclosed and verified"
        return (
            f"{len(self.verified)} fields verified; withheld (given as salted hashes only): {', '.join(self.withheld)}"
        )


def money(cents: int) -> str:
    return f"${cents // 100:,}.{cents % 100:02d}"


def shown(name: str, value: Any) -> str:
    """A committed value as a reader takes it: amounts in dollars with their unit, lists joined."""
    if value is None:
        return "(none)"
    unit = AMOUNT_FIELDS.get(name)
    if unit is not None and isinstance(value, int) and not isinstance(value, bool):
        return f"{money(value)} ({unit})"
    if isinstance(value, list):
        return "; ".join(_item(v) for v in value) or "(none)"
    return str(value)


def _item(value: Any) -> str:
    if isinstance(value, list):  # a history link or a cross-reference: its parts, the empty ones left out
        return "(" + ", ".join(str(v) for v in value if v is not None) + ")"
    return str(value)


def disclosed_fields(bundle: bundles.ProofBundle) -> Disclosed:
    """The bundle's verified and withheld fields, in the order its scheme lists them."""
    names = fields_of(bundle.disclosure.scheme)
    opened, redacted = bundle.disclosure.opened, bundle.disclosure.redacted
    verified = tuple(
        Field(name, opened[name][1], shown(name, opened[name][1]), AMOUNT_FIELDS.get(name))
        for name in names
        if name in opened
    )
    return Disclosed(verified, tuple(name for name in names if name in redacted))
