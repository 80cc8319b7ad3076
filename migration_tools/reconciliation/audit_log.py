"""Reconciling the audit log: is it still what was anchored?

The chain of ``hybrid_store.audit_log`` is recomputed from the log's rows, and every checkpoint
whose batch is on chain is checked against the chain's root, through the checkpoint's Merkle
proof or the batch's manifest. The checkpoint rows, the stored entry hashes and the proofs are
the database's word and are never believed: only a head that proves against the chain's root
counts. A head anchored once covers every entry before it, so:

* ``audit_log_altered``: an entry changed after it was chained (named when its stored hash was
  left alone), a head that no longer recomputes to what was anchored (the range is named), a
  checkpoint rewritten, an entry that was never chained (written behind the service's back);
* ``audit_log_truncated``: chained entries deleted, positions missing, or a head a batch's manifest
  lists that no checkpoint in the database accounts for (without the manifest, ``reconciliation.recompute``
  reports the batch's unaccounted leaf).

Entries not yet under an anchored head are counted as pending, never called tampering.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import func, select

from hybrid_store.audit_log import as_document
from hybrid_store.core import audit as chain
from hybrid_store.core import merkle
from hybrid_store.core.hashing import to_hex
from hybrid_store.db.engine import Database
from hybrid_store.db.models import AuditCheckpoint, AuditEntry, AuditLink
from migration_tools.reconciliation.recompute import Discrepancy

ALTERED, TRUNCATED = "audit_log_altered", "audit_log_truncated"
_NAMED = 20  # entries named one by one; beyond that, a count


@dataclass(frozen=True)
class Checkpoint:
    id: int
    entries: int
    head: bytes
    batch_id: int  # the database's batch id
    proof: tuple[bytes, ...]

    @property
    def marker(self) -> bytes:
        return chain.head_marker(self.head, self.entries)


@dataclass
class AuditFindings:
    entries: int = 0  # rows in the audit log
    chained: int = 0  # placed in the chain
    anchored: int = 0  # covered by the newest head that proves against the chain
    discrepancies: list[Discrepancy] = field(default_factory=list)

    @property
    def pending(self) -> int:
        return max(0, self.entries - self.anchored)


def checkpoints(db: Database) -> list[Checkpoint]:
    with db.read() as s:
        rows = s.execute(
            select(AuditCheckpoint.id, AuditCheckpoint.entries, AuditCheckpoint.head, AuditCheckpoint.batch_id,
                   AuditCheckpoint.proof).order_by(AuditCheckpoint.id)
        ).all()  # fmt: skip
    out = []
    for r in rows:
        proof = bytes(r.proof)
        nodes = tuple(proof[i : i + 32] for i in range(0, len(proof) - len(proof) % 32, 32))
        out.append(Checkpoint(r.id, int(r.entries), bytes(r.head), r.batch_id, nodes))
    return out


def check(
    db: Database,
    points: list[Checkpoint],
    on_chain: dict[int, tuple[int, bytes]],
    manifest_audit: dict[int, list[tuple[int, bytes]]],
) -> AuditFindings:
    """``on_chain``: database batch id -> (chain batch id, the chain's root) of every batch the chain
    holds; ``manifest_audit``: the audit markers each batch's manifest lists (batches with a
    manifest only; without one, a leaf no checkpoint accounts for is found by ``reconciliation.recompute``)."""
    found = AuditFindings()
    say = found.discrepancies.append
    wanted = {p.entries for p in points}
    heads, found.chained = _recompute(db, wanted, found)
    with db.read() as s:
        found.entries = s.scalar(select(func.count()).select_from(AuditEntry)) or 0
    by_batch = {p.batch_id: p for p in points}

    first_bad: tuple[Checkpoint, int] | None = None  # the first anchored head that fails, and the good one before
    bad_after = 0
    good_before = 0
    for p in points:
        if p.batch_id not in on_chain:
            continue  # its batch is not on chain (yet, or failed): a later head covers its entries
        chain_batch, root = on_chain[p.batch_id]
        listed = {m for n, m in manifest_audit.get(p.batch_id, []) if n == p.entries}
        recomputed = heads.get(p.entries)
        if recomputed is not None and _proven(chain.head_marker(recomputed, p.entries), p, root, listed):
            if first_bad is None:
                found.anchored = max(found.anchored, p.entries)
                good_before = p.entries
            continue
        if first_bad is not None:
            bad_after += 1
            continue
        first_bad = (p, good_before)
        if p.entries > found.chained:
            say(Discrepancy(TRUNCATED, f"batch {chain_batch} anchored the audit log's head after {p.entries:,} entries, "
                            f"but only {found.chained:,} remain chained", chain_batch))  # fmt: skip
        elif _proven(p.marker, p, root, listed):
            say(Discrepancy(
                ALTERED, f"audit log entries {good_before + 1:,} to {p.entries:,} (chain positions) no longer hash to "
                f"the head anchored in batch {chain_batch}: an entry among them was changed, removed or inserted",
                chain_batch, expected=to_hex(p.head), found=to_hex(recomputed) if recomputed else None))  # fmt: skip
        else:
            say(Discrepancy(
                ALTERED, f"the audit checkpoint of batch {chain_batch} ({p.entries:,} entries) is not what the batch "
                "anchored: the checkpoint was rewritten", chain_batch, found=to_hex(p.head)))  # fmt: skip
    if bad_after:
        found.discrepancies[-1].message += f" (and the {bad_after:,} anchored heads after it fail with it)"

    for batch_id, (chain_batch, _) in sorted(on_chain.items(), key=lambda kv: kv[1][0]):
        anchored = manifest_audit.get(batch_id)  # what the batch anchored, by its manifest
        if anchored and batch_id not in by_batch:
            say(Discrepancy(TRUNCATED, f"batch {chain_batch} anchored the audit log's head after {anchored[0][0]:,} "
                            "entries, but the database holds no checkpoint for it (deleted with the entries it "
                            "covered?)", chain_batch))  # fmt: skip
    return found


def _proven(marker: bytes, p: Checkpoint, root: bytes, listed: set[bytes]) -> bool:
    """Whether ``marker`` is anchored under the chain's ``root``: listed in the batch's manifest
    (which rebuilds that root), or proven by the checkpoint's Merkle proof."""
    return marker in listed or merkle.verify(root, merkle.commitment_leaf(marker), p.proof)


