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
    #: any other recorded instrument that neither conveys nor encumbers title (an agreement, a
    #: declaration, a certificate, a contract of sale): recorded and provable, never a conveyance
    OTHER = "OTHER"


#: instruments that convey title: their grantees become the owners of record
CONVEYANCES = frozenset({DocType.DEED, DocType.MASTER_DEED})


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
