"""The HTTP API's shapes, split by purpose (what a filer sends, what a reader gets)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hybrid_store.intake import models
from hybrid_store.jurisdictions import get_profile

AnchoringStatus = Literal["pending", "submitted", "anchored"]

# documented with the default jurisdiction's parcels (the registry validates with its own profile)
_Content = models(get_profile())[0]


class _Envelope(BaseModel):
    """What a filing says besides the instrument (documentation: the service reads these members)."""

    attestations: list[str] | None = Field(
        default=None,
        description=(
            "what the filing clerk attests of the paper that landreg cannot see on an image (bergen: in_english, signed, "
            "acknowledged, names_printed, fees_tendered). Left out, the API caller's filing attests every one, as a "
            "trusted submitter does; each one not listed is a ground for refusal"
        ),
    )
    confirm: list[Literal["new_parcel", "possible_duplicate", "grantor_not_owner", "conflicting_conveyance"]] = Field(
        default_factory=list,
        description="findings confirmed up front (the filing is then recorded at once), with `confirm_reason`",
    )
    confirm_reason: str = Field(default="", max_length=2000, description="why (audit-logged); required with `confirm`")


class InstrumentCreate(_Content, _Envelope):  # type: ignore[misc, valid-type]
    """An instrument presented for recording. The registry assigns number, book, page and time."""


class CorrectionCreate(_Content, _Envelope):  # type: ignore[misc, valid-type]
    """The corrected content. ``corrects`` is the instrument in the path; leave it out."""


class FindingView(BaseModel):
    code: str = Field(description="e.g. not_acknowledged, no_preparer, new_parcel, possible_duplicate, held_behind")
    kind: Literal["ground", "confirmation", "held"] = Field(
        description=(
            "ground: the statute lets the recorder refuse for it; confirmation: landreg's own check, waits for a clerk's "
            "confirmation; held: waits for an earlier submission on the same parcel"
        )
    )
    words: str
    statute: str | None = None
    parcel: str | None = None


class Clocks(BaseModel):
    recordBy: str | None = Field(description="last day to record it (N.J.S.A. 46:26A-6: two business days)")
    rejectBy: str | None = Field(description="last day to reject it (three business days)")


class FeeLineView(BaseModel):
    code: str = Field(
        description="recording, assessor_abstract, marginal_notation, surcharge, realty_transfer_fee or graduated_fee"
    )
    words: str = Field(description="how it was worked out, in the clerk's words")
    statute: str
    payer: Literal["grantor", "grantee", "filer"]
    cents: int
    amount: str = Field(description="the cents as a clerk writes them, e.g. $1,234.50")


class FeeStatementView(BaseModel):
    """What a filing pays (``landreg-fee-statement/v1``, docs/fees.md), worked out at examination under
    the schedule in force on the recorder's day of receipt, and never worked out again."""

    format: str
    schedule: dict[str, Any] = Field(description="the schedule's id and effective date, and each entry used")
    dayOfReceipt: str
    lines: list[FeeLineView]
    complete: bool
    totalCents: int | None = Field(description="null while an input the fees need is missing (see `missing`)")
    total: str | None
    byPayer: dict[str, int]
    missing: list[dict[str, str]] = Field(description="what the fees need and the filing leaves out: field, words")
    notes: list[str] = Field(description="for the clerk: e.g. an exemption the filing may mean to claim")


class FeeQuote(BaseModel):
    fees: FeeStatementView | None = Field(description="null: this registry has no fee schedule")
    receivedAt: str = Field(description="the time the quote assumes the filing is received (now)")


class FeeReportLine(BaseModel):
    code: str
    payer: str
    cents: int
    amount: str


class FeeReportInstrument(BaseModel):
    instrumentNumber: str
    recordedAt: str
    docType: str
    pageCount: int | None
    lines: list[FeeReportLine]
    totalCents: int
    complete: bool
    missing: list[str]


class FeeReport(BaseModel):
    """The fees of every instrument recorded on one recorder's day, with the totals a clerk
    reconciles with the till."""

    format: str
    day: str
    timezone: str
    count: int
    instruments: list[FeeReportInstrument]
    byLine: dict[str, int]
    byPayer: dict[str, int]
    totalCents: int
    total: str
    incomplete: int = Field(description="instruments recorded with an incomplete statement (e.g. no page count)")


