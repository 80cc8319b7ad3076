"""The deed database: SQLAlchemy 2.0 typed models.

The legacy side (``municipalities``, ``parcels``, ``instruments`` with their parties and parcels)
is the authority. Instruments are append-only: a correction is a new instrument whose
``corrects_id`` points at the one it corrects; database triggers refuse UPDATE and DELETE.

The hybrid side records what was committed and anchored: ``commitments`` (one per instrument,
also append-only), the ``anchor_outbox`` filled in the same transaction as each filing, the
``anchor_batches`` with their Merkle trees and transactions, and ``batch_records`` placing each
instrument in its batch's tree. Every schema change is an Alembic revision (db/migrations).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from hybrid_store.core.records import DocType, ReferenceKind

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets 64-bit keys.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every backend (SQLite keeps no zone; we store and return UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: landreg stores timezone-aware UTC only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def table(model: type[Base]) -> Table:
    """A model's table, typed as one (Core statements on the bulk paths use the table directly)."""
    return cast(Table, model.__table__)


def _now() -> datetime:
    return datetime.now(UTC)


class Municipality(Base):
    """An NJ taxing district: 4-digit code = county code + district code (0223 = Hackensack)."""

    __tablename__ = "municipalities"

    code: Mapped[str] = mapped_column(String(4), primary_key=True)
    county_code: Mapped[str] = mapped_column(String(2))
    district_code: Mapped[str] = mapped_column(String(2))
    name: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(16))


class Parcel(Base):
    """A tax-map parcel. ``head_instrument_id`` is the last committed record of its history chain."""

    __tablename__ = "parcels"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    parcel_key: Mapped[str] = mapped_column(String(48), unique=True)
    municipality_code: Mapped[str] = mapped_column(ForeignKey("municipalities.code"))
    block: Mapped[str] = mapped_column(String(12))
    lot: Mapped[str] = mapped_column(String(12))
    qualifier: Mapped[str] = mapped_column(String(10), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)
    head_instrument_id: Mapped[int | None] = mapped_column(ForeignKey("instruments.id"))
    token_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    token_batch_id: Mapped[int | None] = mapped_column(ForeignKey("anchor_batches.id"))
    # the conveyance whose grantees are the owners of record (the head of the chain of title)
    owner_instrument_id: Mapped[int | None] = mapped_column(ForeignKey("instruments.id"))

    __table_args__ = (Index("ix_parcels_location", "municipality_code", "block", "lot"),)


class Instrument(Base):
    """A recorded instrument (deed, mortgage, ...). Append-only."""

    __tablename__ = "instruments"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    instrument_number: Mapped[str] = mapped_column(String(24), unique=True)
    book: Mapped[str] = mapped_column(String(6))
    page: Mapped[str] = mapped_column(String(6))
    doc_type: Mapped[str] = mapped_column(String(24))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    consideration_cents: Mapped[int | None] = mapped_column(BigInteger)
    legal_description: Mapped[str] = mapped_column(Text, default="")
    document_digest: Mapped[str] = mapped_column(String(64), index=True)  # examination looks twins up by it
    corrects_id: Mapped[int | None] = mapped_column(ForeignKey("instruments.id"), index=True)
    # 32 secret random bytes from which every field salt of the commitment derives
    salt_seed: Mapped[bytes] = mapped_column(LargeBinary(32))
    source: Mapped[str] = mapped_column(String(12), default="filing")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)
    # what a recorder indexes besides (revision 0013; NULL on instruments recorded before it, and
    # on any the filer left them off: a missing one is for examination to find, not the database)
    document_date: Mapped[date | None] = mapped_column(Date)  # the date the instrument bears
    page_count: Mapped[int | None] = mapped_column(Integer)
    grantee_mailing_address: Mapped[str | None] = mapped_column(Text)
    preparer: Mapped[str | None] = mapped_column(String(200))
    #: where the recorded original is mailed back: personal data, never committed, never published
    return_to: Mapped[str | None] = mapped_column(Text)

    parties: Mapped[list[InstrumentParty]] = relationship(
        order_by="(InstrumentParty.role, InstrumentParty.position)", lazy="selectin"
    )
    parcel_links: Mapped[list[InstrumentParcel]] = relationship(order_by="InstrumentParcel.position", lazy="selectin")
    corrects: Mapped[Instrument | None] = relationship(remote_side=[id], lazy="selectin")

    __table_args__ = (
        CheckConstraint(f"doc_type IN ({', '.join(repr(t.value) for t in DocType)})", name="doc_type"),
        CheckConstraint("consideration_cents IS NULL OR consideration_cents >= 0", name="consideration"),
        CheckConstraint("page_count IS NULL OR page_count > 0", name="page_count"),
        Index("ix_instruments_book_page", "book", "page"),
    )

    def names(self, role: str) -> list[str]:
        return [p.name for p in self.parties if p.role == role]


