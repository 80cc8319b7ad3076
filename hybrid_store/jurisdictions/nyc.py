"""New York City: parcels are tax lots of its five boroughs, named by borough, block and lot (BBL).

A parcel key is ``B-BBBBB-LLLL`` (e.g. ``1-00123-0045``): the borough code (1 Manhattan, 2 Bronx,
3 Brooklyn, 4 Queens, 5 Staten Island), the tax block zero-padded to five digits and the tax lot to
four, which is the city's own ten-digit BBL with dashes between its parts. A condominium unit is a
lot of its own (units are numbered from 1001), so it is a parcel of its own; so are billing lots
(7501 and up). Keys are committed: this encoding never changes, or existing proofs would break.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from hybrid_store.jurisdictions.base import PlaceInfo, Profile
from hybrid_store.jurisdictions.names import US_NAMES

BOROUGHS = (
    PlaceInfo("1", "Manhattan", "borough"),
    PlaceInfo("2", "Bronx", "borough"),
    PlaceInfo("3", "Brooklyn", "borough"),
    PlaceInfo("4", "Queens", "borough"),
    PlaceInfo("5", "Staten Island", "borough"),
)
PARCEL_KEY_RE = re.compile(r"[1-5]-[0-9]{5}-[0-9]{4}")
MAX_BLOCK, MAX_LOT = 99_999, 9_999


def _number(limit: int, rule: str, what: str):
    def check(value: str) -> str:
        text = value.strip()
        if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= limit:
            raise PydanticCustomError(rule, "must be a tax {what} number from 1 to {limit}", {"what": what,
                                                                                              "limit": limit})  # fmt: skip
        return str(int(text))  # leading zeros are the key's business, not the parcel's

    return check


class TaxLot(BaseModel):
    """A New York City tax lot: borough, block, lot (a condominium unit is a lot of its own)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    borough: Annotated[str, Field(min_length=1, max_length=1, examples=["1"])]
    block: Annotated[str, Field(min_length=1, max_length=6, examples=["123"]),
                     AfterValidator(_number(MAX_BLOCK, "block_format", "block"))]  # fmt: skip
    lot: Annotated[str, Field(min_length=1, max_length=5, examples=["45"]),
                   AfterValidator(_number(MAX_LOT, "lot_format", "lot"))]  # fmt: skip

    @field_validator("borough")
    @classmethod
    def _borough(cls, value: str, info: ValidationInfo) -> str:
        value = value.strip()
        known = (info.context or {}).get("places") or {b.code for b in BOROUGHS}
        if value not in known:
            raise PydanticCustomError(
                "unknown_borough", "{code} is not a borough of New York City (1 to 5)", {"code": value}
            )
        return value

    @property
    def key(self) -> str:
        return parcel_key(self.borough, self.block, self.lot)

    def columns(self) -> dict[str, str]:
        # the parcel table's place column holds the borough; block and lot as the key spells them
        return {"municipality_code": self.borough, "block": f"{int(self.block):05d}", "lot": f"{int(self.lot):04d}",
                "qualifier": ""}  # fmt: skip


def parcel_key(borough: str, block: str | int, lot: str | int) -> str:
    """``B-BBBBB-LLLL`` (e.g. ``1-00123-0045``): the BBL with dashes."""
    return f"{borough}-{int(block):05d}-{int(lot):04d}"


class NewYorkCity(Profile):
    name = "nyc"
    title = "the City of New York"
    place_label = "borough"
    name_rules = US_NAMES  # JR, SR, II, III, IV: a suffix names another person
    parcel_key_pattern = PARCEL_KEY_RE
    parcel_key_format = "B-BBBBB-LLLL (borough, block, lot: the BBL), e.g. 1-00123-0045"
    earliest_recording = datetime(1654, 1, 1, tzinfo=UTC)  # New Amsterdam's first conveyances

    @property
    def parcel_model(self) -> type[BaseModel]:
        return TaxLot

    def places(self) -> tuple[PlaceInfo, ...]:
        return BOROUGHS

    def form_fields(self, place: str, block: str, lot: str, qualifier: str) -> dict[str, str]:
        return {"borough": place, "block": block, "lot": lot}  # a unit is a lot of its own: no qualifier

    def parcel_words(self, words: list[str]) -> list[str]:
        # the BBL as the Department of Finance writes it: ten digits (1 borough, 5 block, 4 lot)
        if len(words) == 1 and len(words[0]) == 10 and words[0].isascii() and words[0].isdigit():
            return [words[0][0], words[0][1:6], words[0][6:]]
        return words

    def key_columns(self, key: str) -> dict[str, Any]:
        borough, block, lot = key.split("-")
        return {"borough": borough, "block": block, "lot": lot}


NYC = NewYorkCity()
