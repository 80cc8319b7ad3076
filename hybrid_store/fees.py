"""Fees: what a filing pays, worked out from a fee schedule kept as data, in integer cents.

A schedule (``landreg-fee-schedule/v1``, e.g. ``jurisdictions/fees/bergen.toml``; docs/fees.md) lists
each part of the law (recording fees, a surcharge, the realty transfer fee, the graduated fee on
sales over $1,000,000) as entries with the date each takes effect and the statute it comes from.
``statement`` picks, for each part, the entry in force on the filing's day of receipt in the
recorder's time zone (``day_of_receipt``) and says, line by line and in the clerk's words, what is
owed, by whom and under which statute. A statement is stored when the filing is examined and
recorded with the instrument: it is never worked out again, so a new schedule never changes a past
filing's fees.

Pure: no I/O. ``parse_schedule`` takes the file's parsed content (``hybrid_store.fee_schedule``
reads the file); nothing here uses a float.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any, Literal, TypeVar, cast
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hybrid_store.core.records import DocType
from hybrid_store.errors import ConfigurationError, FieldError
from hybrid_store.plain_errors import plain_message

FORMAT = "landreg-fee-schedule/v1"
STATEMENT_FORMAT = "landreg-fee-statement/v1"
#: the realty transfer fee is charged "for each $500 of consideration or fractional part thereof"
RTF_UNIT_CENTS = 500_00
#: the letters of N.J.S.A. 46:15-10 a schedule may list (a full exemption is claimed by its letter)
FULL_LETTER = r"[a-z]"
#: New Jersey's property tax classes (N.J.A.C. 18:12-2.2), as the filing's ``property_class`` takes them
PROPERTY_CLASSES = ("1", "2", "3A", "3B", "4A", "4B", "4C", "5A", "5B", "6A", "6B",
                    "15A", "15B", "15C", "15D", "15E", "15F")  # fmt: skip
PROPERTY_CLASS_WORDS = {
    "1": "vacant land", "2": "residential (four families or fewer)", "3A": "farm (regular), with a residence",
    "3B": "farm (qualified)", "4A": "commercial", "4B": "industrial", "4C": "apartment (cooperative units)",
    "5A": "railroad class I", "5B": "railroad class II", "6A": "business personal property (telephone)",
    "6B": "petroleum refineries", "15A": "public school property", "15B": "other school property",
    "15C": "public property", "15D": "church and charitable property", "15E": "cemeteries and graveyards",
    "15F": "other exempt property",
}  # fmt: skip
Payer = Literal["grantor", "grantee", "filer"]
Cents = Annotated[int, Field(ge=0, le=10**13, strict=True)]  # a float (30.00) is refused, not rounded


# --- the schedule, as data --------------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tier(_Strict):
    """A bracket of the realty transfer fee: ``rate`` cents for each $500 (or part) of the
    consideration up to ``upto`` cents (None: no top)."""

    upto: Cents | None = None
    rate: Cents


def _check_tiers(tiers: tuple[Tier, ...], name: str) -> None:
    if not tiers:
        raise ValueError(f"{name} lists no brackets")
    tops = [t.upto for t in tiers[:-1]]
    if any(top is None for top in tops):
        raise ValueError(f"{name}: only the last bracket may have no top (upto)")
    if tops != sorted(set(tops)):  # type: ignore[type-var]  # (None ruled out above)
        raise ValueError(f"{name}: the brackets' tops (upto) must rise")


class Rates(_Strict):
    low: tuple[Tier, ...]  # when the whole consideration is at most ``low_upto``
    high: tuple[Tier, ...]


class PartialKind(_Strict):
    code: Annotated[str, Field(pattern=r"[a-z][a-z_]{1,39}")]
    words: str
    statute: str
    rates: Literal["partial", "regular"]


class FullExemptions(_Strict):
    model_config = ConfigDict(extra="allow", frozen=True)  # the letters, each with its words
    statute: str

    @property
    def letters(self) -> dict[str, str]:
        return {k: str(v) for k, v in (self.model_extra or {}).items()}

    @model_validator(mode="after")
    def _letters(self) -> FullExemptions:
        bad = [k for k, v in self.letters.items() if not re.fullmatch(FULL_LETTER, k) or not isinstance(v, str)]
        if bad:
            raise ValueError(f"full exemptions are single letters, each with its words; not {bad[0]!r}")
        return self


class Entry(_Strict):
    id: Annotated[str, Field(min_length=1, max_length=64)]
    effective: date
    statute: str


class RecordingEntry(Entry):
    first_page_cents: Cents
    additional_page_cents: Cents
    abstract_cents: Cents
    abstract_doc_types: frozenset[DocType]
    notation_cents: Cents
    notation_doc_types: frozenset[DocType]


class SurchargeEntry(Entry):
    per_document_cents: Cents
    words: str


class RtfEntry(Entry):
    doc_types: frozenset[DocType]
    low_upto: Cents
    regular: Rates
    partial: Rates
    partial_kinds: tuple[PartialKind, ...]
    full: FullExemptions

    @model_validator(mode="after")
    def _tables(self) -> RtfEntry:
        for kind, rates in (("regular", self.regular), ("partial", self.partial)):
            _check_tiers(rates.low, f"{kind}.low")
            _check_tiers(rates.high, f"{kind}.high")
            if rates.high[-1].upto is not None:
                raise ValueError(f"{kind}.high: the last bracket has no top (leave upto out)")
            if (rates.low[-1].upto or 0) < self.low_upto:
                raise ValueError(f"{kind}.low: the brackets stop below low_upto")
        codes = [k.code for k in self.partial_kinds]
        if len(set(codes)) != len(codes) or set(codes) & set(self.full.letters):
            raise ValueError("partial_kinds: each code once, and none a full exemption's letter")
        return self


class GraduatedTier(_Strict):
    over: Cents
    basis_points: Annotated[int, Field(ge=0, le=10_000)]


class GraduatedEntry(Entry):
    payer: Literal["grantor", "grantee"]
    classes: frozenset[str]
    tiers: tuple[GraduatedTier, ...]

    @model_validator(mode="after")
    def _tiers(self) -> GraduatedEntry:
        overs = [t.over for t in self.tiers]
        if not overs or overs != sorted(set(overs)):
            raise ValueError("tiers: at least one, their thresholds (over) rising")
        unknown = sorted(self.classes - set(PROPERTY_CLASSES))
        if unknown:
            raise ValueError(f"classes: {unknown[0]!r} is not a New Jersey property class")
        return self


class Schedule(_Strict):
    """A jurisdiction's fee schedule: every entry of every part, each with its effective date."""

    format: Literal["landreg-fee-schedule/v1"]
    id: Annotated[str, Field(min_length=1, max_length=64)]
    jurisdiction: str
    title: str
    confirm: str = ""
    recording: tuple[RecordingEntry, ...]
    surcharge: tuple[SurchargeEntry, ...] = ()
    rtf: tuple[RtfEntry, ...] = ()
    graduated: tuple[GraduatedEntry, ...] = ()

    @model_validator(mode="after")
    def _dates(self) -> Schedule:
        for part in ("recording", "surcharge", "rtf", "graduated"):
            entries: tuple[Entry, ...] = getattr(self, part)
            days = [e.effective for e in entries]
            if len(set(days)) != len(days):
                raise ValueError(f"{part}: two entries take effect the same day")
        ids = [e.id for part in (self.recording, self.surcharge, self.rtf, self.graduated) for e in part]
        if len(set(ids)) != len(ids):
            raise ValueError("every entry's id is its own: two entries share one")
        return self

    def exemptions(self, day: date) -> dict[str, tuple[str, str]]:
        """The exemptions a grantor may claim on ``day``: code -> (words, statute)."""
        rtf = _in_force(self.rtf, day)
        if rtf is None:
            return {}
        full = {k: (w, f"{rtf.full.statute}({k})") for k, w in rtf.full.letters.items()}
        return {**full, **{k.code: (k.words, k.statute) for k in rtf.partial_kinds}}


