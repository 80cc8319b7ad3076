"""Instruments as filed (``InstrumentInput``) and as committed (``InstrumentRecord``).

Validation lives here, with its limits as named constants, so the API, the web desk, the bulk
importers and the demo reject the same things with the same words. Contextual rules that need the
outside world (the list of municipalities, the current time) take it as an argument.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from hybrid_store.errors import FieldError, InvalidInstrument

# --- limits ---------------------------------------------------------------------------------------
MAX_NAME_LENGTH = 200  # longest party name; NJ SR1A allows 35, e-recording payloads more
MAX_PARTIES = 50  # per side (grantors or grantees); estates and associations run long
MAX_PARCELS = 500  # a condominium master deed can cover hundreds of units
MAX_LEGAL_DESCRIPTION = 20_000  # characters; metes-and-bounds descriptions run to a few pages
MAX_CONSIDERATION = Decimal("99999999999.99")  # under $100 billion, fits a signed 64-bit cents column
EARLIEST_RECORDING = datetime(1683, 1, 1, tzinfo=UTC)  # Bergen County was formed in 1683
FUTURE_TOLERANCE = timedelta(minutes=5)  # clock skew allowed between a workstation and the server
INSTRUMENT_NUMBER_RE = re.compile(r"[0-9A-Z][0-9A-Z-]{0,23}")
BOOK_PAGE_RE = re.compile(r"[0-9]{1,6}")
MUNICIPALITY_CODE_RE = re.compile(r"[0-9]{4}")
BLOCK_LOT_RE = re.compile(r"([0-9]{1,6})(?:\.([0-9A-Z]{1,4}))?")
QUALIFIER_RE = re.compile(r"[0-9A-Z]{1,10}")
SHA256_HEX_RE = re.compile(r"[0-9a-f]{64}")


class DocType(enum.StrEnum):
    """Recorded instrument types of a New Jersey county clerk's land records."""

    DEED = "DEED"
    MASTER_DEED = "MASTER_DEED"  # condominium master deed
    MORTGAGE = "MORTGAGE"
    ASSIGNMENT = "ASSIGNMENT"  # assignment of mortgage
    SATISFACTION = "SATISFACTION"  # satisfaction / discharge of mortgage
    RELEASE = "RELEASE"  # release of part of the mortgaged premises
    SUBORDINATION = "SUBORDINATION"
    LIEN = "LIEN"  # construction, tax or judgment lien
    DISCHARGE_OF_LIEN = "DISCHARGE_OF_LIEN"
    LIS_PENDENS = "LIS_PENDENS"
    EASEMENT = "EASEMENT"
    CORRECTION = "CORRECTION"  # corrective instrument re-recorded to fix an earlier one
    POWER_OF_ATTORNEY = "POWER_OF_ATTORNEY"


#: instruments that convey title: their grantees become the owners of record
CONVEYANCES = frozenset({DocType.DEED, DocType.MASTER_DEED})


# --- text rules -------------------------------------------------------------------------------------
def _check_unicode(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PydanticCustomError(
            "invalid_unicode", "contains invalid Unicode (a lone surrogate at position {pos})", {"pos": exc.start}
        ) from None
    if "\ufffd" in text:
        raise PydanticCustomError(
            "replacement_character",
            "contains U+FFFD, the mark of text decoded with the wrong encoding; re-key it from the document",
        )
    return unicodedata.normalize("NFC", text)


def _single_line(text: str) -> str:
    text = " ".join(_check_unicode(text).split())
    if not text:
        raise PydanticCustomError("blank", "must not be blank")
    if any(unicodedata.category(ch) == "Cc" for ch in text):
        raise PydanticCustomError("control_character", "contains a control character")
    return text


def _multi_line(text: str) -> str:
    text = _check_unicode(text).replace("\r\n", "\n").replace("\r", "\n")
    lines = [line.rstrip() for line in text.split("\n")]
    text = "\n".join(lines).strip("\n")
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\t" for ch in text):
        raise PydanticCustomError("control_character", "contains a control character")
    return text


def _pattern(regex: re.Pattern[str], rule: str, message: str) -> Callable[[str], str]:
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


Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH), AfterValidator(_single_line)]
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
        known = (info.context or {}).get("municipalities")
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