class InstrumentParty(Base):
    __tablename__ = "instrument_parties"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    instrument_id: Mapped[int] = mapped_column(ForeignKey("instruments.id"))
    role: Mapped[str] = mapped_column(String(8))
    position: Mapped[int] = mapped_column(SmallInteger)
    name: Mapped[str] = mapped_column(String(200), index=True)

    __table_args__ = (
        CheckConstraint("role IN ('grantor', 'grantee')", name="role"),
        UniqueConstraint("instrument_id", "role", "position"),
    )


class PartyNameKey(Base):
    """A party's name as the grantor-grantee index folds it (``jurisdictions.names``: words framed
    by spaces, `` SOREN KIERKEGAARD JR ``), beside ``instrument_parties`` rather than in it, since
    that table is append-only and the folding is the index's, not the record's. On PostgreSQL a
    full-text index over the words serves a search (``JOHN:* & SMITH:*``). Append-only, written with the party."""

    __tablename__ = "party_name_keys"

    instrument_id: Mapped[int] = mapped_column(ForeignKey("instruments.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(8), primary_key=True)
    position: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    name_key: Mapped[str] = mapped_column(Text)

    __table_args__ = (  # PostgreSQL only: SQLite has no full-text function and reads the keys in order
        Index("ix_party_name_keys_words", text("to_tsvector('simple'::regconfig, name_key)"),
              postgresql_using="gin").ddl_if(dialect="postgresql"),
    )  # fmt: skip


class InstrumentTerm(Base):
    """A term an instrument is found by (a folded word of a party's name, or ``@`` and a place its
    parcels lie in: ``hybrid_store.search_terms``) with the instrument's recording time, keyed in
    that order: a term's instruments newest first are an index scan that stops at the page.
    Append-only, written with the instrument (``recorded_at`` is the instrument's, which never
    changes). Byte order on PostgreSQL whatever the database's locale, so a prefix is a range."""

    __tablename__ = "instrument_terms"

    term: Mapped[str] = mapped_column(Text().with_variant(Text(collation="C"), "postgresql"), primary_key=True)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    instrument_id: Mapped[int] = mapped_column(ForeignKey("instruments.id"), primary_key=True)


class InstrumentReference(Base):
    """A structured cross-reference of an instrument: the mortgage an assignment, satisfaction or
    release acts on, the lien a discharge discharges, the instrument a correction corrects; by its
    number, or by book and page for one recorded before the registry's book began. Append-only."""

    __tablename__ = "instrument_references"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    instrument_id: Mapped[int] = mapped_column(ForeignKey("instruments.id"))
    position: Mapped[int] = mapped_column(SmallInteger)
    kind: Mapped[str] = mapped_column(String(24))
    target_number: Mapped[str | None] = mapped_column(String(24), index=True)
    target_book: Mapped[str | None] = mapped_column(String(6))
    target_page: Mapped[str | None] = mapped_column(String(6))

    __table_args__ = (
        CheckConstraint(f"kind IN ({', '.join(repr(k.value) for k in ReferenceKind)})", name="kind"),
        CheckConstraint(
            "(target_number IS NOT NULL AND target_book IS NULL AND target_page IS NULL) OR "
            "(target_number IS NULL AND target_book IS NOT NULL AND target_page IS NOT NULL)",
            name="target",
        ),
        UniqueConstraint("instrument_id", "position"),
    )


class InstrumentParcel(Base):
    __tablename__ = "instrument_parcels"

    instrument_id: Mapped[int] = mapped_column(ForeignKey("instruments.id"), primary_key=True)
    parcel_id: Mapped[int] = mapped_column(ForeignKey("parcels.id"), primary_key=True, index=True)
    position: Mapped[int] = mapped_column(SmallInteger)

    parcel: Mapped[Parcel] = relationship(lazy="joined")


class Commitment(Base):
    """The commitment made to an instrument; ``prev`` is its history link, one entry per parcel:
    ``[parcel_key, previous instrument number or null, previous commitment hex or null]``."""

    __tablename__ = "commitments"

    instrument_id: Mapped[int] = mapped_column(ForeignKey("instruments.id"), primary_key=True)
    scheme: Mapped[str] = mapped_column(String(32))
    commitment: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    prev: Mapped[list[Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)
    #: how the record entered the hybrid system (``hybrid_store.ledger.Source``)
    source: Mapped[str] = mapped_column(String(12), default="filing", server_default="filing")
    #: a mirrored record's new version: the instrument whose version this one supersedes
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("instruments.id"))
    #: the hashes it combined, every field but ``prev`` in the scheme's field order (32 bytes each):
    #: reconciliation names the fields of a tampered record by them; None before revision 0020
    field_hashes: Mapped[bytes | None] = mapped_column(LargeBinary)


class ChainDeployment(Base):
    """A DeedRegistry contract this database anchors to. The newest row is the active one."""

    __tablename__ = "chain_deployments"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    genesis_hash: Mapped[str] = mapped_column(String(66))
    contract_address: Mapped[str] = mapped_column(String(42))
    registrar: Mapped[str] = mapped_column(String(42))
    deploy_tx: Mapped[str | None] = mapped_column(String(66))
    deploy_block: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)
    #: keccak256 of the runtime code, and the DeedRegistry release it is (the trust root pins both)
    code_hash: Mapped[str | None] = mapped_column(String(66))
    registry_version: Mapped[int | None] = mapped_column(Integer)
    #: the blocks in which this contract was the registry's: anchors outside them are not ours
    active_from_block: Mapped[int | None] = mapped_column(BigInteger)
    active_until_block: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (UniqueConstraint("chain_id", "contract_address"),)


class KeyStatus:
    ACTIVE = "active"  # signs now
    RETIRED = "retired"  # signed until valid_until; what it signed then still verifies
    COMPROMISED = "compromised"  # nothing it signed verifies, whenever


class SigningKey(Base):
    """A public signing key with its validity window (receipts, trust-root versions). The private
    half lives encrypted in LANDREG_HOME/keys, never in the database."""

    __tablename__ = "signing_keys"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    kid: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(16))  # receipt | trust-root
    algorithm: Mapped[str] = mapped_column(String(16), default="Ed25519")
    public_key: Mapped[str] = mapped_column(String(128))  # base64url of the raw key
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default=KeyStatus.ACTIVE)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)

    __table_args__ = (
        Index("uq_signing_keys_one_active", "purpose", unique=True,
              sqlite_where=text("status = 'active'"), postgresql_where=text("status = 'active'")),
    )  # fmt: skip