class SubmissionView(BaseModel):
    """A filing as received and examined: waiting, recorded or rejected, with every finding."""

    id: int
    state: Literal["examining", "waiting", "recorded", "rejected", "withdrawn"]
    receivedAt: str
    submitter: str
    channel: Literal["api", "desk"]
    docType: str
    parcels: list[str]
    documentDigest: str
    findings: list[FindingView]
    grounds: list[FindingView]
    clocks: Clocks
    attestations: list[dict[str, Any]]
    confirmations: list[dict[str, Any]]
    instrumentNumber: str | None
    resolvedAt: str | None
    resolvedBy: str | None
    reason: str | None
    fees: FeeStatementView | None = None


class SubmissionResult(BaseModel):
    submission: SubmissionView
    fees: FeeStatementView | None = None


class SubmissionPage(BaseModel):
    data: list[SubmissionView]
    count: int


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000, description="why (audit-logged with your name)")


class Anchoring(BaseModel):
    status: AnchoringStatus = Field(
        description="pending: waiting for a batch; submitted: its batch is on chain, not yet at the "
        "confirmation depth; anchored: confirmed"
    )
    batch_id: int | None = Field(default=None, description="the batch id in the DeedRegistry contract")
    tx_hash: str | None = None
    block_number: int | None = None
    chain_id: int | None = None
    contract: str | None = None


class FlagView(BaseModel):
    id: int | None = Field(default=None, description="the flag's id (flags/title/{id}); absent in a filing's result")
    parcel: str
    kind: Literal["grantor_not_owner", "conflicting_conveyance"]
    message: str
    ownership: bool = Field(default=True, description="it bears on who owns the parcel: only recording an "
                            "instrument resolves it (a correction of the flagged deed, or a deed from the owners "
                            "of record to its grantees), never an acknowledgement")  # fmt: skip
    resolved_by: str | None = Field(default=None, description="the instrument whose recording resolved it")
    resolution: str | None = None


class ResolvedFlag(BaseModel):
    """A title flag this filing resolved by being recorded."""

    id: int
    instrument_number: str = Field(description="the flagged instrument")
    parcel: str
    kind: str


class MirrorFlagView(BaseModel):
    """A version the county's recorder system replaced or deleted (a parallel run's divergence)."""

    id: int
    kind: Literal["changed_in_legacy", "deleted_in_legacy"]
    instrument_number: str
    successor_number: str | None
    changed: dict[str, dict[str, Any]] | None  # field -> {"before": ..., "after": ...}
    flagged_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    ack_reason: str | None
    revoked_on_chain: bool
    #: why the anchoring worker does not revoke it on the chain (None once revoked, or when it will)
    revocation_held: str | None = None