_E = TypeVar("_E", bound=Entry)


def parse_schedule(data: Mapping[str, Any], source: str) -> Schedule:
    """A schedule from a parsed file; ``ConfigurationError`` naming ``source`` and the bad entry."""
    try:
        return Schedule.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = _where(data, err["loc"])
        raise ConfigurationError(f"fee schedule {source}: {where}: {plain_message(err)}") from None


def _where(data: Mapping[str, Any], loc: tuple[int | str, ...]) -> str:
    """``rtf[0] (rtf-2004-08-01).regular.low[1].rate``: the path, with the entry's id."""
    out, node = "", cast(Any, data)
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
        node = node[part] if _has(node, part) else None
        if isinstance(part, int) and isinstance(node, Mapping) and "id" in node:
            out += f" ({node['id']})"
    return out or "(schedule)"


def _has(node: Any, part: int | str) -> bool:
    return (isinstance(node, list) and isinstance(part, int) and part < len(node)) or (
        isinstance(node, Mapping) and part in node
    )


def _in_force(entries: tuple[_E, ...], day: date) -> _E | None:
    """The entry in force on ``day``: the latest to take effect on or before it."""
    past = [e for e in entries if e.effective <= day]
    return max(past, key=lambda e: e.effective) if past else None


def day_of_receipt(received: datetime, timezone: str) -> date:
    """The recorder's day a filing was received on: its time of receipt in the recorder's time zone
    (a filing received at 2025-07-10 03:30 UTC was received on 2025-07-09 in Newark). The schedule in
    force that day is the one it pays."""
    return received.astimezone(ZoneInfo(timezone)).date()