class BatchState:
    SIGNED = "signed"  # transaction signed and stored, maybe not yet broadcast
    MINED = "mined"  # receipt with status 1 seen; waiting for confirmations
    CONFIRMED = "confirmed"  # confirmation depth reached: the records are anchored (final once finalized_at is set)
    FAILED = "failed"  # reverted or replaced; its records went back to the queue

    LIVE = (SIGNED, MINED, CONFIRMED)


class FailureKind:
    """Why a batch failed or anchoring holds (a decoded revert, or what the node said)."""

    PAUSED = "paused"  # the contract is paused: wait for unpause, then anchor again
    REPLAN = "replan"  # the batch id was taken (a race): plan the records again
    MISSING_ROLE = "missing_role"  # the registrar key lost its role: an operator must act
    FEE_CEILING = "fee_ceiling"  # the fee needed exceeds the configured ceiling
    REFUSED = "refused"  # the node refuses the transaction outright (funds, gas): a person must act
    NONCE_TAKEN = "nonce_taken"  # another transaction used the nonce
    LOST = "lost"  # the chain lost the batch (reconcile --heal)
    CHAIN_RESET = "chain_reset"  # the node is not the registry's chain (reset, replaced): resumes when it is again
    PERMANENT = "permanent"  # any other revert: anchoring holds until an operator releases it


