"""Checking anchored batches against their roots: the part of reconciliation that runs in the
hashing processes, a few batches per task, so that memory stays per batch and both cores work.

Kept light on imports (no chain or web stack), like ``hashing_pool``, which runs it. A task is
checked against a root given to it (the database's); reconciliation accepts the outcome only if
that root is the chain's, and checks the batch again against the chain's root otherwise.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from hybrid_store import manifests
from hybrid_store.anchoring.plan import SUPERSEDES
from hybrid_store.audit_log import MANIFEST_PREFIX
from hybrid_store.core import commitment as commitments
from hybrid_store.core import merkle
from hybrid_store.core.commitment import rollback_marker
from hybrid_store.core.hashing import to_hex
from hybrid_store.db.engine import Database
from hybrid_store.db.records import driver_rows, ids_clause, ids_param, load_records
from hybrid_store.errors import DamagedRecord
from hybrid_store.title_states import MANIFEST_PREFIX as TITLE
from migration_tools import hashing_pool

AUDIT = MANIFEST_PREFIX  # the manifest's name for an audit-head marker leaf ("AUDIT <entries>")
GROUP_RECORDS = 5_000  # small batches (the clerks' filings) are checked several to a task


@dataclass
class Discrepancy:
    kind: str
    message: str
    batch_id: int | None = None
    instrument_number: str | None = None
    expected: str | None = None
    found: str | None = None
    legacy_key: str | None = None  # three-way reconciliation: the legacy database's document
    #: a tampered record: the fields whose values no longer match the hashes they were committed under
    fields: list[str] | None = None


@dataclass(frozen=True)
class BatchTask:
    id: int  # the database's batch id
    chain_batch_id: int
    records: int
    root: bytes  # the root to check against
    prior_root: bytes | None = None  # a re-anchoring batch's superseded root (its marker leaf)
    audit_marker: bytes | None = None  # the audit-head marker leaf the database says the batch holds
    title_marker: bytes | None = None  # the title-state marker leaf the database says the batch holds


@dataclass
class BatchOutcome:
    task: BatchTask
    records: int = 0
    verified: int = 0
    discrepancies: list[Discrepancy] = field(default_factory=list)
    marker_ok: bool | None = None  # a re-anchoring batch: whether what it anchored names its prior root
    #: the audit-head markers the batch's manifest lists ((entries, marker)); None without a manifest
    manifest_audit: list[tuple[int, bytes]] | None = None


def group(tasks: list[BatchTask], parts: int = 8) -> list[list[BatchTask]]:
    """Consecutive tasks, several to a group up to ``GROUP_RECORDS`` records, and in at least
    ``parts`` groups where the batches allow, so that every hashing process has work."""
    size = max(1, min(GROUP_RECORDS, sum(t.records for t in tasks) // parts))
    groups: list[list[BatchTask]] = []
    held = size
    for t in tasks:
        if held >= size:
            groups.append([])
            held = 0
        groups[-1].append(t)
        held += t.records
    return groups


def check_group(work: tuple[str | None, list[BatchTask]], db: Database | None = None) -> list[BatchOutcome]:
    """Check each batch of ``work`` (manifest directory, tasks) from the database's current rows."""
    manifest_dir, tasks = work
    db = db or hashing_pool.database()
    members: dict[int, list[tuple[int, str]]] = {t.id: [] for t in tasks}
    with db.read() as s:
        conn = s.connection()
        sql = ("SELECT br.batch_id, br.instrument_id, i.instrument_number FROM batch_records br "
               "JOIN instruments i ON i.id = br.instrument_id WHERE " + ids_clause(conn)("br.batch_id"))  # fmt: skip
        for bid, iid, number in driver_rows(conn, sql, ids_param(conn, list(members))):
            members[bid].append((iid, number))
    ids = [iid for recs in members.values() for iid, _ in recs]
    recomputed = {iid: c for iid, _, c in hashing_pool.recompute_chunk(ids, db)} if ids else {}
    directory = Path(manifest_dir) if manifest_dir else None
    return [_check(t, members[t.id], recomputed, directory, db) for t in tasks]


def _check(
    t: BatchTask, recs: list[tuple[int, str]], recomputed: dict[int, bytes], manifest_dir: Path | None, db: Database
) -> BatchOutcome:
    out = BatchOutcome(t, records=len(recs))
    manifest = None
    if manifest_dir is not None:
        try:
            manifest = manifests.read(manifest_dir, t.root)
        except manifests.ManifestError as exc:
            out.discrepancies.append(Discrepancy(
                "manifest_mismatch", f"the manifest of batch {t.chain_batch_id} is unusable: {exc}", t.chain_batch_id))  # fmt: skip
    if manifest is not None:
        _against_manifest(out, recs, recomputed, manifest, db)
    else:
        _against_root(out, recs, recomputed, db)
    return out