# --- the statement ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class FeeInputs:
    """What fees depend on: a filing's type, consideration, pages, property class, the exemption
    claimed, the mortgages it cites, and the day it was received."""

    doc_type: DocType
    day: date
    consideration_cents: int | None = None
    page_count: int | None = None
    property_class: str | None = None
    exemption: str | None = None
    mortgages_cited: int = 0


@dataclass(frozen=True)
class Line:
    code: str
    words: str  # how it was worked out, in the clerk's words
    statute: str
    payer: Payer
    cents: int

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "words": self.words, "statute": self.statute, "payer": self.payer,
                "cents": self.cents, "amount": dollars(self.cents)}  # fmt: skip


@dataclass
class _Work:
    lines: list[Line] = field(default_factory=list)
    missing: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    used: list[Entry] = field(default_factory=list)


def dollars(cents: int) -> str:
    """``$1,234.50``: an amount as a clerk writes it."""
    return f"${cents // 100:,}.{cents % 100:02d}"


def check_inputs(schedule: Schedule, doc_type: DocType, exemption: str | None, day: date) -> list[FieldError]:
    """What is wrong with a filing's fee inputs under ``schedule``: an exemption it does not list,
    or one claimed on a document that pays no realty transfer fee."""
    if exemption is None:
        return []
    known = schedule.exemptions(day)
    if exemption not in known:
        return [FieldError("exemption_claimed", "unknown_exemption",
                           f"{exemption!r} is not an exemption of this registry's fee schedule: claim a letter of "
                           f"N.J.S.A. 46:15-10 or a partial exemption ({', '.join(known) or 'none'})")]  # fmt: skip
    rtf = _in_force(schedule.rtf, day)
    if rtf is None or doc_type not in rtf.doc_types:
        return [FieldError("exemption_claimed", "exemption_not_a_deed",
                           f"a {doc_type} pays no realty transfer fee: leave the exemption out")]  # fmt: skip
    return []