def parcel_key(municipality_code: str, block: str, lot: str, qualifier: str = "") -> str:
    """``CCDD_BLOCK_LOT[_QUAL]``, the NJ convention (e.g. ``0223_100.01_5_C0001``)."""
    key = f"{municipality_code}_{block}_{lot}"
    return f"{key}_{qualifier}" if qualifier else key


def name_key(name: str) -> str:
    """How two spellings of one party's name compare: case, accents and punctuation ignored
    ("José García, Jr." and "JOSE GARCIA JR" are one name); suffixes still tell people apart."""
    letters = "".join(ch for ch in unicodedata.normalize("NFKD", name) if not unicodedata.combining(ch))
    return " ".join(re.sub(r"[^0-9A-Z]+", " ", letters.upper()).split())


def parse_parcel_key(key: str) -> ParcelRef:
    parts = key.split("_")
    if len(parts) not in (3, 4):
        raise ValueError(f"not a parcel key: {key!r} (expected CCDD_BLOCK_LOT[_QUAL])")
    return ParcelRef(
        municipality_code=parts[0], block=parts[1], lot=parts[2], qualifier=parts[3] if len(parts) == 4 else ""
    )


class InstrumentContent(BaseModel):
    """What a filer presents: the instrument's content. Unknown fields are rejected, not ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    doc_type: DocType
    grantors: list[Name] = Field(min_length=1, max_length=MAX_PARTIES, examples=[["JOHN Q. SMITH"]])
    grantees: list[Name] = Field(min_length=1, max_length=MAX_PARTIES, examples=[["MARIA GARCIA"]])
    parcels: list[ParcelRef] = Field(min_length=1, max_length=MAX_PARCELS)
    consideration: Decimal | None = Field(
        default=None, ge=0, le=MAX_CONSIDERATION, decimal_places=2, description="US dollars", examples=["350000.00"]
    )
    legal_description: Annotated[str, Field(max_length=MAX_LEGAL_DESCRIPTION), AfterValidator(_multi_line)] = ""
    document_digest: Annotated[
        str,
        Field(
            description="SHA-256 of the scanned document image, 64 lowercase hex digits",
            examples=["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
        ),
        AfterValidator(_pattern(SHA256_HEX_RE, "sha256_format", "must be a SHA-256 digest: 64 lowercase hex digits")),
    ]
    corrects: Annotated[
        str | None,
        Field(description="instrument number of the record this one corrects", max_length=24),
    ] = None

    @field_validator("corrects")
    @classmethod
    def _corrects(cls, value: str | None) -> str | None:
        return _check_instrument_number(value)

    @model_validator(mode="after")
    def _distinct_parcels(self) -> InstrumentContent:
        keys = [p.key for p in self.parcels]
        if len(set(keys)) != len(keys):
            dup = next(k for k in keys if keys.count(k) > 1)
            raise PydanticCustomError("duplicate_parcel", "parcel {key} is listed twice", {"key": dup})
        return self

    @property
    def consideration_cents(self) -> int | None:
        return None if self.consideration is None else int(self.consideration * 100)


def _check_instrument_number(value: str | None) -> str | None:
    if value is not None and not INSTRUMENT_NUMBER_RE.fullmatch(value):
        raise PydanticCustomError(
            "instrument_number_format", "must be capital letters, digits and dashes, e.g. 2026-0001234"
        )
    return value


class InstrumentInput(InstrumentContent):
    """An instrument to record: its content, plus the number, book/page and recording time when
    they already exist (loading existing records); the recorder assigns them to new filings."""

    instrument_number: Annotated[str | None, Field(max_length=24)] = None
    book: Annotated[str | None, Field(max_length=6)] = None
    page: Annotated[str | None, Field(max_length=6)] = None
    recorded_at: AwareDatetime | None = None

    @field_validator("instrument_number")
    @classmethod
    def _instrument_number(cls, value: str | None) -> str | None:
        return _check_instrument_number(value)

    @field_validator("book", "page")
    @classmethod
    def _book_page(cls, value: str | None) -> str | None:
        if value is not None and not BOOK_PAGE_RE.fullmatch(value):
            raise PydanticCustomError("book_page_format", "must be 1 to 6 digits")
        return value

    @field_validator("recorded_at")
    @classmethod
    def _recorded_at(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        if value is None:
            return None
        # recording times are kept to the second, in UTC, so the database and the commitment agree
        value = value.astimezone(UTC).replace(microsecond=0)
        if value < EARLIEST_RECORDING:
            raise PydanticCustomError("before_earliest", "is before Bergen County existed (1683)")
        now = (info.context or {}).get("now")
        if now is not None and value > now + FUTURE_TOLERANCE:
            raise PydanticCustomError("in_future", "is in the future")
        return value

    @model_validator(mode="after")
    def _not_self_correcting(self) -> InstrumentInput:
        if self.corrects is not None and self.corrects == self.instrument_number:
            raise PydanticCustomError("corrects_itself", "an instrument cannot correct itself")
        return self


def validation_errors(exc: ValidationError) -> list[FieldError]:
    """Pydantic's errors as landreg's ``FieldError`` list, with paths like ``parcels[0].lot``."""
    out = []
    for err in exc.errors(include_url=False):
        path = ""
        for part in err["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        out.append(FieldError(field=path or "(instrument)", rule=err["type"], message=err["msg"]))
    return out


def parse_instrument(
    data: Any, *, municipalities: Container[str] | None = None, now: datetime | None = None
) -> InstrumentInput:
    """Validate raw input completely or raise ``InvalidInstrument`` listing every broken rule.

    ``municipalities`` (the codes this registry records for) and ``now`` enable the rules that
    depend on the outside world; they are given explicitly so this function stays pure.
    """
    if isinstance(data, InstrumentInput):
        data = data.model_dump()
    try:
        return InstrumentInput.model_validate(data, context={"municipalities": municipalities, "now": now})
    except ValidationError as exc:
        raise InvalidInstrument(validation_errors(exc)) from None


# --- the committed form -----------------------------------------------------------------------------
def format_timestamp(moment: datetime) -> str:
    """UTC, second precision, ``Z`` suffix: the only timestamp spelling inside a commitment."""
    if moment.tzinfo is None:
        raise ValueError("recording time must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class InstrumentRecord:
    """The exact content committed for one recorded instrument (scheme landreg-commitment/v1).

    ``prev`` links each parcel to the commitment of that parcel's previous record (``None`` for the
    first), making every parcel's history a hash chain.
    """

    instrument_number: str
    doc_type: str
    recorded_at: str
    book: str
    page: str
    grantors: tuple[str, ...]
    grantees: tuple[str, ...]
    consideration_cents: int | None
    legal_description: str
    document_digest: str
    parcels: tuple[str, ...]
    corrects: str | None
    prev: tuple[tuple[str, str | None], ...]

    def __post_init__(self) -> None:
        parcels = self.parcels  # (bulk migration builds millions of these: the checks are kept cheap)
        if len(parcels) > 1 and (len(set(parcels)) != len(parcels) or list(parcels) != sorted(parcels)):
            raise ValueError("parcels must be distinct and sorted")
        if len(self.prev) != len(parcels) or [key for key, _ in self.prev] != list(parcels):
            raise ValueError("prev must hold exactly one link per parcel, in parcel order")


def build_record(
    *,
    instrument_number: str,
    doc_type: str,
    recorded_at: datetime | str,
    book: str,
    page: str,
    grantors: Iterable[str],
    grantees: Iterable[str],
    consideration_cents: int | None,
    legal_description: str,
    document_digest: str,
    parcels: Iterable[str],
    corrects: str | None,
    prev: dict[str, str | None],
) -> InstrumentRecord:
    keys = tuple(sorted(parcels))
    return InstrumentRecord(
        instrument_number=instrument_number,
        doc_type=str(doc_type),
        recorded_at=recorded_at if isinstance(recorded_at, str) else format_timestamp(recorded_at),
        book=book,
        page=page,
        grantors=tuple(grantors),
        grantees=tuple(grantees),
        consideration_cents=consideration_cents,
        legal_description=legal_description,
        document_digest=document_digest,
        parcels=keys,
        corrects=corrects,
        prev=tuple((k, prev.get(k)) for k in keys),
    )