def _against_manifest(
    out: BatchOutcome,
    recs: list[tuple[int, str]],
    recomputed: dict[int, bytes],
    manifest: manifests.Manifest,
    db: Database,
) -> None:
    """The manifest says what each record's commitment was: a mismatch names the instrument."""
    b = out.task.chain_batch_id
    expected = {number: c for number, c in manifest.records if not number.startswith((SUPERSEDES, AUDIT, TITLE))}
    out.manifest_audit = [(int(n[len(AUDIT):]), c) for n, c in manifest.records if n.startswith(AUDIT)
                          and n[len(AUDIT):].isascii() and n[len(AUDIT):].isdigit()]  # fmt: skip
    if out.task.prior_root is not None:  # a re-anchoring batch: its manifest must name the batch it replaces
        marker = rollback_marker(out.task.prior_root)
        out.marker_ok = any(n.startswith(SUPERSEDES) and c == marker for n, c in manifest.records)
        if not out.marker_ok:
            out.discrepancies.append(Discrepancy(
                "tampered_batch", f"batch {b} is recorded as re-anchoring a rolled-back batch, but what it anchored "
                "does not name that batch's root", b, expected=to_hex(marker)))  # fmt: skip
    seen = set()
    for iid, number in recs:
        seen.add(number)
        got = recomputed.get(iid, b"")
        want = expected.get(number)
        if want is None:
            out.discrepancies.append(Discrepancy(
                "tampered_record", f"instrument {number} is in batch {b} in the database, but the batch never "
                "anchored it", b, number, found=to_hex(got)))  # fmt: skip
        elif got != want:
            fields, said = fields_changed(db, iid, want)
            out.discrepancies.append(Discrepancy(
                "tampered_record", f"instrument {number} was changed after it was anchored in batch {b}{said}", b,
                number, expected=to_hex(want), found=to_hex(got), fields=fields))  # fmt: skip
        else:
            out.verified += 1
    for number in sorted(set(expected) - seen):
        out.discrepancies.append(Discrepancy(
            "missing_record", f"instrument {number}, anchored in batch {b}, is no longer in the database's record "
            "of that batch", b, number, expected=to_hex(expected[number])))  # fmt: skip


def _against_root(out: BatchOutcome, recs: list[tuple[int, str]], recomputed: dict[int, bytes], db: Database) -> None:
    """No manifest: the recomputed records must rebuild the root; if they do not, the records that
    no longer match their stored commitments are named (a tamperer may have rewritten those too)."""
    t = out.task
    leaves = [merkle.commitment_leaf(recomputed[iid]) for iid, _ in recs if iid in recomputed]
    if t.prior_root is not None:
        leaves.append(merkle.commitment_leaf(rollback_marker(t.prior_root)))
    audit = [merkle.commitment_leaf(t.audit_marker)] if t.audit_marker is not None else []
    if t.title_marker is not None:  # reconciliation's title-state check judges its value
        leaves.append(merkle.commitment_leaf(t.title_marker))
    rebuilt = bool(leaves or audit) and merkle.build(sorted([*leaves, *audit]))[0] == t.root
    unaccounted = False
    unreadable = any(iid not in recomputed for iid, _ in recs)  # rows that no longer make a record
    if not rebuilt and not unreadable:
        # take the one leaf the stored tree holds beyond these: if they rebuild the chain's root with
        # it, these leaves are exactly what was anchored, whatever that other leaf is. With a
        # checkpoint, it is the audit head (reconciliation.audit_log judges its value); without, it is unaccounted
        other = _one_other_leaf(db, t.id, leaves)
        rebuilt = other is not None and merkle.build(sorted([*leaves, other]))[0] == t.root
        unaccounted = rebuilt and not audit
    if t.prior_root is not None:
        out.marker_ok = rebuilt
    if rebuilt:
        out.verified = len(recs)
        if unaccounted:
            out.discrepancies.append(Discrepancy(
                "tampered_batch", f"batch {t.chain_batch_id} anchored a leaf that no record or audit-log checkpoint in "
                "the database accounts for: a record was removed from the batch, or the audit log's checkpoint was "
                "deleted (the batch manifest tells which)", t.chain_batch_id))  # fmt: skip
        return
    with db.read() as s:
        conn = s.connection()
        sql = "SELECT instrument_id, commitment FROM commitments WHERE " + ids_clause(conn)("instrument_id")
        stored = {iid: bytes(c) for iid, c in driver_rows(conn, sql, ids_param(conn, [i for i, _ in recs]))}
    changed = [(iid, n) for iid, n in recs if recomputed.get(iid, b"") != stored.get(iid)]
    for iid, number in changed:
        fields, said = fields_changed(db, iid, stored[iid]) if stored.get(iid) else (None, "")
        out.discrepancies.append(Discrepancy(
            "tampered_record", f"instrument {number} no longer matches its stored commitment (batch "
            f"{t.chain_batch_id}){said}", t.chain_batch_id, number,
            expected=to_hex(stored[iid]) if stored.get(iid) else None,
            found=to_hex(recomputed[iid]) if iid in recomputed else None, fields=fields))  # fmt: skip
    out.discrepancies.append(Discrepancy(
        "tampered_batch", f"the records of batch {t.chain_batch_id} do not rebuild its anchored root"
        + ("" if changed else "; the stored commitments (or the batch's audit-log checkpoint) were rewritten too: "
           "provide the batch manifest (LANDREG_MANIFEST_DIR or --manifests) to locate the change"),
        t.chain_batch_id, expected=to_hex(t.root)))  # fmt: skip
    out.verified = max(0, len(recs) - max(1, len(changed)))


