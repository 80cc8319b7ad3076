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
from datetime import UTC, date, datetime
from functools import cache
from importlib.resources import files
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from hybrid_store.core.records import DocType, ReferenceKind
from hybrid_store.jurisdictions.base import Attestation, GroundRule, PlaceInfo, Profile
from hybrid_store.jurisdictions.calendar import nj_legal_holidays
from hybrid_store.jurisdictions.names import US_NAMES

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


#: the deeds N.J.S.A. 46:26A-3 speaks of (a conveyance by deed; a court order is not a deed)
DEEDS = frozenset({DocType.DEED, DocType.MASTER_DEED, DocType.SHERIFFS_DEED, DocType.EXECUTORS_DEED,
                   DocType.ADMINISTRATORS_DEED, DocType.TAX_SALE_DEED})  # fmt: skip
MORTGAGE_ACTS = frozenset({DocType.ASSIGNMENT, DocType.SATISFACTION, DocType.RELEASE, DocType.SUBORDINATION})

#: what a clerk attests of the paper (N.J.S.A. 46:26A-3 prerequisites landreg cannot read off an
#: image; fees: 46:26A-6 lets a recorder refuse a document whose fees were not paid)
ATTESTATIONS = (
    Attestation("in_english", "The document is in English, or an English translation is attached.",
                "N.J.S.A. 46:26A-3"),
    Attestation("signed", "The document is signed.", "N.J.S.A. 46:26A-3"),
    Attestation("acknowledged", "The document is acknowledged or proved.", "N.J.S.A. 46:26A-3"),
    Attestation("names_printed", "The names of the signers, witnesses and officers are typed or printed beneath "
                "their signatures.", "N.J.S.A. 46:26A-3"),
    Attestation("fees_tendered", "The recording fees (and any realty transfer fee) were tendered.",
                "N.J.S.A. 46:26A-6"),
)  # fmt: skip


def _attested(a: Attestation, words: str) -> GroundRule:
    return GroundRule(f"not_{a.code}", a.statute, words, attestation=a.code)


#: the only grounds a Bergen recorder may refuse for (N.J.S.A. 46:26A-6: failure of form or of the
#: prerequisites of 46:26A-3, or fees not paid). Parcels are required of every filing by the schema
#: itself, so "block and lot, or why there is none" never reaches examination.
GROUNDS = (
    _attested(ATTESTATIONS[0], "the document is not in English and has no English translation attached: attach "
              "one"),
    _attested(ATTESTATIONS[1], "the document is not signed: return it to the filer for signature"),
    _attested(ATTESTATIONS[2], "the document is not acknowledged or proved: it needs a notary's or officer's "
              "acknowledgment"),
    _attested(ATTESTATIONS[3], "the names of the signers, witnesses and officers are not typed or printed beneath "
              "their signatures"),
    _attested(ATTESTATIONS[4], "the recording fees were not tendered: collect them before recording"),
    GroundRule("no_preparer", "N.J.S.A. 46:26A-3", "a deed must name the person who prepared it: enter the "
               "preparer", DEEDS, field="preparer"),
    # N.J.S.A. 46:15-6: a deed is recorded only with the realty transfer fee paid, or with the
    # exemption it is under stated; without either, the fee cannot be worked out
    GroundRule("no_consideration_or_exemption", "N.J.S.A. 46:15-6", "a deed must state its consideration, or the "
               "exemption from the realty transfer fee the grantor claims (N.J.S.A. 46:15-10 or 46:15-10.1): enter "
               "one", DEEDS, any_field=("consideration", "exemption_claimed")),
    GroundRule("no_grantee_address", "N.J.S.A. 46:26A-3", "a deed must give the grantee's mailing address: enter "
               "it", DEEDS, field="grantee_mailing_address"),
    *(GroundRule(code, "N.J.S.A. 46:26A-3", words, frozenset(t for t, k in Profile.cites.items() if k == kind),
                 cites=kind) for kind, (code, words) in {
        ReferenceKind.ACTS_ON_MORTGAGE: ("no_mortgage_cited", "an assignment, satisfaction, release or subordination "
                                         "must identify the mortgage it acts on: cite it by instrument number, or by "
                                         "book and page"),
        ReferenceKind.DISCHARGES_LIEN: ("no_lien_cited", "a discharge must identify the lien it discharges: cite it "
                                        "by instrument number, or by book and page"),
        ReferenceKind.CORRECTS: ("no_corrected_cited", "a correction must identify the instrument it corrects: cite "
                                 "it by instrument number, or by book and page"),
    }.items()),  # the types that must cite (Profile.cites), one rule per kind of reference
)  # fmt: skip


class Bergen(Profile):
    name = "bergen"
    title = "Bergen County, New Jersey"
    place_label = "municipality"
    name_rules = US_NAMES  # JR, SR, II, III, IV: a suffix names another person
    parcel_key_pattern = PARCEL_KEY_RE
    parcel_key_format = "CCDD_BLOCK_LOT[_QUAL], e.g. 0223_100.01_5_C0001"
    earliest_recording = datetime(1683, 1, 1, tzinfo=UTC)  # Bergen County was formed in 1683
    doc_types = frozenset(DocType) - {DocType.OTHER}  # the county clerk's land-record types
    attestations = ATTESTATIONS
    grounds = GROUNDS
    record_within, reject_within = 2, 3  # business days (N.J.S.A. 46:26A-6)
    timezone = "America/New_York"

    def holidays(self, year: int) -> frozenset[date]:
        return nj_legal_holidays(year)

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