class Acknowledgement(BaseModel):
    """Why a flag is acknowledged (audit-logged with who acknowledged it)."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000)


class Signature(BaseModel):
    alg: Literal["Ed25519"]
    kid: str
    value: str


class ReceiptFlag(BaseModel):
    kind: str
    parcel: str
    message: str


class ReceiptFeeLine(BaseModel):
    code: str
    payer: str
    cents: int


class ReceiptFees(BaseModel):
    lines: list[ReceiptFeeLine]
    totalCents: int | None = Field(description="null when the statement was incomplete (no page count was given)")


class Receipt(BaseModel):
    """Signed by the registry (Ed25519, key at /.well-known/landreg-receipt-keys.json) over the
    RFC 8785 canonical JSON of every member but ``signature``. New receipts are ``/v2``; ``/v1``
    receipts (without ``flags`` and ``fees``) keep verifying."""

    model_config = ConfigDict(populate_by_name=True)

    format: Literal["landreg-receipt/v1", "landreg-receipt/v2"]
    registry: str
    instrumentNumber: str
    book: str
    page: str
    recordedAt: str
    docType: str
    parcels: list[str]
    documentDigest: str
    commitment: str
    corrects: str | None
    # a landreg-commitment/v2 record's receipt also names its scheme and what v2 commits besides
    # (absent from a v1 record's receipt, which keeps its members and so its signature)
    commitmentScheme: str | None = None
    documentDate: str | None = None
    pageCount: int | None = None
    granteeMailingAddress: str | None = None
    preparer: str | None = None
    references: list[list[str | None]] | None = None
    # v2: the review flags raised at recording, and the fees (null: no fee statement recorded)
    flags: list[ReceiptFlag] | None = None
    fees: ReceiptFees | None = None
    signature: Signature


class FilingResult(BaseModel):
    receipt: Receipt
    anchoring: Anchoring
    flags: list[FlagView] = Field(description="chain-of-title problems: recorded, but flagged for review")
    resolved_flags: list[ResolvedFlag] = Field(default=[], description="earlier flags this instrument resolved")
    submission: SubmissionView | None = None
    fees: FeeStatementView | None = Field(default=None, description="the fees recorded with the instrument")


class ParcelLink(BaseModel):
    key: str
    municipality_code: str
    municipality: str
    block: str
    lot: str
    qualifier: str


class ReferenceView(BaseModel):
    """A cross-reference: what this instrument does to the one it names (by number, or by book and
    page for one recorded before the registry's book began)."""

    kind: Literal["acts_on_mortgage", "discharges_lien", "corrects"]
    instrument_number: str | None
    book: str | None
    page: str | None


class InstrumentView(BaseModel):
    instrument_number: str
    book: str
    page: str
    recorded_at: datetime
    doc_type: str
    grantors: list[str]
    grantees: list[str]
    parcels: list[ParcelLink]
    consideration: str | None
    legal_description: str
    document_digest: str
    corrects: str | None
    corrected_by: list[str]
    commitment: str
    anchoring: Anchoring
    flags: list[FlagView]
    #: the legacy system replaced (superseded) or deleted this version: it is not the current record
    mirror_flags: list[MirrorFlagView] = []
    superseded_by: str | None = None
    #: the commitment scheme of the record (v1 records have none of the fields below)
    commitment_scheme: str | None = None
    document_date: date | None = None
    page_count: int | None = None
    grantee_mailing_address: str | None = None
    preparer: str | None = None
    references: list[ReferenceView] = []
    supersedes: str | None = Field(
        default=None, description="commitment of the version this mirrored version supersedes"
    )
    return_to: str | None = Field(
        default=None,
        description=(
            "where the recorded original is returned: personal data, shown to clerks (who mail it) only; never committed"
        ),
    )


class InstrumentSummary(BaseModel):
    instrument_number: str
    book: str
    page: str
    recorded_at: datetime
    document_date: date | None = None
    doc_type: str
    grantors: list[str]
    grantees: list[str]
    parcels: list[str]
    anchoring: AnchoringStatus


class InstrumentPage(BaseModel):
    data: list[InstrumentSummary]
    count: int
    next_cursor: str | None = Field(description="pass as `cursor` to get the next page; null on the last page")
    next: str | None = Field(None, description="the next page's address (this search, `cursor` set); null on the last")


class Owner(BaseModel):
    names: list[str]
    instrument_number: str
    recorded_at: datetime


class Token(BaseModel):
    token_id: int
    contract: str
    chain_id: int
    status: AnchoringStatus


class ParcelView(BaseModel):
    key: str
    municipality_code: str
    municipality: str
    block: str
    lot: str
    qualifier: str
    owner_of_record: Owner | None
    token: Token | None
    instruments: int
    open_flags: int
    head_commitment: str | None
    mirror_flags: list[MirrorFlagView] = []  # of this parcel's instruments


class HistoryEntry(BaseModel):
    instrument_number: str
    recorded_at: datetime
    doc_type: str
    grantors: list[str]
    grantees: list[str]
    commitment: str
    previous: str | None = Field(description="commitment of this parcel's previous record (the hash-chain link)")
    title_link: bool = Field(description="this conveyance is a link of the chain of title")
    corrects: str | None
    corrected_by: list[str] = Field(default=[], description="the corrections re-recording this instrument")
    flags: list[FlagView]
    anchoring: Anchoring


class ParcelHistory(BaseModel):
    parcel: str
    entries: list[HistoryEntry]


class VerifiedField(BaseModel):
    name: str
    value: Any  # as committed
    shown: str  # in words: amounts with their unit ("$612,500.00 (US dollars)")
    unit: str | None = None


class VerdictFields(BaseModel):
    #: disclosed, and matching the commitment
    verified: list[VerifiedField]
    #: redacted: given as salted hashes only (the bundle proves a value was committed, not which)
    withheld: list[str]


class CorrectionView(BaseModel):
    number: str
    commitment: str
    blockNumber: int


class VerdictView(BaseModel):
    #: valid (checked on chain, pinned to the registry's trust root, at the registry's depth),
    #: invalid, unchecked (the math holds but the anchor was not checked: ?onchain=false, or no trust
    #: root published yet), unavailable (the node did not answer), or pending (the anchor holds but
    #: is not yet at the registry's confirmation depth)
    #: a title abstract's verdict (docs/title-abstract.md): complete, complete_as_of (complete up to
    #: its batch; newer batches and no newer head shown), stale (the parcel's head moved since), or
    #: pending, invalid, unchecked, unavailable as for a bundle
    status: Literal["valid", "invalid", "unchecked", "unavailable", "pending", "complete", "complete_as_of", "stale"]
    valid: bool
    reason: str
    summary: str
    checkedOnChain: bool
    #: a valid record's standing: current (as far as the bundle shows), corrected, superseded, deleted_in_legacy
    standing: str = "current"
    #: the standing in words, with what it rests on ("" unless valid)
    standingShown: str = ""
    #: the corrections shown by their own verified, anchored bundles
    correctedBy: list[CorrectionView] = []
    fields: VerdictFields | None = None
    #: evidence given that did not hold (a correction that does not name this record), and why
    warnings: list[str] = []
    details: dict[str, Any]
    #: a title abstract's: its records, the owners of record and the encumbrances derived, its limits
    abstract: dict[str, Any] | None = None


class ReceiptCheck(BaseModel):
    """A filing receipt and its record's proof bundle: a receipt proves something only with its anchor."""

    model_config = ConfigDict(extra="forbid")
    receipt: dict[str, Any]
    bundle: dict[str, Any]


class BatchView(BaseModel):
    chain_batch_id: int
    state: str
    records: int
    tokens: int
    tx_hash: str
    block_number: int | None
    gas_used: int | None
    created_at: datetime
    confirmed_at: datetime | None
    final: bool = False
    error: str | None = None


class HoldView(BaseModel):
    kind: str = Field(description="paused, missing_role, fee_ceiling, refused, chain_reset or permanent")
    reason: str
    since: datetime


class StatusView(BaseModel):
    pending_records: int
    oldest_pending_age_s: float | None
    anchored_records: int
    instruments: int
    chain_id: int | None
    contract: str | None
    confirmations_required: int
    recent_batches: list[BatchView]
    holds: list[HoldView] = Field(default_factory=list, description="why anchoring waits (filing goes on)")
    failed_batches: int = Field(0, description="batches that failed (their records were queued again)")
    chain_available: bool | None = Field(
        None, description="whether the chain's node answered lately (as this server last saw it; never waited on)"
    )
    chain_block: int | None = Field(None, description="the node's last reported head")


class StageView(BaseModel):
    name: str
    state: str = Field(description="planned, running, anchored, signed_off or rolled_back")
    selector: str = Field(description="which legacy records the stage takes")
    batch_size: int
    records_done: int
    batches_done: int
    remaining: int = Field(description="records the stage still has to migrate")
    reconciled_at: datetime | None
    reconciled_clean: bool | None
    signed_off_by: str | None
    signed_off_at: datetime | None
    gate: str = Field(description="what the stage waits for before it may run ('-' when nothing)")


class ReconciliationView(BaseModel):
    started_at: datetime
    finished_at: datetime | None
    actor: str
    stage: str | None
    clean: bool
    counts: dict[str, int]
    discrepancies: dict[str, int] = Field(description="discrepancy kind -> how many")


class MigrationView(BaseModel):
    legacy_records: int = Field(description="records loaded from the legacy book")
    legacy_unmigrated: int = Field(description="legacy records no stage or filing has committed yet")
    stages: list[StageView]
    reconciliations: list[ReconciliationView] = Field(description="the most recent runs, newest first")


class ErrorDetail(BaseModel):
    field: str
    rule: str
    message: str


class ErrorBody(BaseModel):
    code: str
    message: str
    hint: str | None = None
    fields: list[ErrorDetail] | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class QueueCounts(BaseModel):
    today: int = Field(description="submissions received on the recorder's day")
    mine: int = Field(description="submissions filed with the caller's key")
    waiting: int = Field(description="submissions waiting for a clerk's confirmation")
    open_flags: int = Field(description="title flags no recorded instrument has resolved")
    review: int = Field(description="waiting + open_flags")


class OpenFlagView(BaseModel):
    id: int
    instrument_number: str
    parcel: str
    kind: str
    message: str
    flagged_at: datetime
    ownership: bool


class ReviewQueue(BaseModel):
    submissions: list[SubmissionView]
    flags: list[OpenFlagView]
