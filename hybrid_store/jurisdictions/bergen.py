"""Bergen County, New Jersey: parcels are tax-map lots of its 70 municipalities.

A parcel key is ``CCDD_BLOCK_LOT[_QUAL]`` (e.g. ``0223_100.01_5_C0001``): the NJ municipality code
(county + district), the block and lot as the tax map writes them, and the qualifier of a
condominium unit. Keys are committed: this encoding never changes, or existing proofs would break.
The municipalities ship with the package (``hybrid_store/data/municipalities.csv``, from the NJ
municipality code list).
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from functools import cache
from importlib.resources import files
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from hybrid_store.core.records import DocType
from hybrid_store.jurisdictions.base import PlaceInfo, Profile

MUNICIPALITY_CODE_RE = re.compile(r"[0-9]{4}")
BLOCK_LOT_RE = re.compile(r"([0-9]{1,6})(?:\.([0-9A-Z]{1,4}))?")
QUALIFIER_RE = re.compile(r"[0-9A-Z]{1,10}")
PARCEL_KEY_RE = re.compile(r"[0-9]{4}_[0-9A-Z.]{1,12}_[0-9A-Z.]{1,12}(_[0-9A-Z]{1,10})?")


def _pattern(regex: re.Pattern[str], rule: str, message: str):
    def check(value: str) -> str:
        if not regex.fullmatch(value):
            raise PydanticCustomError(rule, message)
        return value

    return check


def _block_lot(value: str) -> str:
    m = BLOCK_LOT_RE.fullmatch(value.strip().upper())
    if not m or int(m.group(1)) == 0:
        raise PydanticCustomError(
            "block_lot_format", "must be a tax-map number such as 100 or 100.01 (a positive whole part)"
        )
    whole = str(int(m.group(1)))  # tax maps strip leading zeros: 0100 is block 100
    return f"{whole}.{m.group(2)}" if m.group(2) else whole


BlockOrLot = Annotated[str, Field(min_length=1, max_length=12), AfterValidator(_block_lot)]


class ParcelRef(BaseModel):
    """A tax-map parcel: NJ municipality code + block + lot (+ qualifier for condominium units)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    municipality_code: Annotated[
        str,
        Field(min_length=4, max_length=4, examples=["0223"]),
        AfterValidator(_pattern(MUNICIPALITY_CODE_RE, "municipality_code_format", "must be 4 digits, e.g. 0223")),
    ]
    block: BlockOrLot = Field(examples=["100.01"])
    lot: BlockOrLot = Field(examples=["5"])
    qualifier: Annotated[str, Field(max_length=10, examples=["C0001"])] = ""

    @field_validator("municipality_code")
    @classmethod
    def _known_municipality(cls, value: str, info: ValidationInfo) -> str:
        known = (info.context or {}).get("places")
        if known is not None and value not in known:
            raise PydanticCustomError(
                "unknown_municipality", "{code} is not a municipality code of this registry", {"code": value}
            )
        return value

    @field_validator("qualifier")
    @classmethod
    def _qualifier(cls, value: str) -> str:
        value = value.strip().upper()
        if value and not QUALIFIER_RE.fullmatch(value):
            raise PydanticCustomError("qualifier_format", "must be letters and digits, e.g. C0001")
        return value

    @property
    def key(self) -> str:
        return parcel_key(self.municipality_code, self.block, self.lot, self.qualifier)

    def columns(self) -> dict[str, str]:
        return {"municipality_code": self.municipality_code, "block": self.block, "lot": self.lot,
                "qualifier": self.qualifier}  # fmt: skip


def parcel_key(municipality_code: str, block: str, lot: str, qualifier: str = "") -> str:
    """``CCDD_BLOCK_LOT[_QUAL]``, the NJ convention (e.g. ``0223_100.01_5_C0001``)."""
    key = f"{municipality_code}_{block}_{lot}"
    return f"{key}_{qualifier}" if qualifier else key


@cache
def municipalities() -> tuple[PlaceInfo, ...]:
    """Bergen County's 70 municipalities (code = county + district)."""
    text = files("hybrid_store").joinpath("data/municipalities.csv").read_text(encoding="utf-8")
    return tuple(PlaceInfo(code=row["nj_muni_code"], name=row["official_name"], kind=row["municipality_type"])
                 for row in csv.DictReader(io.StringIO(text)))  # fmt: skip


class Bergen(Profile):
    name = "bergen"
    title = "Bergen County, New Jersey"
    place_label = "municipality"
    parcel_key_pattern = PARCEL_KEY_RE
    parcel_key_format = "CCDD_BLOCK_LOT[_QUAL], e.g. 0223_100.01_5_C0001"
    earliest_recording = datetime(1683, 1, 1, tzinfo=UTC)  # Bergen County was formed in 1683
    doc_types = frozenset(DocType) - {DocType.OTHER}  # the county clerk's land-record types

    @property
    def parcel_model(self) -> type[BaseModel]:
        return ParcelRef

    def places(self) -> tuple[PlaceInfo, ...]:
        return municipalities()

    def form_fields(self, place: str, block: str, lot: str, qualifier: str) -> dict[str, str]:
        return {"municipality_code": place, "block": block, "lot": lot, "qualifier": qualifier}

    def key_columns(self, key: str) -> dict[str, Any]:
        parts = key.split("_")
        return {"municipality_code": parts[0], "block": parts[1], "lot": parts[2],
                "qualifier": parts[3] if len(parts) == 4 else ""}  # fmt: skip


BERGEN = Bergen()
