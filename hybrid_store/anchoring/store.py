"""Storing a batch: the batch row with its signed transaction, its records' places, its parcel
tokens, the audit log's links, its title state and its manifest, in the caller's one database transaction (nothing
is sent yet). Because the signed bytes are stored before they are sent, a crash at any point
leaves either nothing or exactly one transaction to find or re-send."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from hybrid_store import audit_log, manifests, title_states
from hybrid_store.anchoring.plan import LeafKind, Plan
from hybrid_store.chain.types import SignedTx
from hybrid_store.core import merkle
from hybrid_store.crashpoints import crashpoint
from hybrid_store.db.bulk import copies, copy_binary
from hybrid_store.db.engine import bulk_execute, chunks, select_in
from hybrid_store.db.models import (
    AnchorBatch,
    BatchState,
    ChainDeployment,
    InstrumentParcel,
    OutboxEntry,
    Parcel,
    table,
)
from hybrid_store.errors import ChainError
from hybrid_store.txmgr import TxManager

_ASSIGN_TOKENS = (
    update(table(Parcel))
    .where(table(Parcel).c.id == bindparam("pid"))
    .values(token_id=bindparam("token"), token_batch_id=bindparam("batch"))
)


def untokenized_parcels(
    s: Session, instrument_ids: Iterable[int], parcel_ids: Iterable[int] | None = None
) -> list[tuple[int, str]]:
    """(id, key) of the parcels of these records that have no token yet (``parcel_ids``: the
    records' parcels, when the caller knows them already)."""
    if parcel_ids is None:  # two index lookups; a join here lets SQLite scan every untokenized parcel
        parcel_ids = {pid for (pid,) in select_in(s, select(InstrumentParcel.parcel_id),
                                                   InstrumentParcel.instrument_id, list(instrument_ids))}  # fmt: skip
    rows = select_in(s, select(Parcel.id, Parcel.parcel_key).where(Parcel.token_id.is_(None)), Parcel.id,
                      sorted(set(parcel_ids)))  # fmt: skip
    return [(pid, key) for pid, key in rows]


@dataclass(frozen=True)
class Target:
    """The contract a worker anchors to: its deployment row, chain and address."""

    deployment_id: int
    chain_id: int
    contract: str

    @classmethod
    def of(cls, deployment: ChainDeployment) -> Target:
        return cls(deployment.id, deployment.chain_id, deployment.contract_address)


def store_batch(
    s: Session, plan: Plan, signed: SignedTx, first_token: int | None, parcel_tree: merkle.StandardTree | None, *,
    target: Target, head: int | None, now: datetime, manifest_dir: Path | None,
) -> AnchorBatch:  # fmt: skip
    batch = AnchorBatch(
        deployment_id=target.deployment_id, chain_batch_id=plan.chain_batch_id, source=plan.source,
        stage_id=plan.stage_id, supersedes_batch_id=plan.supersedes_batch_id,
        state=BatchState.SIGNED, root=plan.root, record_count=len(plan.leaves),  # leaves, markers included
        nodes=merkle.nodes_to_bytes(plan.nodes),
        parcel_root=parcel_tree.root if parcel_tree else None,
        parcel_nodes=merkle.nodes_to_bytes(parcel_tree.nodes) if parcel_tree else None,
        first_token_id=first_token, token_count=len(plan.new_parcels),
        nonce=signed.nonce, tx_hash=signed.tx_hash, raw_tx=signed.raw, created_at=now,
    )  # fmt: skip
    s.add(batch)
    s.flush()
    conn = s.connection()
    TxManager.store_first(conn, batch.id, signed, head, now)
    last = plan.tree_index(0)  # a hot loop of a migration batch: no call per leaf
    placed = [(batch.id, leaf.instrument_id, last - k) for k, leaf in enumerate(plan.leaves)
              if leaf.instrument_id is not None]  # record leaves; markers have no instrument  # fmt: skip
    if copies(conn, len(placed)):
        copy_binary(
            conn, "batch_records", ("batch_id", "instrument_id", "tree_index"), ("int8", "int8", "int4"), placed
        )
    else:
        bulk_execute(conn, "INSERT INTO batch_records (batch_id, instrument_id, tree_index) VALUES (?, ?, ?)", placed)
    claimed = 0
    for chunk in chunks(list(plan.outbox_ids)):
        claimed += conn.execute(
            update(table(OutboxEntry))
            .where(table(OutboxEntry).c.id.in_(chunk), table(OutboxEntry).c.batch_id.is_(None))
            .values(batch_id=batch.id)
        ).rowcount
    if claimed != len(plan.outbox_ids):  # only possible with a second worker: give way
        raise ChainError("records of this batch were claimed by another anchoring worker; run only one")
    crashpoint("anchor:building")  # inside the transaction: a kill here must leave nothing behind
    if plan.new_parcels:
        assert first_token is not None
        conn.execute(_ASSIGN_TOKENS, [{"pid": pid, "token": first_token + i, "batch": batch.id}
                                      for i, (pid, _) in enumerate(plan.new_parcels)])  # fmt: skip
    position = plan.marker(LeafKind.AUDIT)
    if plan.audit is not None and position is not None:
        proof = merkle.proof_from_nodes(plan.nodes, plan.tree_index(position))
        audit_log.store(conn, plan.audit, batch.id, proof, now)
    position = plan.marker(LeafKind.TITLE)
    if plan.title is not None and position is not None:
        proof = merkle.proof_from_nodes(plan.nodes, plan.tree_index(position))
        title_states.store(conn, plan.title, batch.id, proof, now)
    if manifest_dir is not None:
        manifests.write(manifest_dir, manifests.from_tree(
            target.chain_id, target.contract, plan.chain_batch_id, plan.root,
            [(leaf.label, leaf.value) for leaf in plan.leaves]))  # fmt: skip
    return batch


def stored_tx(batch: AnchorBatch) -> SignedTx:
    """The signed transaction stored with ``batch`` (its newest attempt's bytes)."""
    return SignedTx(raw=batch.raw_tx, tx_hash=batch.tx_hash, nonce=batch.nonce)
