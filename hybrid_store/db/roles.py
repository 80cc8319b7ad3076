"""Two PostgreSQL roles: the *owner* runs migrations (``landreg db upgrade``); the service and the
workers connect as a *runtime* role that can read and append history but not rewrite it.

The runtime role gets no ownership, so it cannot TRUNCATE, run DDL, disable or drop triggers;
on the append-only tables it may only SELECT and INSERT. ``grant_runtime`` (run as the owner after
every upgrade, `landreg db grant-runtime ROLE`) states exactly what it may do.
"""

from __future__ import annotations

import re

from sqlalchemy import inspect, text

from hybrid_store.db.engine import Database
from hybrid_store.db.models import APPEND_ONLY_TABLES
from hybrid_store.errors import ConfigurationError

#: rows are never changed or deleted, by anyone (triggers) and certainly not by the service
APPEND_ONLY = APPEND_ONLY_TABLES
#: rows written once and then completed once (a trigger refuses any other change); never deleted
PLACED_ONCE = ("audit_chain",)
#: the schema version is the owner's business
OWNER_ONLY = ("alembic_version",)
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def grant_runtime(owner_db: Database, role: str) -> list[str]:
    """Grant ``role`` (which must exist and own nothing) what the service needs; returns the
    statements run. Idempotent: privileges granted before and no longer needed are revoked."""
    if owner_db.dialect != "postgresql":
        raise ConfigurationError("runtime roles are a PostgreSQL feature; SQLite has a single file owner")
    if not _NAME.match(role):
        raise ConfigurationError(f"{role!r} is not a plain PostgreSQL role name")
    with owner_db.engine.connect() as conn:
        tables = sorted(inspect(conn).get_table_names())
        owner = conn.execute(text("SELECT current_user")).scalar()
    if role == owner:
        raise ConfigurationError("the runtime role must not be the owner that runs migrations")
    statements = [f'REVOKE ALL ON ALL TABLES IN SCHEMA public FROM "{role}"',
                  f'REVOKE CREATE ON SCHEMA public FROM "{role}"', f'GRANT USAGE ON SCHEMA public TO "{role}"']  # fmt: skip
    for table in tables:
        if table in OWNER_ONLY:
            statements.append(f'GRANT SELECT ON "{table}" TO "{role}"')
        elif table in APPEND_ONLY:
            statements.append(f'GRANT SELECT, INSERT ON "{table}" TO "{role}"')
        elif table in PLACED_ONCE:
            statements.append(f'GRANT SELECT, INSERT, UPDATE ON "{table}" TO "{role}"')
        else:
            statements.append(f'GRANT SELECT, INSERT, UPDATE, DELETE ON "{table}" TO "{role}"')
    statements.append(f'GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO "{role}"')
    with owner_db.engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    return statements