def _recompute(db: Database, wanted: set[int], found: AuditFindings) -> tuple[dict[int, bytes], int]:
    """The recomputed head at each count in ``wanted`` (absent where an entry is missing before it),
    and the number of placed links; per-entry findings go to ``found``."""
    say = found.discrepancies.append
    heads: dict[int, bytes] = {}
    head: bytes | None = chain.GENESIS
    expected_position = 0
    changed: list[str] = []
    deleted: list[str] = []
    log, links = AuditEntry.__table__, AuditLink.__table__
    stmt = (
        select(links.c.position, links.c.entry_id, links.c.entry_hash, log)
        .select_from(links.outerjoin(log, log.c.id == links.c.entry_id))
        .where(links.c.position.is_not(None))
        .order_by(links.c.position)
    )
    placed = 0
    with db.read() as s:
        for row in s.execute(stmt.execution_options(yield_per=5_000)):
            placed += 1
            if row.position != expected_position:
                say(Discrepancy(TRUNCATED, f"audit chain positions {expected_position:,} to {row.position - 1:,} are "
                                "missing (links deleted)"))  # fmt: skip
                head = None
            expected_position = row.position + 1
            if row.id is None:
                deleted.append(f"{row.entry_id}")
                head = None
            else:
                hashed = chain.entry_hash(as_document(row))  # type: ignore[arg-type]
                if row.entry_hash is not None and bytes(row.entry_hash) != hashed:
                    changed.append(f"{row.id} ({row.action} {row.target})")
                head = chain.link(head, hashed) if head is not None else None
            if head is not None and expected_position in wanted:
                heads[expected_position] = head
        if changed:
            say(Discrepancy(ALTERED, f"audit log entries changed after they were chained: {_names(changed)}"))
        if deleted:
            say(Discrepancy(TRUNCATED, f"chained audit log entries deleted: ids {_names(deleted)}"))
        unchained = ~select(links.c.entry_id).where(links.c.entry_id == log.c.id).exists()
        never = s.scalar(select(func.count()).select_from(log).where(unchained)) or 0
        if never:
            first = s.scalars(select(log.c.id).where(unchained).order_by(log.c.id).limit(_NAMED)).all()
            more = f" and {never - len(first):,} more" if never > len(first) else ""
            say(Discrepancy(ALTERED, "audit log entries that were never chained (written behind the service's back): "
                            f"ids {', '.join(map(str, first))}{more}"))  # fmt: skip
    return heads, placed


def _names(items: Iterable[str]) -> str:
    items = list(items)
    shown = ", ".join(items[:_NAMED])
    return shown + (f" and {len(items) - _NAMED:,} more" if len(items) > _NAMED else "")
