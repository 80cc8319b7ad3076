"""Instruments as committed (``InstrumentRecord``): exactly what a commitment covers.

Part of the consensus-critical core: what is filed, and how it is validated, is the business of
``hybrid_store.intake`` and the registry's jurisdiction profile; this module holds only the form
proofs depend on, and the vocabulary of document types.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime


class DocType(enum.StrEnum):
    """Recorded instrument types of a county recorder's land records (a jurisdiction profile says
    which of them it records: ``Profile.doc_types``)."""

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
    # deeds that convey without the owner's signature: an officer or a court conveys for the owner
    SHERIFFS_DEED = "SHERIFFS_DEED"  # sheriff's deed after a foreclosure or execution sale
    EXECUTORS_DEED = "EXECUTORS_DEED"  # by the executor of a will, for the estate
    ADMINISTRATORS_DEED = "ADMINISTRATORS_DEED"  # by the administrator of an intestate estate
    TAX_SALE_DEED = "TAX_SALE_DEED"  # final judgment foreclosing a tax sale certificate (right of redemption)
    COURT_ORDER = "COURT_ORDER"  # an order or judgment that vests title (partition, quiet title)
    #: any other recorded instrument that neither conveys nor encumbers title (an agreement, a
    #: declaration, a certificate, a contract of sale): recorded and provable, never a conveyance
    OTHER = "OTHER"


#: instruments that convey title: their grantees become the owners of record
CONVEYANCES = frozenset({
    DocType.DEED, DocType.MASTER_DEED, DocType.SHERIFFS_DEED, DocType.EXECUTORS_DEED,
    DocType.ADMINISTRATORS_DEED, DocType.TAX_SALE_DEED, DocType.COURT_ORDER,
})  # fmt: skip
#: conveyances an officer or a court makes for the owner of record: their grantors need not be the
#: owners (``core.title.check``). The jurisdiction profiles' default, and the rule a title abstract's
#: verifier replays
CONVEYS_FOR_OWNER = frozenset({
    DocType.SHERIFFS_DEED, DocType.EXECUTORS_DEED, DocType.ADMINISTRATORS_DEED, DocType.TAX_SALE_DEED,
    DocType.COURT_ORDER,
})  # fmt: skip


class ReferenceKind(enum.StrEnum):
    """What a structured cross-reference says of the instrument it names."""

    ACTS_ON_MORTGAGE = "acts_on_mortgage"  # an assignment, satisfaction, release or subordination
    DISCHARGES_LIEN = "discharges_lien"  # a discharge of lien
    CORRECTS = "corrects"  # a correction


@dataclass(frozen=True, slots=True)
class Reference:
    """A cross-reference to another instrument: by its number in this registry, or by book and
    page for one recorded before the registry's book began (exactly one of the two)."""

    kind: str
    number: str | None = None
    book: str | None = None
    page: str | None = None

    def __post_init__(self) -> None:
        by_number = self.number is not None and self.book is None and self.page is None
        by_book = self.number is None and self.book is not None and self.page is not None
        if not (by_number or by_book):
            raise ValueError("a reference names an instrument number, or a book and a page, not both")

    def value(self) -> list[str | None]:
        """The committed form: ``[kind, number, book, page]``."""
        return [self.kind, self.number, self.book, self.page]


# --- the committed form -----------------------------------------------------------------------------
def format_timestamp(moment: datetime) -> str:
    """UTC, second precision, ``Z`` suffix: the only timestamp spelling inside a commitment."""
    if moment.tzinfo is None:
        raise ValueError("recording time must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class InstrumentRecord:
    """The exact content committed for one recorded instrument (``landreg-commitment/v1`` commits
    the fields up to ``prev``; ``v2`` all of them). The return-to address is not here: it is
    personal data, not index data, and is never committed.

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
    # --- committed from landreg-commitment/v2 on (a v1 record has none of them) ---
    document_date: str | None = None  # the date the instrument bears, YYYY-MM-DD
    page_count: int | None = None
    grantee_mailing_address: str | None = None
    preparer: str | None = None
    references: tuple[Reference, ...] = ()
    #: the commitment (0x hex) of the version a mirrored version supersedes
    supersedes: str | None = None

    @property
    def has_v2_content(self) -> bool:
        """Whether the record holds what only v2 commits (``supersedes`` aside: a v1 mirror link
        lives in the commitment row, outside the record v1 committed)."""
        return bool(
            self.document_date is not None or self.page_count is not None or self.grantee_mailing_address is not None
            or self.preparer is not None or self.references
        )  # fmt: skip

    def __post_init__(self) -> None:
        parcels, prev = self.parcels, self.prev  # (bulk work builds millions of these: the checks are cheap)
        if len(parcels) == 1 and len(prev) == 1 and prev[0][0] == parcels[0]:
            return  # the common case, checked without building anything
        if len(parcels) > 1 and (len(set(parcels)) != len(parcels) or list(parcels) != sorted(parcels)):
            raise ValueError("parcels must be distinct and sorted")
        if len(prev) != len(parcels) or [key for key, _ in prev] != list(parcels):
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
    document_date: str | None = None,
    page_count: int | None = None,
    grantee_mailing_address: str | None = None,
    preparer: str | None = None,
    references: Iterable[Reference] = (),
    supersedes: str | None = None,
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
        document_date=document_date,
        page_count=page_count,
        grantee_mailing_address=grantee_mailing_address,
        preparer=preparer,
        references=tuple(references),
        supersedes=supersedes,
    )
