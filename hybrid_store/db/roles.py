"""PostgreSQL roles: the *owner* runs migrations (``landreg db upgrade``) and key administration
(``landreg keys``, ``landreg signing-keys``); the service and its workers connect as a *runtime*
role that gets, table by table and column by column, what ``hybrid_store/db/tables.py`` declares
and nothing else: deny by default.

The runtime role owns nothing, so it cannot TRUNCATE, run DDL, or disable or drop triggers. It may
not create or change API keys or signing keys. ``grant_runtime`` (run as the owner after every
upgrade, ``landreg db grant-runtime ROLE``) revokes everything first, so a privilege granted by an
older release and no longer declared goes away.

Supported servers: PostgreSQL 13 or later (tested on 15; docker-compose.yml runs 16).
"""

from __future__ import annotations

import logging
import re

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from hybrid_store.db.engine import Database
from hybrid_store.db.tables import RUNTIME_SETVAL_SEQUENCES, TABLES, TableRule
from hybrid_store.errors import ConfigurationError

log = logging.getLogger(__name__)

MIN_SERVER_VERSION = 130000  # server_version_num of PostgreSQL 13
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PrivilegedRole(ConfigurationError):
    """The service was started as a database superuser or as the role that owns the schema."""

    hint = (
        "connect the service as the runtime role (`landreg db grant-runtime ROLE`, docs/operations.md); "
        "for a one-machine demo only, LANDREG_SERVICE__ALLOW_PRIVILEGED_DB_ROLE=true"
    )


def table_statements(table: str, rule: TableRule, role: str) -> list[str]:
    """The GRANTs a table's declaration gives the runtime role (SELECT always, the rest as declared)."""
    grants = ["SELECT"] + (["INSERT"] if rule.insert else []) + (["DELETE"] if rule.delete else [])
    out = [f'GRANT {", ".join(grants)} ON "{table}" TO "{role}"']
    if rule.update:
        columns = ", ".join(f'"{c}"' for c in rule.update)
        out.append(f'GRANT UPDATE ({columns}) ON "{table}" TO "{role}"')
    return out


def grant_runtime(owner_db: Database, role: str) -> list[str]:
    """Grant ``role`` (which must exist, own nothing and not be a superuser) exactly what the
    declarations give it; returns the statements run. Idempotent. A table that declares nothing
    gets nothing (and is logged)."""
    if owner_db.dialect != "postgresql":
        raise ConfigurationError("runtime roles are a PostgreSQL feature; SQLite has a single file owner")
    if not _NAME.match(role):
        raise ConfigurationError(f"{role!r} is not a plain PostgreSQL role name")
    with owner_db.engine.connect() as conn:
        tables = sorted(inspect(conn).get_table_names())
        owner = conn.execute(text("SELECT current_user")).scalar()
        _check_runtime_candidate(conn, role, str(owner))
    statements = [
        f'REVOKE ALL ON ALL TABLES IN SCHEMA public FROM "{role}"',  # column privileges go with them
        f'REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM "{role}"',
        f'REVOKE CREATE ON SCHEMA public FROM "{role}"',
        # before PostgreSQL 15 every role could create tables in public, and a database made from an
        # old template keeps that grant: a table the runtime role created would be its own to rewrite
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
        f'GRANT USAGE ON SCHEMA public TO "{role}"',
    ]
    undeclared = [t for t in tables if t not in TABLES]
    for table in tables:
        if table in TABLES:
            statements += table_statements(table, TABLES[table], role)
    statements.append(f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO "{role}"')  # nextval for its INSERTs
    with owner_db.engine.connect() as conn:
        present = {
            s for s in RUNTIME_SETVAL_SEQUENCES if conn.execute(text("SELECT to_regclass(:s)"), {"s": s}).scalar()
        }
    statements += [f'GRANT SELECT, UPDATE ON SEQUENCE "{s}" TO "{role}"' for s in sorted(present)]
    with owner_db.engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
        if conn.execute(text("SELECT has_schema_privilege('public', 'public', 'CREATE')")).scalar():
            raise ConfigurationError(
                "every role may still create tables in schema public (the grant to PUBLIC could not be revoked): "
                "run `landreg db grant-runtime` as the role that owns schema public, or have it run "
                "REVOKE CREATE ON SCHEMA public FROM PUBLIC"
            )
    if undeclared:
        log.warning("tables no declaration names got no privileges: %s", ", ".join(undeclared))
    return statements


def _check_runtime_candidate(conn: Connection, role: str, owner: str) -> None:
    version = int(conn.execute(text("SHOW server_version_num")).scalar() or 0)
    if version < MIN_SERVER_VERSION:
        raise ConfigurationError(f"PostgreSQL {version // 10000} is not supported: landreg needs 13 or later")
    if role == owner:
        raise ConfigurationError("the runtime role must not be the owner that runs migrations")
    found = conn.execute(
        text("SELECT rolsuper, pg_has_role(:role, current_user, 'MEMBER') FROM pg_roles WHERE rolname = :role"),
        {"role": role},
    ).first()
    if found is None:
        raise ConfigurationError(f"there is no PostgreSQL role {role!r}: CREATE ROLE {role} LOGIN first")
    if found[0]:
        raise ConfigurationError(f"{role} is a superuser: the runtime role must be an ordinary role")
    if found[1]:
        raise ConfigurationError(f"{role} is a member of {owner}, which owns the schema: it would inherit its powers")


def privileged_reason(db: Database) -> str | None:
    """Why the role ``db`` connects as is too powerful to serve (a superuser, or owner of a table in
    schema public, directly or through a role it belongs to); None when it is an ordinary runtime
    role, or on SQLite (one file, one owner)."""
    if db.dialect != "postgresql":
        return None
    with db.read() as s:
        user, superuser = s.execute(
            text("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user")
        ).one()
        if superuser:
            return f"{user} is a PostgreSQL superuser"
        owned = s.execute(
            text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND pg_has_role(current_user, tableowner, 'USAGE') ORDER BY tablename LIMIT 1"
            )  # fmt: skip
        ).scalar()
    return f"{user} owns table {owned} (it could disable triggers and rewrite history)" if owned else None


def refuse_privileged(db: Database, *, allow: bool, what: str) -> None:
    """Refuse to run ``what`` (the service, the worker) as a superuser or the owner, unless allowed
    for a one-machine demo, and then say so loudly."""
    reason = privileged_reason(db)
    if reason is None:
        return
    if not allow:
        raise PrivilegedRole(f"{what} refuses to run as {reason}")
    log.warning(
        "!!! %s runs as %s: LANDREG_SERVICE__ALLOW_PRIVILEGED_DB_ROLE is set, so nothing stops this "
        "process from rewriting the registry's history. Acceptable on a one-machine demo only. !!!",
        what,
        reason,
    )
