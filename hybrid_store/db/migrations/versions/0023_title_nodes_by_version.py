"""The title state's nodes keyed by (version, hash) (issue 23): keyed by their hash alone, random,
each batch's ~31,000 new nodes landed on nearly every page of the key's index, and a migration with
the title state wrote twice the bytes of one without. Under the version (batch id) that wrote them
first, a batch's nodes append as one run at the index's end. An inner node now also names the
versions its children lie under (``hybrid_store.title_states.encode_node``); hashes, roots and
proofs are unchanged, so every anchored state stays what it was.

The existing nodes are rewritten state by state in batch order: a node goes under the first
version whose tree reaches it, and each version's root under that version (a copy when an earlier
state had the same root), as ``title_states`` writes them. Rows no state reaches (none is ever
written so) are left behind and counted. The downgrade keeps one row per hash, pointers dropped.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from hybrid_store.db.triggers import create_append_only_trigger, drop_append_only_trigger

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger(__name__)

TABLE = "title_nodes"
OLD = "title_nodes_replaced"
EMPTY = b"\x00" * 32
INNER, INNER_OLD_SIZE, INNER_NEW_SIZE = 1, 65, 81
READ_CHUNK = 500  # hashes per IN list


def upgrade() -> None:
    _set_aside()
    op.create_table(
        TABLE,
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("node", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("version", "hash", name=op.f("pk_title_nodes")),
    )
    bind = op.get_bind()
    placed: dict[bytes, int] = {}  # hash -> the version it now lies under (the whole tree's keys: ~100 B each)
    versions = bind.execute(sa.text("SELECT batch_id, root FROM title_versions ORDER BY batch_id")).all()
    for version, root in versions:
        if bytes(root) != EMPTY:
            _place_state(bind, int(version), bytes(root), placed)
    left = bind.scalar(sa.text(f"SELECT count(*) FROM {OLD} WHERE hash NOT IN (SELECT hash FROM {TABLE})"))
    if left:
        log.warning("title_nodes: %d stored nodes no title state reaches were not carried over", left)
    op.drop_table(OLD)
    _protect()


def _place_state(bind: sa.Connection, version: int, root: bytes, placed: dict[bytes, int]) -> None:
    """Write under ``version`` its root and every node under it that no earlier state placed, each
    inner node with its children's versions; level by level (one level's rows in memory)."""
    frontier = [root]
    placed.setdefault(root, version)
    while frontier:
        stored: dict[bytes, bytes] = {}
        for i in range(0, len(frontier), READ_CHUNK):
            chunk = frontier[i : i + READ_CHUNK]
            rows = bind.execute(sa.text(f"SELECT hash, node FROM {OLD} WHERE hash IN :h").bindparams(
                sa.bindparam("h", expanding=True)), {"h": chunk})  # fmt: skip
            stored.update((bytes(h), bytes(n)) for h, n in rows)
        deeper: list[bytes] = []
        out = []
        for h in frontier:
            data = stored.get(h)
            if data is None:  # an edited store: the new layout names it missing, as the old did
                log.warning("title_nodes: node %s of state %d is not stored", h.hex(), version)
                continue
            if data[0] == INNER and len(data) == INNER_OLD_SIZE:
                pointers = b""
                for child in (data[1:33], data[33:65]):
                    if child == EMPTY:
                        pointers += (0).to_bytes(8, "big")
                        continue
                    if child not in placed:
                        placed[child] = version
                        deeper.append(child)
                    pointers += placed[child].to_bytes(8, "big")
                data += pointers
            out.append({"v": version, "h": h, "n": data})
        if out:
            bind.execute(sa.text(f"INSERT INTO {TABLE} (version, hash, node) VALUES (:v, :h, :n)"), out)
        frontier = deeper


def downgrade() -> None:
    _set_aside()
    op.create_table(
        TABLE,
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("node", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("hash", name=op.f("pk_title_nodes")),
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    inner = "get_byte(node, 0) = 1" if postgres else "substr(node, 1, 1) = x'01'"
    cut = "substring(node from 1 for 65)" if postgres else "substr(node, 1, 65)"
    # a node copied under several versions (a state's root kept by the next) is one row again
    op.execute(
        f"INSERT INTO {TABLE} (hash, node) SELECT hash, CASE WHEN {inner} THEN {cut} ELSE node END FROM {OLD} "
        "WHERE true ON CONFLICT (hash) DO NOTHING"
    )
    op.drop_table(OLD)
    _protect()


def _set_aside() -> None:
    """Rename the table out of the way (its triggers and primary key name with it)."""
    drop_append_only_trigger(TABLE)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {TABLE}_no_truncate ON {TABLE}")
        op.execute(f"ALTER TABLE {TABLE} RENAME CONSTRAINT pk_{TABLE} TO pk_{OLD}")
    op.rename_table(TABLE, OLD)


def _protect() -> None:
    create_append_only_trigger(TABLE)
    if op.get_bind().dialect.name == "postgresql":  # as 0019 did
        op.execute(
            f"CREATE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE} "
            "FOR EACH STATEMENT EXECUTE FUNCTION landreg_no_truncate()"
        )
