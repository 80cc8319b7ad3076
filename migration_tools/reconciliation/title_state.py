"""Reconciling the title state: is the stored state the one the records make, and the one anchored?

The newest state whose batch is on chain is checked (older ones by request: ``every=True``), and
nothing the title tables say is believed:

* its marker leaf must prove, through the version's stored Merkle proof, against the **chain's**
  root of its batch (a rewritten version row does not);
* the state recomputed from scratch over the records of the live batches up to it (the head rule
  of docs/title-state.md) must have the same root (an edited commitment's ``prev``, a record moved
  between batches, or a version built on the wrong base does not);
* every stored node under that root is read from the database and hashed again (an edited node,
  which would be served in head proofs and built on by the next batch, does not).

Each failure is a ``title_state_altered`` finding naming the batch and what differs. When the
records themselves were found changed (``tampered_record`` and its kin), the recomputed state would
differ for that reason alone: the comparison is skipped (``title_recomputed`` = 0) and the two
checks of the title tables' own rows still run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from hybrid_store import title_states
from hybrid_store.core import merkle
from hybrid_store.core import title_state as ts
from hybrid_store.core.hashing import to_hex
from hybrid_store.db.engine import Database
from hybrid_store.db.models import TitleVersion
from migration_tools.reconciliation.recompute import Discrepancy

ALTERED = "title_state_altered"


@dataclass
class TitleCheck:
    checked: int = 0  # states checked
    parcels: int = 0  # parcels in the newest state checked
    nodes: int = 0  # stored nodes read and hashed again
    recomputed: int = 0  # states compared with the one recomputed from the records
    discrepancies: list[Discrepancy] = field(default_factory=list)


def check(
    db: Database, on_chain: dict[int, tuple[int, bytes]], *, records_sound: bool = True, every: bool = False
) -> TitleCheck:
    """Check the newest title state whose batch is on chain (``every``: each one); ``on_chain``
    maps a batch's id to (its chain batch id, the chain's root of it); ``records_sound``: no record
    was found changed (else the state is not recomputed from them)."""
    out = TitleCheck()
    with db.read() as s:
        versions = s.execute(select(TitleVersion).order_by(TitleVersion.batch_id.desc())).scalars().all()
        anchored = [v for v in versions if v.batch_id in on_chain]
        for v in anchored if every else anchored[:1]:
            _check_one(s, v, *on_chain[v.batch_id], out, records_sound)
    return out


def _check_one(
    s: Session, v: TitleVersion, chain_batch: int, chain_root: bytes, out: TitleCheck, recompute: bool
) -> None:
    out.checked += 1
    root = bytes(v.root)
    siblings = [bytes(v.proof[i : i + 32]) for i in range(0, len(v.proof), 32)]
    if not merkle.verify(chain_root, merkle.commitment_leaf(ts.state_marker(root)), siblings):
        out.discrepancies.append(Discrepancy(
            ALTERED, f"the stored title state of batch {chain_batch} (root {to_hex(root)}) is not the one the batch "
            "anchored: its version row was rewritten", chain_batch, found=to_hex(root)))  # fmt: skip
    rebuilt, parcels = title_states.rebuild(s, v.batch_id) if recompute else (root, v.parcels)
    out.parcels = max(out.parcels, parcels)
    out.recomputed += recompute
    if rebuilt != root:
        out.discrepancies.append(Discrepancy(
            ALTERED, f"the title state of batch {chain_batch} is not the one its anchored records make ({parcels:,} "
            "parcels recomputed): a record's history, a batch's records or the stored state was changed",
            chain_batch, expected=to_hex(rebuilt), found=to_hex(root)))  # fmt: skip
    try:
        out.nodes += title_states.stored_nodes_intact(s, v.batch_id, root)
    except ts.TitleStateError as exc:
        out.discrepancies.append(Discrepancy(ALTERED, f"batch {chain_batch}'s title state: {exc}", chain_batch))