class AnchorBatch(Base):
    """One Merkle batch and the transaction that anchors it.

    The raw signed transaction is stored before it is broadcast, so a crash at any point leaves
    enough to find or re-send exactly that transaction: never a second one for the same batch.
    """

    __tablename__ = "anchor_batches"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("chain_deployments.id"))
    chain_batch_id: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(12), default="outbox")
    state: Mapped[str] = mapped_column(String(12))
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    record_count: Mapped[int] = mapped_column(Integer)
    nodes: Mapped[bytes] = mapped_column(LargeBinary)
    parcel_root: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    parcel_nodes: Mapped[bytes | None] = mapped_column(LargeBinary)
    first_token_id: Mapped[int | None] = mapped_column(BigInteger)
    token_count: Mapped[int] = mapped_column(Integer, default=0)
    nonce: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(String(66), index=True)
    raw_tx: Mapped[bytes] = mapped_column(LargeBinary)
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    block_hash: Mapped[str | None] = mapped_column(String(66))
    gas_used: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    error_kind: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)
    mined_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: when its block became final (the node's finalized tag, or the finality depth); until then
    #: the worker re-checks that the block is still on the chain
    finalized_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # migration batches belong to a stage; a rolled-back batch is superseded (its records revoked
    # on chain) by the batch that re-anchors them
    stage_id: Mapped[int | None] = mapped_column(ForeignKey("migration_stages.id"), index=True)
    superseded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    supersedes_batch_id: Mapped[int | None] = mapped_column(ForeignKey("anchor_batches.id"))

    deployment: Mapped[ChainDeployment] = relationship(lazy="joined")

    __table_args__ = (
        CheckConstraint("state IN ('signed', 'mined', 'confirmed', 'failed')", name="state"),
        # one live batch per on-chain batch id; failed attempts keep their row for the record
        Index(
            "uq_anchor_batches_live_chain_batch",
            "deployment_id",
            "chain_batch_id",
            unique=True,
            sqlite_where=text("state != 'failed'"),
            postgresql_where=text("state != 'failed'"),
        ),
        Index("ix_anchor_batches_state", "state"),
    )


class TxAttempt(Base):
    """One signed attempt of a transaction, stored before it is sent: a batch's ``anchorBatch``, the
    revocation of a mirror flag's replaced version, or a rollback's revocation of a batch's leaves
    (exactly one of the three). Replacements keep
    the nonce and raise the fees; whichever attempt is mined wins (``hybrid_store.txmgr``)."""

    __tablename__ = "tx_attempts"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("anchor_batches.id"), index=True)
    mirror_flag_id: Mapped[int | None] = mapped_column(ForeignKey("mirror_flags.id"), index=True)
    #: a stage rollback's revocation of this batch's leaves (``migration_tools.stages.rollback``)
    revokes_batch_id: Mapped[int | None] = mapped_column(ForeignKey("anchor_batches.id"), index=True)
    nonce: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(String(66), unique=True)
    raw_tx: Mapped[bytes] = mapped_column(LargeBinary)
    max_fee_per_gas: Mapped[int] = mapped_column(BigInteger)
    max_priority_fee_per_gas: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)
    #: the chain's head when it was signed: a replacement waits for the head to move past the
    #: newest attempt, so a node that is not mining gets no flood of them
    created_at_block: Mapped[int | None] = mapped_column(BigInteger)
    #: the chain's head when the node first accepted it (None: not accepted yet)
    sent_at_block: Mapped[int | None] = mapped_column(BigInteger)
    send_error: Mapped[str | None] = mapped_column(Text)
    #: how often the node refused it outright (not a revert, not underpriced, not a used nonce) and
    #: when it was last refused: after a few, anchoring holds and it is re-sent once in a while
    refusals: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_refused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint(
            "(CASE WHEN batch_id IS NULL THEN 0 ELSE 1 END) + (CASE WHEN mirror_flag_id IS NULL THEN 0 ELSE 1 END)"
            " + (CASE WHEN revokes_batch_id IS NULL THEN 0 ELSE 1 END) = 1",
            name="one_subject",
        ),
    )


