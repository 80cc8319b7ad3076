"""Filings as presented, and the one way they are validated.

``validate`` is the single entry point: the API, the web desk, the legacy importers and the demo
reject the same things with the same words. What an instrument may hold (parcels as the
registry's jurisdiction names them, the limits, the earliest recording date, the places) comes
from the registry's jurisdiction profile (``hybrid_store.jurisdictions``); the rules that need the
outside world (the current time) take it as an argument, so validation stays pure.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, cast

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from hybrid_store.core.records import DocType, Reference, ReferenceKind
from hybrid_store.errors import FieldError, InvalidInstrument
from hybrid_store.fees import PROPERTY_CLASSES
from hybrid_store.jurisdictions import Profile, get_profile
from hybrid_store.jurisdictions.base import ParcelInput
from hybrid_store.plain_errors import plain_message
from hybrid_store.plain_numbers import is_amount, not_an_amount

INSTRUMENT_NUMBER_RE = re.compile(r"[0-9A-Z][0-9A-Z_-]{0,23}")  # ACRIS document ids: FT_3400000012345
BOOK_PAGE_RE = re.compile(r"[0-9]{1,6}")
SHA256_HEX_RE = re.compile(r"[0-9a-f]{64}")
ISO_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
PAGE_COUNT_RE = re.compile(r"[0-9]{1,9}")
EXEMPTION_RE = re.compile(r"[a-z][a-z_]{0,39}")
#: what fees depend on besides the committed fields: kept with the submission, never committed
FEE_INPUTS = ("property_class", "exemption_claimed")


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


# Unicode's control characters (general category Cc) are exactly these two ranges
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
CONTROL_BUT_LINES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # newline and tab allowed


def single_line(text: str) -> str:
    """A name: NFC, whitespace collapsed, no control characters, not blank."""
    text = " ".join(_check_unicode(text).split())
    if not text:
        raise PydanticCustomError("blank", "must not be blank")
    if CONTROL.search(text):
        raise PydanticCustomError("control_character", "contains a control character")
    return text


def _multi_line(text: str) -> str:
    text = _check_unicode(text).replace("\r\n", "\n").replace("\r", "\n")
    lines = [line.rstrip() for line in text.split("\n")]
    text = "\n".join(lines).strip("\n")
    if CONTROL_BUT_LINES.search(text):
        raise PydanticCustomError("control_character", "contains a control character")
    return text


def _optional(check: Callable[[str], str]) -> Callable[[str | None], str | None]:
    """``check`` for an optional text field: absent stays absent, and so does a blank one (a form
    sends every box, filled or not)."""

    def run(value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return check(value)

    return run


def _document_date(value: Any) -> Any:
    """The date an instrument bears: ``YYYY-MM-DD`` in ASCII digits and a real day of the calendar
    (pydantic would also take a number of seconds, or any Unicode digits)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and ISO_DATE_RE.fullmatch(value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise PydanticCustomError("date_format", "must be a date written YYYY-MM-DD, e.g. 2026-03-02")


def _page_count(value: Any) -> Any:
    """A number of pages: a positive whole number, as a JSON integer or in ASCII digits (a form's
    text); never a boolean, a fraction, or digits of another script."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str) and PAGE_COUNT_RE.fullmatch(value.strip()):
        value = int(value.strip())
    if type(value) is not int or value < 1:
        raise PydanticCustomError("page_count_format", "must be a whole number of pages, 1 or more, e.g. 3")
    return value


def _property_class(value: Any) -> Any:
    """A New Jersey property tax class as the tax list writes it (2, 3A, 15F): blank is none."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str) and value.strip().upper() in PROPERTY_CLASSES:
        return value.strip().upper()
    raise PydanticCustomError("property_class", "must be a New Jersey property class: {classes}",
                              {"classes": ", ".join(PROPERTY_CLASSES)})  # fmt: skip


def _pattern(regex: re.Pattern[str], rule: str, message: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not regex.fullmatch(value):
            raise PydanticCustomError(rule, message)
        return value

    return check


def _typed_amount(value: object) -> object:
    """An amount as a clerk types it: ASCII digits with an optional fraction (a minus sign is let
    through to the rule that amounts are not negative, which says so better). ``Decimal()`` alone
    would also read '١٠٠٠.00', '1_000.00', ' 1000.00', '1e3' or '+1000'. A JSON number may be a
    whole number of dollars; with a fraction or an exponent it arrives as a binary float, which
    cannot say what was typed (1000.10 and 1e3 parse alike), so cents come as a string."""
    if isinstance(value, bool) or (isinstance(value, str) and not is_amount(value.removeprefix("-"))):
        raise PydanticCustomError(
            "amount_format", "{problem}: type digits 0-9 with up to two decimals, e.g. 350000.00",
            {"problem": not_an_amount(value)},
        )  # fmt: skip
    if isinstance(value, float):
        raise PydanticCustomError(
            "amount_format", "{problem}: a JSON number with a fraction or an exponent is inexact; "
            'send the amount as a string, e.g. "350000.00"', {"problem": not_an_amount(value)},
        )  # fmt: skip
    return value


def _check_instrument_number(value: str | None) -> str | None:
    if value is not None and not INSTRUMENT_NUMBER_RE.fullmatch(value):
        raise PydanticCustomError(
            "instrument_number_format", "must be capital letters, digits, dashes and underscores, e.g. 2026-0001234"
        )
    return value


def _check_book_page(value: str | None) -> str | None:
    if value is not None and not BOOK_PAGE_RE.fullmatch(value):
        raise PydanticCustomError("book_page_format", "must be 1 to 6 digits")
    return value


# --- the models ------------------------------------------------------------------------------------
class ReferenceInput(BaseModel):
    """A cross-reference as filed: what it says (``kind``) of the instrument it names, by that
    instrument's number in this registry, or by book and page for one recorded before the
    registry's book began."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ReferenceKind = Field(description="acts_on_mortgage (an assignment, satisfaction, release or "
                                "subordination), discharges_lien (a discharge of lien) or corrects (a correction)")  # fmt: skip
    instrument_number: Annotated[str | None, Field(max_length=24, examples=["2026-0000123"])] = None
    book: Annotated[str | None, Field(max_length=6)] = None
    page: Annotated[str | None, Field(max_length=6)] = None

    @field_validator("instrument_number")
    @classmethod
    def _number(cls, value: str | None) -> str | None:
        return _check_instrument_number(value)

    @field_validator("book", "page")
    @classmethod
    def _book_page(cls, value: str | None) -> str | None:
        return _check_book_page(value)

    @model_validator(mode="after")
    def _one_target(self) -> ReferenceInput:
        by_number = self.instrument_number is not None and self.book is None and self.page is None
        by_book = self.instrument_number is None and self.book is not None and self.page is not None
        if not (by_number or by_book):
            raise PydanticCustomError(
                "reference_target",
                "name the instrument by its number, or by book and page if it was recorded before this "
                "registry's book began (not both, and a book needs its page)",
            )
        return self

    def reference(self) -> Reference:
        return Reference(str(self.kind), self.instrument_number, self.book, self.page)


class InstrumentContent(BaseModel):
    """What a filer presents: the instrument's content. Unknown fields are rejected, not ignored.
    The fields are declared per jurisdiction (``models``); this class holds the shared rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    profile: ClassVar[Profile]

    if TYPE_CHECKING:  # declared per jurisdiction by ``models`` (a declaration here would win over those)
        doc_type: DocType
        grantors: list[str]
        grantees: list[str]
        parcels: list[ParcelInput]
        consideration: Decimal | None
        legal_description: str
        document_digest: str
        corrects: str | None
        document_date: date | None
        page_count: int | None
        grantee_mailing_address: str | None
        preparer: str | None
        return_to: str | None
        references: list[ReferenceInput]
        property_class: str | None
        exemption_claimed: str | None

    @field_validator("corrects", check_fields=False)
    @classmethod
    def _corrects(cls, value: str | None) -> str | None:
        return _check_instrument_number(value)

    @model_validator(mode="before")
    @classmethod
    def _corrects_from_reference(cls, data: Any) -> Any:
        """A ``corrects`` reference by number and the ``corrects`` field are one link (the registry's
        correction link, ``corrects_id``): the reference fills the field when it is left out."""
        if isinstance(data, dict) and data.get("corrects") is None and isinstance(data.get("references"), list):
            numbers = [r.get("instrument_number") for r in data["references"]
                       if isinstance(r, dict) and r.get("kind") == ReferenceKind.CORRECTS and r.get("instrument_number")]  # fmt: skip
            if numbers:
                data = {**data, "corrects": numbers[0]}
        return data

    @model_validator(mode="after")
    def _one_correction(self) -> InstrumentContent:
        cited = {
            r.instrument_number for r in self.references if r.kind == ReferenceKind.CORRECTS and r.instrument_number
        }
        if cited and cited != {self.corrects}:
            raise PydanticCustomError(
                "corrects_disagrees",
                "the corrects reference names {cited}, the correction link {corrects}: an instrument corrects one "
                "instrument of this registry; make them the same",
                {"cited": ", ".join(sorted(cited)), "corrects": self.corrects or "nothing"},
            )
        return self

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


class InstrumentInput(BaseModel):
    """An instrument to record: its content (the jurisdiction's ``InstrumentContent``, which every
    instance also is), plus the number, book/page and recording time when they already exist
    (loading existing records); the recorder assigns them to new filings."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    profile: ClassVar[Profile]

    if TYPE_CHECKING:  # the content's fields and properties (see ``models``)
        doc_type: DocType
        grantors: list[str]
        grantees: list[str]
        parcels: list[ParcelInput]
        consideration: Decimal | None
        legal_description: str
        document_digest: str
        corrects: str | None
        document_date: date | None
        page_count: int | None
        grantee_mailing_address: str | None
        preparer: str | None
        return_to: str | None
        references: list[ReferenceInput]
        property_class: str | None
        exemption_claimed: str | None

        @property
        def consideration_cents(self) -> int | None: ...

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
        return _check_book_page(value)

    @field_validator("recorded_at")
    @classmethod
    def _recorded_at(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        if value is None:
            return None
        # recording times are kept to the second, in UTC, so the database and the commitment agree
        value = value.astimezone(UTC).replace(microsecond=0)
        if value < cls.profile.earliest_recording:
            raise PydanticCustomError(
                "before_earliest", "is before {title} kept records ({year})",
                {"title": cls.profile.title, "year": cls.profile.earliest_recording.year},
            )  # fmt: skip
        now = (info.context or {}).get("now")
        if now is not None and value > now + cls.profile.limits.future_tolerance:
            raise PydanticCustomError("in_future", "is in the future")
        return value

    @model_validator(mode="after")
    def _not_self_correcting(self) -> InstrumentInput:
        if self.corrects is not None and self.corrects == self.instrument_number:
            raise PydanticCustomError("corrects_itself", "an instrument cannot correct itself")
        return self


@cache
def models(profile: Profile) -> tuple[type[InstrumentContent], type[InstrumentInput]]:
    """The content and input models of ``profile``: its parcels and its limits."""
    L = profile.limits
    name = Annotated[str, Field(min_length=1, max_length=L.name_length), AfterValidator(single_line)]
    recorded = profile.doc_types

    def recorded_here(value: DocType) -> DocType:
        if value not in recorded:
            raise PydanticCustomError("doc_type_not_recorded", "{value} is not a document type {title} records",
                                      {"value": str(value), "title": profile.title})  # fmt: skip
        return value

    fields: dict[str, Any] = {
        "doc_type": (Annotated[DocType, AfterValidator(recorded_here)], ...),
        "grantors": (list[name], Field(min_length=1, max_length=L.parties, examples=[["JOHN Q. SMITH"]])),
        "grantees": (list[name], Field(min_length=1, max_length=L.parties, examples=[["MARIA GARCIA"]])),
        "parcels": (list[profile.parcel_model], Field(min_length=1, max_length=L.parcels)),  # type: ignore[name-defined]
        "consideration": (Annotated[Decimal | None, BeforeValidator(_typed_amount)], Field(
            default=None, ge=0, le=L.consideration, decimal_places=2, examples=["350000.00"],
            description="US dollars: a string of ASCII digits with up to two decimals, or a whole number")),
        "legal_description": (Annotated[str, Field(max_length=L.legal_description), AfterValidator(_multi_line)], ""),
        "document_digest": (Annotated[str, Field(
            description="SHA-256 of the scanned document image, 64 lowercase hex digits",
            examples=["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"]),
            AfterValidator(_pattern(SHA256_HEX_RE, "sha256_format", "must be a SHA-256 digest: 64 lowercase hex digits")),
        ], ...),
        "corrects": (Annotated[str | None, Field(description="instrument number of the record this one corrects",
                                                 max_length=24)], None),
        # what a recorder indexes besides: optional here (a missing one a type needs is a finding of
        # examination, not a malformed filing); only a malformed value is refused
        "document_date": (Annotated[date | None, BeforeValidator(_document_date), Field(
            description="the date the instrument bears (YYYY-MM-DD), not the recording date")], None),
        # the bound sits on the int inside the optional: on the optional itself, a null met it (a 500)
        "page_count": (Annotated[Annotated[int, Field(le=L.page_count)] | None, BeforeValidator(_page_count),
                                 Field(description="pages of the instrument as presented")], None),
        "grantee_mailing_address": (Annotated[str | None, Field(max_length=L.address),
                                              AfterValidator(_optional(_multi_line))], None),
        "preparer": (Annotated[str | None, Field(max_length=L.name_length, description="who prepared the instrument"),
                               AfterValidator(_optional(single_line))], None),
        "return_to": (Annotated[str | None, Field(max_length=L.address, description=(
            "where the recorded original is returned: personal data, kept but never committed or published")),
            AfterValidator(_optional(_multi_line))], None),
        "references": (list[ReferenceInput], Field(default_factory=list, max_length=L.references, description=(
            "the instruments this one acts on: the mortgage of an assignment, satisfaction or release, the lien "
            "of a discharge, the instrument a correction corrects"))),
        # fee inputs (``FEE_INPUTS``): what the fees depend on, kept with the submission and never
        # committed (``build_record`` takes none of them), so a record commits the same bytes with or
        # without them; an exemption is checked against the registry's fee schedule when fees are worked out
        "property_class": (Annotated[str | None, BeforeValidator(_property_class), Field(
            description="the property's New Jersey tax class (1, 2, 3A, 3B, 4A, 4B, 4C, 5A, 5B, 6A, 6B, 15A-15F): "
                        "the graduated fee on sales over $1,000,000 (N.J.S.A. 46:15-7.2) covers 2, 3A, 4A and 4C",
            examples=["2"])], None),
        "exemption_claimed": (Annotated[str | None, Field(max_length=40, description=(
            "the exemption from the realty transfer fee the grantor claims on the affidavit of consideration: a "
            "letter of N.J.S.A. 46:15-10 (a to q: no fee) or a partial exemption of 46:15-10.1 (senior_citizen, "
            "blind_person, disabled_person, low_moderate_income, new_construction)"), examples=["d"]),
            AfterValidator(_optional(_pattern(EXEMPTION_RE, "exemption_format",
                                              "must be a letter of N.J.S.A. 46:15-10 (e.g. d) or a partial exemption's "
                                              "name (e.g. senior_citizen)")))], None),
    }  # fmt: skip
    content = cast("type[InstrumentContent]", _derive("InstrumentContent", InstrumentContent, fields))
    content.profile = profile
    instrument = cast("type[InstrumentInput]", _derive("InstrumentInput", (content, InstrumentInput), {}))
    instrument.profile = profile
    return content, instrument


def _derive(name: str, base: Any, fields: dict[str, Any]) -> Any:
    # pydantic's own typing of create_model cannot express a base chosen at run time
    return create_model(name, __base__=base, **fields)


def validate(
    data: Any, *, profile: Profile | None = None, now: datetime | None = None, content_only: bool = False
) -> InstrumentInput:
    """Validate raw input completely or raise ``InvalidInstrument`` listing every broken rule.

    ``content_only``: a filing (the registry assigns number, book, page and time; presenting them is
    an error). ``now`` enables the rule against recording times in the future."""
    profile = profile or get_profile()
    content, instrument = models(profile)
    model = content if content_only else instrument
    if isinstance(data, BaseModel):
        data = data.model_dump()
    context = {"places": profile.place_codes(), "now": now or datetime.now(UTC)}
    try:
        validated = model.model_validate(data, context=context)
    except ValidationError as exc:
        raise InvalidInstrument(validation_errors(exc)) from None
    if content_only:  # the rest of a filing's facts come from the registry
        return instrument.model_construct(**validated.__dict__)
    return cast(InstrumentInput, validated)


def validation_errors(exc: ValidationError) -> list[FieldError]:
    """Pydantic's errors as landreg's ``FieldError`` list, with paths like ``parcels[0].lot`` and
    messages in the clerk's words (``plain_errors``), never the library's."""
    out = []
    for err in exc.errors(include_url=False):
        path = ""
        for part in err["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        out.append(FieldError(field=path or "(instrument)", rule=err["type"], message=plain_message(err)))
    return out