def fields_changed(db: Database, instrument_id: int, committed: bytes) -> tuple[list[str] | None, str]:
    """Which fields of a changed record no longer match the hashes it was committed under:
    (their names, or None when that cannot be told; the words to append to the discrepancy).

    Each field's hash is recomputed from the stored rows and compared with the field hashes kept
    beside the commitment. Those are believed only if, with the stored history link, they combine
    to ``committed`` (the anchored commitment, from the manifest; or the stored one): a tamperer
    who rewrote them to match the change is caught there, and told apart."""
    with db.read() as s:
        conn = s.connection()
        kept = conn.exec_driver_sql(
            "SELECT field_hashes FROM commitments WHERE instrument_id = "
            + ("?" if conn.dialect.paramstyle == "qmark" else "%s"),
            (instrument_id,),
        ).scalar()
        try:
            [stored] = load_records(conn, [instrument_id])
        except (DamagedRecord, ValueError):
            return None, "; its rows no longer make a record, so no field can be compared"
    if not kept:
        return None, "; which fields changed cannot be told (it was committed before landreg kept field hashes)"
    scheme = stored.commit_scheme
    names = [n for n in commitments.fields_of(scheme) if n != "prev"]
    hashes = [bytes(kept[i : i + 32]) for i in range(0, len(kept), 32)]
    prepared = commitments.prepare(stored.record, stored.seed, scheme)
    prev = commitments.field_hash("prev", prepared.prev_salt, stored.prev_value, scheme)
    if len(hashes) != len(names) or commitments.combine([*hashes, prev], scheme) != committed:
        if len(hashes) == len(names) and commitments.combine([*prepared.field_hashes, prev], scheme) == committed:
            return [], "; every field still matches: its stored commitment was changed"
        if len(hashes) == len(names) and all(a != b for a, b in zip(hashes, prepared.field_hashes, strict=True)):
            # every salt, the history link's included, comes from the record's seed
            return None, "; no field's hash matches, nor its history link's: its salt seed was changed"
        return None, ("; its kept field hashes do not make the anchored commitment with its history link: the "
                      "history link, or the kept field hashes themselves, were changed too")  # fmt: skip
    fields = [n for n, old, new in zip(names, hashes, prepared.field_hashes, strict=True) if old != new]
    return fields, "; fields that no longer match their committed hashes: " + ", ".join(fields)


def _one_other_leaf(db: Database, batch_id: int, known: list[bytes]) -> bytes | None:
    """The single leaf of the batch's stored tree that is not in ``known``, if there is exactly one."""
    with db.read() as s:
        conn = s.connection()
        blob = conn.exec_driver_sql(
            "SELECT nodes FROM anchor_batches WHERE id = " + ("?" if conn.dialect.paramstyle == "qmark" else "%s"),
            (batch_id,),
        ).scalar()
    try:
        nodes = merkle.nodes_from_bytes(bytes(blob or b""))
    except ValueError:
        return None
    rest = Counter(nodes[len(nodes) // 2 :])
    rest.subtract(Counter(known))
    left = [leaf for leaf, n in rest.items() for _ in range(n) if n > 0]
    return left[0] if len(left) == 1 and all(n >= 0 for n in rest.values()) else None