class AnchoringHold(Base):
    """Why the anchoring worker is not building batches: the contract is paused, the registrar
    lost its role, the fee ceiling is reached, or a permanent failure an operator must look at.
    The first three clear themselves when the cause goes; a permanent one with
    ``landreg chain release-hold``. Filings go on meanwhile; their records wait."""

    __tablename__ = "anchoring_holds"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    since: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cleared_by: Mapped[str | None] = mapped_column(String(160))

    __table_args__ = (
        Index("uq_anchoring_holds_one_open", "kind", unique=True, sqlite_where=text("cleared_at IS NULL"),
              postgresql_where=text("cleared_at IS NULL")),
    )  # fmt: skip


class BatchRecord(Base):
    """Places an instrument's commitment at ``tree_index`` of a batch's node array."""

    __tablename__ = "batch_records"

    batch_id: Mapped[int] = mapped_column(ForeignKey("anchor_batches.id"), primary_key=True)
    instrument_id: Mapped[int] = mapped_column(ForeignKey("instruments.id"), primary_key=True, index=True)
    tree_index: Mapped[int] = mapped_column(Integer)


class OutboxEntry(Base):
    """A committed instrument waiting to be anchored; written in the filing's own transaction.
    ``batch_id`` is set when a batch claims it and cleared again if that batch fails."""

    __tablename__ = "anchor_outbox"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    instrument_id: Mapped[int] = mapped_column(ForeignKey("instruments.id"), unique=True)
    enqueued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("anchor_batches.id"), index=True)


