"""What every table is, in one place: append-only, placed once, or mutable, why, and what the
runtime role (the service and its workers) may do to it. Grants follow from this declaration, deny
by default (``hybrid_store.db.roles``), and ``tests/test_db.py`` reads the live schema after
``db upgrade``: a table that declares nothing fails the build, and every append-only table must
refuse UPDATE, DELETE and TRUNCATE from every role.

* **append-only**: rows are history; triggers refuse UPDATE, DELETE and (PostgreSQL) TRUNCATE to
  everyone, the owner and the superuser included. The runtime role may SELECT and INSERT.
* **placed once**: a row is written, then completed once (the ``completes`` columns, each set once
  from NULL); triggers refuse every other change, every DELETE and TRUNCATE.
* **mutable**: rows change in the ordinary course; the runtime role gets exactly the statements
  (and, for UPDATE, the columns) named here, nothing else.

The owner and a superuser can still switch triggers off (``ALTER TABLE ... DISABLE TRIGGER``,
``session_replication_role = replica``): that power is documented in docs/operations.md, and
reconciliation is what catches its use.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    APPEND_ONLY = "append-only"
    PLACED_ONCE = "placed-once"
    MUTABLE = "mutable"


@dataclass(frozen=True)
class TableRule:
    kind: Kind
    why: str
    #: what the runtime role may do beyond SELECT (which it always has)
    insert: bool = False
    update: tuple[str, ...] = ()  # columns; () = no UPDATE at all
    delete: bool = False


def append_only(why: str) -> TableRule:
    return TableRule(Kind.APPEND_ONLY, why, insert=True)


def placed_once(why: str, completes: tuple[str, ...]) -> TableRule:
    return TableRule(Kind.PLACED_ONCE, why, insert=True, update=completes)


def mutable(why: str, *, insert: bool = False, update: tuple[str, ...] = (), delete: bool = False) -> TableRule:
    return TableRule(Kind.MUTABLE, why, insert=insert, update=update, delete=delete)


_BATCH_PROGRESS = (
    "state", "tx_hash", "block_number", "block_hash", "gas_used", "error", "error_kind", "mined_at", "confirmed_at",
    "finalized_at", "superseded_at",
)  # fmt: skip
_STAGE_PROGRESS = (
    "selector", "batch_size", "state", "started_at", "finished_at", "records_done", "batches_done", "reconciled_at",
    "reconciled_clean", "signed_off_by", "signed_off_at",
)  # fmt: skip
_LEGACY_SOURCE_STATE = (
    "layout_name", "layout_text", "layout_sha256", "url_env", "url_file", "dialect", "jurisdiction", "attached_at",
    "attached_by", "last_sync_at", "last_sync", "capture", "cursor", "last_sweep_at",
)  # fmt: skip
_LEGACY_DOCUMENT_STATE = (
    "fingerprint", "state", "instrument_id", "field", "reason", "synced_at", "version", "raw_keys",
)  # fmt: skip

TABLES: dict[str, TableRule] = {
    # --- the record itself ------------------------------------------------------------------------
    "instruments": append_only("a recorded instrument; a correction is a new instrument"),
    "instrument_parties": append_only("the grantors and grantees of a recorded instrument"),
    "party_name_keys": append_only(
        "each party's name as the grantor-grantee index folds it, written with the party (revision 0021)"
    ),
    "instrument_parcels": append_only("the parcels a recorded instrument names"),
    "instrument_terms": append_only(
        "the terms a recorded instrument is found by (its parties' folded words, its places) in recording order, "
        "written with the instrument (revision 0022)"
    ),
    "instrument_references": append_only(
        "a recorded instrument's cross-references (the mortgage it acts on, the lien it discharges, what it "
        "corrects): part of the recorded instrument; a correction is a new instrument"
    ),
    "commitments": append_only("what was committed to, and anchored, for each instrument"),
    "title_flags": append_only("a filing flagged for review stays flagged; review is a new record"),
    "title_flag_resolutions": append_only(
        "a title flag resolved by recording an instrument (which one, and why): never rewritten"
    ),
    "instrument_fees": append_only(
        "the fee statement recorded with an instrument (worked out at examination): never recomputed or rewritten"
    ),
    "registry_pins": append_only("facts fixed at first use (the jurisdiction): never changed silently"),
    "parcels": mutable(
        "the parcel list; its heads move as instruments are recorded and tokens are minted",
        insert=True,
        # parcel_key: the filing's upsert names it (``ON CONFLICT DO UPDATE SET parcel_key = excluded``,
        # a no-op that returns the id); commitments carry every key, so reconciliation sees a rename
        update=("head_instrument_id", "owner_instrument_id", "token_id", "token_batch_id", "parcel_key"),
    ),
    "municipalities": mutable(
        "reference data; pinning a jurisdiction at first use replaces the places", insert=True, delete=True
    ),
    "counters": mutable("instrument numbers, books and pages, the worker handover", insert=True, update=("value",)),
    "submissions": mutable(
        "a filing as received and examined: its state, findings, confirmations and outcome change as clerks examine "
        "it (what was filed, when, by whom and its form token do not)",
        insert=True,
        update=(
            "state",
            "findings",
            "confirmations",
            "instrument_id",
            "resolved_at",
            "resolved_by",
            "resolution_reason",
            "response",
        ),
    ),  # fmt: skip
    # --- anchoring ----------------------------------------------------------------------------------
    "batch_records": append_only("which instrument sits where in which batch's tree: proofs depend on it"),
    "tx_attempts": placed_once(
        "each signed attempt of a transaction (a batch, a revocation), kept as signed; only the block the node "
        "accepted it in is filled in later (once), and the node's outright refusals of it are counted",
        completes=("sent_at_block", "refusals", "send_error", "last_refused_at"),
    ),
    "anchor_batches": mutable(
        "a batch's transaction moves through signed, mined, confirmed (or failed); its tree never changes",
        insert=True,
        update=_BATCH_PROGRESS,
    ),
    "anchor_outbox": mutable(
        "records waiting for a batch; a failed batch gives them back", insert=True, update=("batch_id",)
    ),
    "anchoring_holds": mutable(
        "why anchoring waits; a hold is cleared when its cause goes", insert=True, update=("cleared_at", "cleared_by")
    ),
    "chain_deployments": mutable(
        "the contracts this registry anchored to; an upgrade closes the old one's block range",
        insert=True,
        update=("code_hash", "registry_version", "active_from_block", "active_until_block"),
    ),
    # --- who may do what ---------------------------------------------------------------------------
    "api_keys": mutable("issued and revoked by key administration (the owner role), never by the service"),
    "signing_keys": mutable("made, rotated and marked compromised by key administration (the owner role) only"),
    # --- the audit trail ---------------------------------------------------------------------------
    "audit_log": append_only("who did what, when"),
    "audit_chain": placed_once(
        "an audit entry's link, placed once in the hash chain by the anchoring worker",
        completes=("position", "entry_hash", "checkpoint_id"),
    ),
    "audit_checkpoints": append_only("the audit chain's anchored heads"),
    "title_nodes": append_only(
        "the title state's tree nodes, each stored under the version that wrote it and its hash: every anchored "
        "state keeps the nodes under its root, so a node is written once and never changed"
    ),
    "title_versions": append_only("the title state after each batch: its root, its base, its marker's proof"),
    "idempotency_keys": mutable("the first response to a retried request (a cache an operator may prune)", insert=True),
    # --- migration and the legacy mirror -------------------------------------------------------------
    "migration_stages": mutable("a bulk migration's stages and their progress", insert=True, update=_STAGE_PROGRESS),
    "reconciliations": append_only("each reconciliation run and what it found"),
    "legacy_sources": mutable(
        "the recorder databases followed (attached again: a new layout), and how far each sync and follower got",
        insert=True,
        update=_LEGACY_SOURCE_STATE,
    ),
    "legacy_documents": mutable(
        "what each legacy document became; it changes when the legacy rows change",
        insert=True,
        update=_LEGACY_DOCUMENT_STATE,
    ),
    "mirror_flags": mutable(
        "a replaced or deleted mirrored version; acknowledged and revoked later",
        insert=True,
        update=("acknowledged_at", "acknowledged_by", "ack_reason", "revoke_tx", "revoked_block"),
    ),
    # --- the schema -------------------------------------------------------------------------------------
    "alembic_version": mutable("the schema's revision: written by `landreg db upgrade` (the owner) only"),
}

#: sequences the runtime role moves with setval (numbering catches up with imported numbers)
RUNTIME_SETVAL_SEQUENCES = ("landreg_instrument_seq", "landreg_page_seq")


def of_kind(kind: Kind) -> tuple[str, ...]:
    return tuple(name for name, rule in TABLES.items() if rule.kind is kind)


APPEND_ONLY_TABLES = of_kind(Kind.APPEND_ONLY)
PLACED_ONCE_TABLES = of_kind(Kind.PLACED_ONCE)
