"""API keys and roles. Deny by default: every route names the permission it needs.

A key looks like ``lr_<key id>_<secret>``. The key id is public (it appears in the audit log);
only SHA-256 of the secret is stored (the secret is 256 random bits, so a plain hash is enough;
there is nothing to brute-force). Keys are issued and revoked with ``landreg keys``.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from hybrid_store.db.engine import Database
from hybrid_store.db.models import ApiKey, AuditEntry
from hybrid_store.errors import LandregError, NotFound

KEY_PREFIX = "lr"


class Permission(enum.StrEnum):
    READ = "read"  # instruments, parcels, histories, status
    FILE = "file"  # record new instruments
    CORRECT = "correct"  # record corrections
    PROOF = "proof"  # full proof bundles and receipts
    OPERATE = "operate"  # migration and reconciliation
    MANAGE_KEYS = "manage_keys"


class Role(enum.StrEnum):
    CLERK = "clerk"
    AUDITOR = "auditor"
    OPERATOR = "operator"
    ADMIN = "admin"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.CLERK: frozenset({Permission.READ, Permission.FILE, Permission.CORRECT, Permission.PROOF}),
    Role.AUDITOR: frozenset({Permission.READ, Permission.PROOF}),
    Role.OPERATOR: frozenset({Permission.READ, Permission.PROOF, Permission.OPERATE}),
    Role.ADMIN: frozenset({Permission.READ, Permission.MANAGE_KEYS}),
}


class Unauthenticated(LandregError):
    hint = "send your API key as `Authorization: Bearer lr_...` (issued with `landreg keys create`)"


class Forbidden(LandregError):
    pass


@dataclass(frozen=True)
class Actor:
    """Who is acting: an API key holder, or an operator at the command line."""

    name: str
    role: Role
    key_id: str | None = None
    api_key_pk: int | None = None

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    def require(self, permission: Permission) -> None:
        if not self.can(permission):
            raise Forbidden(f"the {self.role} role may not {permission.value.replace('_', ' ')}")

    @property
    def label(self) -> str:
        return f"{self.name} ({self.role}, key {self.key_id})" if self.key_id else f"{self.name} ({self.role})"


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def audit(session: Session, actor: Actor, action: str, target: str, **details: object) -> None:
    """Record a write in the append-only audit log, inside the write's own transaction."""
    session.connection().execute(
        insert(AuditEntry.__table__),
        {"actor": actor.label, "role": actor.role.value, "action": action, "target": target, "details": details,
         "at": datetime.now(UTC)},
    )  # fmt: skip


def create_key(db: Database, *, role: Role, name: str, by: Actor) -> tuple[str, ApiKey]:
    """Issue a key; the full key string is returned once and never stored."""
    key_id = secrets.token_hex(5)
    secret = secrets.token_urlsafe(32)
    with db.write() as s:
        row = ApiKey(key_id=key_id, secret_hash=_digest(secret), role=role.value, name=name, created_by=by.label)
        s.add(row)
        audit(s, by, "key.create", f"key {key_id}", role=role.value, name=name)
    return f"{KEY_PREFIX}_{key_id}_{secret}", row


def revoke_key(db: Database, key_id: str, *, by: Actor) -> None:
    with db.write() as s:
        done = s.execute(
            update(ApiKey)
            .where(ApiKey.key_id == key_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC), revoked_by=by.label)
        ).rowcount
        if not done:
            raise NotFound(f"no active key {key_id}")
        audit(s, by, "key.revoke", f"key {key_id}")


def list_keys(db: Database) -> list[ApiKey]:
    with db.read() as s:
        return list(s.scalars(select(ApiKey).order_by(ApiKey.id)))


class KeyVerifier:
    """Checks presented keys against the database, remembering good ones for ``cache_s`` seconds
    (so a revocation takes effect within that time) to keep a lookup off every request."""

    def __init__(self, db: Database, cache_s: float = 5.0):
        self.db = db
        self.cache_s = cache_s
        self._cache: dict[str, tuple[float, Actor | None]] = {}
        self._lock = threading.Lock()

    def actor_for(self, presented: str) -> Actor:
        parts = presented.strip().split("_", 2)
        if len(parts) != 3 or parts[0] != KEY_PREFIX:
            raise Unauthenticated("malformed API key")
        key_id, secret = parts[1], parts[2]
        cache_key = f"{key_id}:{hashlib.sha256(secret.encode()).hexdigest()}"
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(cache_key)
        if hit and now - hit[0] < self.cache_s:
            actor = hit[1]
        else:
            actor = self._lookup(key_id, secret)
            with self._lock:
                self._cache[cache_key] = (now, actor)
        if actor is None:
            raise Unauthenticated("unknown or revoked API key")
        return actor

    def actor_by_id(self, key_id: str) -> Actor | None:
        """The actor of a still-active key (web desk sessions remember only the key id)."""
        with self.db.read() as s:
            row = s.scalar(select(ApiKey).where(ApiKey.key_id == key_id, ApiKey.revoked_at.is_(None)))
        return None if row is None else Actor(row.name, Role(row.role), row.key_id, row.id)

    def _lookup(self, key_id: str, secret: str) -> Actor | None:
        with self.db.read() as s:
            row = s.scalar(select(ApiKey).where(ApiKey.key_id == key_id))
        if row is None or row.revoked_at is not None:
            return None
        if not hmac.compare_digest(row.secret_hash, _digest(secret)):
            return None
        return Actor(row.name, Role(row.role), row.key_id, row.id)