class TitleFlag(Base):
    """A filing recorded but flagged for review: its grantor is not the owner of record of a
    parcel (``grantor_not_owner``), or the owner already conveyed the parcel to someone else
    (``conflicting_conveyance``). Append-only; the flagged deed does not become a title link."""

    __tablename__ = "title_flags"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    instrument_id: Mapped[int] = mapped_column(ForeignKey("instruments.id"), index=True)
    parcel_id: Mapped[int] = mapped_column(ForeignKey("parcels.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)

    __table_args__ = (CheckConstraint("kind IN ('grantor_not_owner', 'conflicting_conveyance')", name="kind"),)


class TitleFlagResolution(Base):
    """A title flag resolved by recording an instrument (``instrument_id``): a correction of the
    flagged deed, or a deed that makes its grantees the owners of record. A new record, since
    ``title_flags`` is append-only; one per flag (a second loses on the unique index). A flag on who
    owns a parcel is never acknowledged away: only a recorded instrument resolves it. Append-only."""

    __tablename__ = "title_flag_resolutions"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    flag_id: Mapped[int] = mapped_column(ForeignKey("title_flags.id"), unique=True)
    instrument_id: Mapped[int] = mapped_column(ForeignKey("instruments.id"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)


class ApiKey(Base):
    """An API key: the public ``key_id`` names it, only a SHA-256 of its secret is stored."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    role: Mapped[str] = mapped_column(String(12))
    name: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)
    created_by: Mapped[str] = mapped_column(String(120))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_by: Mapped[str | None] = mapped_column(String(120))

    __table_args__ = (CheckConstraint("role IN ('clerk', 'auditor', 'operator', 'admin')", name="role"),)


class AuditEntry(Base):
    """Who did what, when: one row per write, in the write's own transaction. Append-only."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now, index=True)
    actor: Mapped[str] = mapped_column(String(160))
    role: Mapped[str] = mapped_column(String(12))
    action: Mapped[str] = mapped_column(String(48))
    target: Mapped[str] = mapped_column(String(160))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class AuditLink(Base):
    """An audit entry's place in the audit log's hash chain (``hybrid_store.audit_log``). Written
    unplaced in the entry's own transaction (the queue of entries to chain); the anchoring worker
    places it once (position, entry hash, checkpoint), and a placed link never changes."""

    __tablename__ = "audit_chain"

    entry_id: Mapped[int] = mapped_column(ForeignKey("audit_log.id"), primary_key=True)
    position: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    entry_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    checkpoint_id: Mapped[int | None] = mapped_column(ForeignKey("audit_checkpoints.id"), index=True)

    __table_args__ = (
        Index("ix_audit_chain_unplaced", "entry_id", sqlite_where=text("position IS NULL"),
              postgresql_where=text("position IS NULL")),
    )  # fmt: skip


class AuditCheckpoint(Base):
    """The audit chain's head after its first ``entries`` entries, anchored as a marker leaf of
    batch ``batch_id``; ``proof`` is that leaf's Merkle proof (sibling nodes, 32 bytes each), which
    reconciliation checks against the chain's root, never trusting this row. Append-only."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    entries: Mapped[int] = mapped_column(BigInteger)
    head: Mapped[bytes] = mapped_column(LargeBinary(32))
    batch_id: Mapped[int] = mapped_column(ForeignKey("anchor_batches.id"), index=True)
    proof: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)


class TitleNode(Base):
    """A node of the title state's sparse Merkle tree (docs/title-state.md), stored under the
    version (batch id) that wrote it and its hash, and written once: every version's root keeps the
    nodes under it, so nothing is ever updated or deleted. Version first, so a batch's nodes append
    at the end of the key's index. ``node`` is ``hybrid_store.title_states.encode_node`` (an inner
    node names its children's versions); a reader checks the hash of what it decodes, so an edited
    row is refused, never believed. Append-only."""

    __tablename__ = "title_nodes"

    version: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    node: Mapped[bytes] = mapped_column(LargeBinary)


class TitleVersion(Base):
    """The title state after batch ``batch_id``: applied onto the state of ``base_batch_id`` (None:
    the empty state), its ``root``, how many parcels it holds and how many the batch moved, and the
    Merkle proof of its marker leaf in the batch's tree (sibling nodes, 32 bytes each), which
    reconciliation checks against the batch's anchored root. Append-only."""

    __tablename__ = "title_versions"

    batch_id: Mapped[int] = mapped_column(ForeignKey("anchor_batches.id"), primary_key=True)
    base_batch_id: Mapped[int | None] = mapped_column(ForeignKey("anchor_batches.id"))
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    parcels: Mapped[int] = mapped_column(BigInteger)
    touched: Mapped[int] = mapped_column(Integer)
    proof: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)


class IdempotencyRecord(Base):
    """The first response to a request sent with an ``Idempotency-Key``; retries get it again."""

    __tablename__ = "idempotency_keys"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    key: Mapped[str] = mapped_column(String(128))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)

    __table_args__ = (UniqueConstraint("api_key_id", "key"),)


class Submission(Base):
    """A filing as received, before and after examination (``hybrid_store.examination``): kept
    whatever becomes of it, rejected ones with every ground. Mutable: its state, findings and
    confirmations change as clerks examine it; the filing and the time of receipt never do."""

    __tablename__ = "submissions"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    submitter: Mapped[str] = mapped_column(String(300))  # the actor's label, as the audit log names them
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"))
    channel: Mapped[str] = mapped_column(String(8))  # api or desk
    #: the filing as presented (canonical JSON of the validated content and the correction link)
    filing: Mapped[dict[str, Any]] = mapped_column(JSON)
    doc_type: Mapped[str] = mapped_column(String(24))
    document_digest: Mapped[str] = mapped_column(String(64), index=True)
    parcel_keys: Mapped[list[str]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(12), index=True)
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    attestations: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # who attested what, when
    confirmations: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # codes, who, when, why
    instrument_id: Mapped[int | None] = mapped_column(ForeignKey("instruments.id"), unique=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(300))
    resolution_reason: Mapped[str | None] = mapped_column(Text)
    #: the desk's one-time form token, consumed by the submission it made (a second POST finds it)
    form_token: Mapped[str | None] = mapped_column(String(64), unique=True)
    #: the receipt body handed out when it was recorded (a replay hands out the same)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: the fee statement worked out at examination (``hybrid_store.fees``), under the schedule in
    #: force on the day of receipt; written with the submission, never worked out again (None: the
    #: registry has no fee schedule, or the submission predates fees)
    fees: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (
        CheckConstraint("state IN ('examining', 'waiting', 'recorded', 'rejected', 'withdrawn')", name="state"),
        CheckConstraint("channel IN ('api', 'desk')", name="channel"),
    )


class InstrumentFee(Base):
    """The fees of a recorded instrument: its submission's statement, recorded with it in the same
    transaction and never changed (a new fee schedule changes no past filing's fees). ``day`` is the
    recorder's day it was recorded on (the profile's time zone): the daily fee report's key.
    Append-only."""

    __tablename__ = "instrument_fees"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    instrument_id: Mapped[int] = mapped_column(ForeignKey("instruments.id"), unique=True)
    day: Mapped[date] = mapped_column(Date, index=True)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    total_cents: Mapped[int | None] = mapped_column(BigInteger)  # None: the statement was incomplete
    statement: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)