def statement(schedule: Schedule, inputs: FeeInputs) -> dict[str, Any]:
    """The fee statement of a filing: each line (code, words, statute, payer, cents), the total
    (None while something it needs is missing: ``missing`` says what), the totals per payer, notes
    for the clerk (an exemption the filing may mean to claim), and which schedule entries were used."""
    work = _Work()
    _recording(schedule, inputs, work)
    _transfer_fees(schedule, inputs, work)
    complete = not work.missing
    by_payer: dict[str, int] = {}
    for line in work.lines:
        by_payer[line.payer] = by_payer.get(line.payer, 0) + line.cents
    total = sum(line.cents for line in work.lines)
    return {
        "format": STATEMENT_FORMAT,
        "schedule": {"id": schedule.id, "effective": max((e.effective for e in work.used), default=inputs.day).isoformat(),
                     "entries": [{"id": e.id, "effective": e.effective.isoformat()} for e in work.used]},
        "dayOfReceipt": inputs.day.isoformat(),
        "lines": [line.to_json() for line in work.lines],
        "complete": complete,
        "totalCents": total if complete else None,
        "total": dollars(total) if complete else None,
        "byPayer": by_payer,
        "missing": work.missing,
        "notes": work.notes,
    }  # fmt: skip


def _recording(schedule: Schedule, inputs: FeeInputs, work: _Work) -> None:
    rec = _in_force(schedule.recording, inputs.day)
    if rec is None:
        work.missing.append({"field": "(schedule)", "words": f"no recording fees are in force on {inputs.day}"})
        return
    work.used.append(rec)
    if inputs.page_count is None:
        work.missing.append({"field": "page_count", "words": "the recording fee is charged by the page: enter the "
                             "number of pages"})  # fmt: skip
    else:
        more = inputs.page_count - 1
        words = f"first page {dollars(rec.first_page_cents)}"
        if more:
            words += f" + {more} more page{'s' if more > 1 else ''} at {dollars(rec.additional_page_cents)}"
        cents = rec.first_page_cents + more * rec.additional_page_cents
        work.lines.append(Line("recording", words, rec.statute, "filer", cents))
    if inputs.doc_type in rec.abstract_doc_types:
        work.lines.append(Line("assessor_abstract", "abstract of a deed prepared and sent to the assessor",
                               rec.statute, "filer", rec.abstract_cents))  # fmt: skip
    if inputs.doc_type in rec.notation_doc_types and inputs.mortgages_cited:
        n = inputs.mortgages_cited
        work.lines.append(Line("marginal_notation", f"marginal notation on {n} mortgage{'s' if n > 1 else ''} at "
                               f"{dollars(rec.notation_cents)}", rec.statute, "filer", n * rec.notation_cents))  # fmt: skip
    sur = _in_force(schedule.surcharge, inputs.day)
    if sur is not None:
        work.used.append(sur)
        work.lines.append(Line("surcharge", f"{sur.words}, {dollars(sur.per_document_cents)} per document",
                               sur.statute, "filer", sur.per_document_cents))  # fmt: skip


def _transfer_fees(schedule: Schedule, inputs: FeeInputs, work: _Work) -> None:
    """The realty transfer fee and the graduated fee, on a deed."""
    rtf = _in_force(schedule.rtf, inputs.day)
    if rtf is None or inputs.doc_type not in rtf.doc_types:
        return
    work.used.append(rtf)
    cents = inputs.consideration_cents
    if inputs.exemption is None:
        _suggest(rtf, inputs, work)
    if inputs.exemption in rtf.full.letters:
        letter = inputs.exemption
        assert letter is not None
        words = f"exempt under N.J.S.A. 46:15-10({letter}): a deed {rtf.full.letters[letter]}"
        work.lines.append(Line("realty_transfer_fee", words, f"{rtf.full.statute}({letter})", "grantor", 0))
        return  # a full exemption is from the graduated fee too
    if cents is None:
        work.missing.append({"field": "consideration", "words": "the realty transfer fee is charged on the "
                             "consideration: enter it, or claim the exemption (N.J.S.A. 46:15-10) the deed is under"})  # fmt: skip
        return
    kind = next((k for k in rtf.partial_kinds if k.code == inputs.exemption), None)
    table = rtf.partial if kind is not None and kind.rates == "partial" else rtf.regular
    tiers = table.low if cents <= rtf.low_upto else table.high
    fee, words = rtf_fee(tiers, cents)
    if kind is not None:
        words = f"claimed: {kind.words} ({kind.statute}); " + words
    work.lines.append(Line("realty_transfer_fee", words, kind.statute if kind and kind.rates == "partial"
                           else rtf.statute, "grantor", fee))  # fmt: skip
    _graduated(schedule, inputs, cents, work)


