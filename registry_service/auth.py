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
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hybrid_store import audit_log
from hybrid_store.db.engine import Database, rows_affected
from hybrid_store.db.models import ApiKey
from hybrid_store.errors import LandregError, NotFound

KEY_PREFIX = "lr"


class Permission(enum.StrEnum):
    READ = "read"  # instruments, parcels, histories, status
    FILE = "file"  # record new instruments
    CORRECT = "correct"  # record corrections
    PROOF = "proof"  # full proof bundles and receipts
    EXAMINE = "examine"  # confirm or reject a waiting submission (with a reason, audit-logged)
    OPERATE = "operate"  # operations data (/metrics when restricted); migration runs from the CLI
    ACKNOWLEDGE = "acknowledge"  # acknowledge a flag that does not bear on who owns a parcel, with a reason
    # (API keys are managed only with `landreg keys` on the registry's host: no HTTP route exists)


class Role(enum.StrEnum):
    CLERK = "clerk"
    AUDITOR = "auditor"
    OPERATOR = "operator"
    ADMIN = "admin"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.CLERK: frozenset({Permission.READ, Permission.FILE, Permission.CORRECT, Permission.PROOF, Permission.EXAMINE}),
    Role.AUDITOR: frozenset({Permission.READ, Permission.PROOF}),
    # the operator, who already answers for the parallel run's divergences; not the clerk who filed
    # (a second pair of eyes), nor the auditor (who only reads)
    Role.OPERATOR: frozenset({Permission.READ, Permission.PROOF, Permission.OPERATE, Permission.ACKNOWLEDGE}),
    Role.ADMIN: frozenset({Permission.READ}),
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
    """Record a write in the append-only, hash-chained audit log, inside the write's own transaction."""
    audit_log.append(session, actor=actor.label, role=actor.role.value, action=action, target=target,
                     details=dict(details))  # fmt: skip


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
        done = rows_affected(s.execute(
            update(ApiKey)
            .where(ApiKey.key_id == key_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC), revoked_by=by.label)
        ))  # fmt: skip
        if not done:
            raise NotFound(f"no active key {key_id}")
        audit(s, by, "key.revoke", f"key {key_id}")


def list_keys(db: Database) -> list[ApiKey]:
    with db.read() as s:
        return list(s.scalars(select(ApiKey).order_by(ApiKey.id)))


class TooManyFailures(LandregError):
    """Too many failed authentications from one client address, or for one key id from one address."""

    def __init__(self, retry_after_s: int):
        self.retry_after_s = retry_after_s
        super().__init__(f"too many failed authentications; try again in {retry_after_s} s")


#: past the global ceiling, every address (and address and key id) may fail this many times fewer
UNDER_ATTACK_DIVISOR = 4


class FailureLimiter:
    """Failed authentications in a sliding window, counted per client address and per (address, key
    id), with a global ceiling.

    Never per key id alone: a key id is public (it is in the audit log), so a limit on it would let
    anyone who knows it lock its holder out from every address. Past ``global_ceiling`` failures in
    the window (many addresses guessing at once) each address's allowance shrinks by
    ``UNDER_ATTACK_DIVISOR``, which slows guessing everywhere, yet an address that has not failed is
    still let in: a genuine holder with the right secret is never refused. Bounded in memory: at
    most ``max_tracked`` addresses and pairs (the oldest are forgotten first)."""

    def __init__(self, per_address: int, per_address_and_key: int, global_ceiling: int = 1000, window_s: float = 60.0,
                 max_tracked: int = 50_000):  # fmt: skip
        self.limits = {"address": per_address, "pair": per_address_and_key}
        self.global_ceiling = global_ceiling
        self.window_s = window_s
        self.max_tracked = max_tracked
        self._seen: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self._everyone: deque[float] = deque(maxlen=global_ceiling)
        self._lock = threading.Lock()

    def check(self, address: str, key_id: str) -> None:
        """Raise ``TooManyFailures`` if this address, or this address with this key id, has used up
        its failures for the window."""
        now = time.monotonic()
        with self._lock:
            divisor = UNDER_ATTACK_DIVISOR if self._under_attack(now) else 1
            for kind, value in self._counters(address, key_id):
                times = self._recent(kind, value, now)
                allowed = max(1, self.limits[kind] // divisor)
                if times is not None and len(times) >= allowed:
                    # the window frees a slot when the failure that put it over the allowance expires
                    expires = times[len(times) - allowed] + self.window_s
                    raise TooManyFailures(max(1, int(expires - now) + 1))

    def failed(self, address: str, key_id: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._everyone.append(now)
            for kind, value in self._counters(address, key_id):
                times = self._recent(kind, value, now)
                if times is None:
                    times = self._seen[(kind, value)] = deque(maxlen=self.limits[kind])
                    while len(self._seen) > self.max_tracked:
                        self._seen.popitem(last=False)
                times.append(now)

    @property
    def tracked(self) -> int:
        """How many addresses and (address, key id) pairs are remembered now."""
        return len(self._seen)

    @staticmethod
    def _counters(address: str, key_id: str) -> tuple[tuple[str, str], ...]:
        return ("address", address), ("pair", f"{address} {key_id}")

    def _under_attack(self, now: float) -> bool:
        while self._everyone and now - self._everyone[0] > self.window_s:
            self._everyone.popleft()
        return len(self._everyone) >= self.global_ceiling

    def _recent(self, kind: str, value: str, now: float) -> deque[float] | None:
        times = self._seen.get((kind, value))
        if times is None:
            return None
        while times and now - times[0] > self.window_s:
            times.popleft()
        self._seen.move_to_end((kind, value))
        return times


class KeyVerifier:
    """Checks presented keys against the database, remembering good ones for ``cache_s`` seconds
    (so a revocation takes effect within that time) to keep a lookup off every request. Only good
    keys are remembered, at most ``max_cached`` of them: wrong keys cost a lookup and count
    against the failure limits instead of filling memory."""

    def __init__(self, db: Database, cache_s: float = 5.0, *, limiter: FailureLimiter | None = None,
                 max_cached: int = 10_000):  # fmt: skip
        self.db = db
        self.cache_s = cache_s
        self.max_cached = max_cached
        self.limiter = limiter or FailureLimiter(per_address=20, per_address_and_key=10)
        self._cache: OrderedDict[str, tuple[float, Actor]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def cached(self) -> int:
        """How many keys are remembered now (only good ones are)."""
        return len(self._cache)

    def actor_for(self, presented: str, client: str = "unknown") -> Actor:
        parts = presented.strip().split("_", 2)
        if len(parts) != 3 or parts[0] != KEY_PREFIX:
            self.limiter.check(client, "(malformed)")
            self.limiter.failed(client, "(malformed)")
            raise Unauthenticated("malformed API key")
        key_id, secret = parts[1][:32], parts[2]
        cache_key = f"{key_id}:{hashlib.sha256(secret.encode()).hexdigest()}"
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(cache_key)
        if hit and now - hit[0] < self.cache_s:
            return hit[1]
        self.limiter.check(client, key_id)
        actor = self._lookup(key_id, secret)
        if actor is None:
            self.limiter.failed(client, key_id)
            raise Unauthenticated("unknown or revoked API key")
        with self._lock:
            self._cache[cache_key] = (now, actor)
            self._cache.move_to_end(cache_key)
            while len(self._cache) > self.max_cached:
                self._cache.popitem(last=False)
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
