"""Reading instruments back into the committed form.

``record_of`` rebuilds an ``InstrumentRecord`` from database rows. The commitment stored at
recording time must equal the commitment recomputed from these rows; reconciliation and the
proof exporter both rely on that, and the test suite checks it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hybrid_store.core.records import InstrumentRecord, build_record
from hybrid_store.db.models import Instrument


def prev_links(prev_json: Sequence[Sequence[Any]]) -> dict[str, str | None]:
    """``commitments.prev`` rows ``[parcel_key, prev_number, prev_commitment_hex]`` as the record's links."""
    return {key: commitment for key, _number, commitment in prev_json}


def record_of(
    instrument: Instrument, prev_json: Sequence[Sequence[Any]], corrects_number: str | None = None
) -> InstrumentRecord:
    """The committed form of an instrument row (parties and parcels loaded)."""
    if corrects_number is None and instrument.corrects is not None:
        corrects_number = instrument.corrects.instrument_number
    return build_record(
        instrument_number=instrument.instrument_number,
        doc_type=instrument.doc_type,
        recorded_at=instrument.recorded_at,
        book=instrument.book,
        page=instrument.page,
        grantors=instrument.names("grantor"),
        grantees=instrument.names("grantee"),
        consideration_cents=instrument.consideration_cents,
        legal_description=instrument.legal_description,
        document_digest=instrument.document_digest,
        parcels=[link.parcel.parcel_key for link in instrument.parcel_links],
        corrects=corrects_number,
        prev=prev_links(prev_json),
    )