class MigrationStage(Base):
    """A stage of the bulk migration: which legacy records (by municipality, dates, books), and
    how far it got. Stages run in order; each waits for the previous one's clean reconciliation
    and an operator's sign-off."""

    __tablename__ = "migration_stages"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    selector: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default="planned")
    batch_size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)
    created_by: Mapped[str] = mapped_column(String(160))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    records_done: Mapped[int] = mapped_column(BigInteger, default=0)
    batches_done: Mapped[int] = mapped_column(Integer, default=0)
    reconciled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reconciled_clean: Mapped[bool | None] = mapped_column()
    signed_off_by: Mapped[str | None] = mapped_column(String(160))
    signed_off_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint("state IN ('planned', 'running', 'anchored', 'signed_off', 'rolled_back')", name="state"),
    )


class Reconciliation(Base):
    """One run of ``landreg reconcile``: when, by whom, over what, and what it found."""

    __tablename__ = "reconciliations"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(160))
    stage_id: Mapped[int | None] = mapped_column(ForeignKey("migration_stages.id"))
    clean: Mapped[bool] = mapped_column()
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)


class Counter(Base):
    """Named sequences: instrument numbers per year, the current book and its next page."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


class RegistryPin(Base):
    """A fact about the registry fixed at first use and never changed silently (its jurisdiction:
    how parcels are named in every commitment)."""

    __tablename__ = "registry_pins"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(64))
    pinned_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)


class LegacySource(Base):
    """A county recorder database landreg follows (``landreg legacy attach``). It holds where the
    connection secret is (an environment variable's name or a file's path), never the secret."""

    __tablename__ = "legacy_sources"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    layout_name: Mapped[str] = mapped_column(String(64))
    layout_text: Mapped[str] = mapped_column(Text)  # the layout file as attached: sync reads exactly this
    layout_sha256: Mapped[str] = mapped_column(String(64))
    url_env: Mapped[str | None] = mapped_column(String(128))
    url_file: Mapped[str | None] = mapped_column(String(1024))
    dialect: Mapped[str] = mapped_column(String(32))
    jurisdiction: Mapped[str] = mapped_column(String(32))
    attached_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)
    attached_by: Mapped[str] = mapped_column(String(160))
    last_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_sync: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the last sync's report
    capture: Mapped[str | None] = mapped_column(String(16))  # how --follow sees changes: trigger | watermark
    cursor: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # where --follow is in the change capture
    last_sweep_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LegacyDocument(Base):
    """What landreg made of one legacy document: loaded (as ``instrument_id``) or quarantined (with
    the reason), and the fingerprint of the legacy rows it was made from, so a quarantined document
    is tried again when its rows change and an unchanged one is not read twice."""

    __tablename__ = "legacy_documents"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("legacy_sources.id"))
    legacy_key: Mapped[str] = mapped_column(String(64))
    fingerprint: Mapped[bytes] = mapped_column(LargeBinary(32))
    state: Mapped[str] = mapped_column(String(12))  # loaded | quarantined | deleted (from the legacy database)
    instrument_id: Mapped[int | None] = mapped_column(ForeignKey("instruments.id"))
    field: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")  # of ``instrument_id``
    #: the document's key as the legacy tables store it, where not already normalised (" 123", "abc")
    raw_keys: Mapped[list[str] | None] = mapped_column(JSON)

    __table_args__ = (
        UniqueConstraint("source_id", "legacy_key", name="uq_legacy_documents_key"),
        CheckConstraint("state IN ('loaded', 'quarantined', 'deleted')", name="state"),
    )


class MirrorFlag(Base):
    """A mirrored version the legacy database replaced (``changed_in_legacy``: ``successor_id`` is
    the new version, ``diff`` the fields that changed) or deleted (``deleted_in_legacy``). One per
    version; an operator acknowledges it with a reason. ``revoke_tx`` revoked the version's leaf
    on the chain, its reason naming the successor's commitment (or "deleted in legacy")."""

    __tablename__ = "mirror_flags"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("legacy_sources.id"))
    legacy_key: Mapped[str] = mapped_column(String(64))
    instrument_id: Mapped[int] = mapped_column(ForeignKey("instruments.id"), unique=True)
    kind: Mapped[str] = mapped_column(String(24))
    successor_id: Mapped[int | None] = mapped_column(ForeignKey("instruments.id"))
    diff: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(160))
    ack_reason: Mapped[str | None] = mapped_column(Text)
    revoke_tx: Mapped[str | None] = mapped_column(String(66))
    revoked_block: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        CheckConstraint("kind IN ('changed_in_legacy', 'deleted_in_legacy')", name="kind"),
        Index("ix_mirror_flags_legacy_key", "source_id", "legacy_key"),
    )


__all__ = [
    "table",
    "AnchorBatch",
    "AnchoringHold",
    "ApiKey",
    "AuditCheckpoint",
    "AuditEntry",
    "InstrumentReference",
    "AuditLink",
    "Base",
    "BatchRecord",
    "MirrorFlag",
    "TitleFlagResolution",
    "BatchState",
    "ChainDeployment",
    "Commitment",
    "Counter",
    "FailureKind",
    "IdempotencyRecord",
    "Instrument",
    "LegacyDocument",
    "LegacySource",
    "InstrumentParcel",
    "InstrumentTerm",
    "MigrationStage",
    "Reconciliation",
    "RegistryPin",
    "Submission",
    "InstrumentParty",
    "Municipality",
    "OutboxEntry",
    "PartyNameKey",
    "Parcel",
    "TitleFlag",
    "TxAttempt",
    "UTCDateTime",
]