def _suggest(rtf: RtfEntry, inputs: FeeInputs, work: _Work) -> None:
    """An exemption the filing looks entitled to is said, never applied: the grantor claims it on the
    affidavit of consideration, and the clerk records what was claimed."""
    if inputs.doc_type == DocType.CORRECTION and "d" in rtf.full.letters:
        work.notes.append(f"a correction claims no exemption: if it is a deed {rtf.full.letters['d']}, the grantor "
                          f"may claim exemption (d) of {rtf.full.statute}, and it pays no realty transfer fee")  # fmt: skip
    if inputs.consideration_cents is not None and inputs.consideration_cents < 100_00 and "a" in rtf.full.letters:
        work.notes.append(f"the consideration is under $100.00: the grantor may claim exemption (a) of "
                          f"{rtf.full.statute}, and the deed pays no realty transfer fee")  # fmt: skip


def rtf_fee(tiers: tuple[Tier, ...], cents: int) -> tuple[int, str]:
    """The realty transfer fee on ``cents`` of consideration: each bracket's part, in $500 units (a
    part of $500 counts as a unit), at the bracket's rate; and the working, in words."""
    fee, bottom, parts = 0, 0, []
    for tier in tiers:
        if cents <= bottom:
            break
        portion = (cents if tier.upto is None else min(cents, tier.upto)) - bottom
        units = -(-portion // RTF_UNIT_CENTS)
        fee += units * tier.rate
        reached = cents if tier.upto is None else min(cents, tier.upto)
        span = f"over {dollars(bottom)} to {dollars(reached)}" if bottom else f"first {dollars(reached)}"
        parts.append(f"{span}: {units} x {dollars(tier.rate)} = {dollars(units * tier.rate)}")
        bottom = tier.upto if tier.upto is not None else cents
    return fee, f"consideration {dollars(cents)}, per $500 or part: " + "; ".join(parts)


def _graduated(schedule: Schedule, inputs: FeeInputs, cents: int, work: _Work) -> None:
    grad = _in_force(schedule.graduated, inputs.day)
    if grad is None or cents <= grad.tiers[0].over:
        return
    work.used.append(grad)
    covered = ", ".join(sorted(grad.classes))
    if inputs.property_class is None:
        work.missing.append({"field": "property_class", "words": f"a sale over {dollars(grad.tiers[0].over)} pays "
                             f"the graduated fee on property classes {covered}: enter the property class"})  # fmt: skip
        return
    if inputs.property_class not in grad.classes:
        work.notes.append(f"no graduated fee: property class {inputs.property_class} is not among the classes it "
                          f"covers ({covered})")  # fmt: skip
        return
    tier = [t for t in grad.tiers if cents > t.over][-1]
    fee = int((Decimal(cents) * tier.basis_points / 10_000).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    percent = Decimal(tier.basis_points) / 100
    words = (f"{percent.normalize():f}% of the whole consideration {dollars(cents)} (over {dollars(tier.over)}), "
             f"property class {inputs.property_class}, paid by the {grad.payer}")  # fmt: skip
    work.lines.append(Line("graduated_fee", words, grad.statute, grad.payer, fee))


def inputs_of(content: Any, day: date) -> FeeInputs:
    """The fee inputs of a validated filing (``hybrid_store.intake``'s content) received on ``day``."""
    refs = getattr(content, "references", ())
    return FeeInputs(
        doc_type=DocType(content.doc_type),
        day=day,
        consideration_cents=content.consideration_cents,
        page_count=content.page_count,
        property_class=getattr(content, "property_class", None),
        exemption=getattr(content, "exemption_claimed", None),
        mortgages_cited=sum(1 for r in refs if str(r.kind) == "acts_on_mortgage"),
    )
