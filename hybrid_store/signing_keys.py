"""Signing keys with lifecycles: one active key per purpose, rotation with validity windows,
compromise. Public halves and windows in the database (``signing_keys``); private halves
encrypted in a folder under LANDREG_HOME/keys (``hybrid_store.keyfiles``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from hybrid_store import keyfiles
from hybrid_store.core.trust import b64url, raw_public
from hybrid_store.db.engine import Database, permission_denied
from hybrid_store.db.models import KeyStatus, SigningKey
from hybrid_store.errors import ConfigurationError, Conflict, NotFound


class KeyAdministrationRequired(ConfigurationError):
    """There is no active key of a purpose yet, and the database role running may not make one
    (the runtime role never can: keys are made by key administration, as the owner role)."""

    hint = 'run `landreg signing-keys init` as the owner role (docs/operations.md, "Database roles"), then start again'


@dataclass(frozen=True)
class KeySource:
    """Where one purpose's private keys live and which setting unlocks them."""

    purpose: str  # receipt | trust-root
    folder: Path
    passphrase: str | None
    setting: str  # the environment variable, for error messages

    def load(self, kid: str) -> Ed25519PrivateKey:
        return keyfiles.load_key(self.folder, kid, self.passphrase, self.setting)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def keys_of(db: Database, purpose: str) -> list[SigningKey]:
    with db.read() as s:
        return list(s.scalars(select(SigningKey).where(SigningKey.purpose == purpose).order_by(SigningKey.id)))


def active_key(
    db: Database, source: KeySource, *, legacy_plaintext: Path | None = None
) -> tuple[str, Ed25519PrivateKey]:
    """The active key of ``source.purpose``, created (or adopted from an older plaintext file) the
    first time. Safe when several processes start at once: one row wins, the others load it."""
    with db.read() as s:
        row = s.scalar(select(SigningKey).where(SigningKey.purpose == source.purpose,
                                                SigningKey.status == KeyStatus.ACTIVE))  # fmt: skip
    if row is not None:
        return row.kid, source.load(row.kid)
    adopted = legacy_plaintext is not None and legacy_plaintext.exists()
    if legacy_plaintext is not None and adopted:
        kid, key = keyfiles.adopt_plaintext(legacy_plaintext, source.folder, source.passphrase, source.setting)
    else:
        kid, key = keyfiles.new_key(source.folder, source.passphrase, source.setting)
    try:
        with db.write() as s:
            s.add(_row(source.purpose, kid, key, _now()))
    except IntegrityError:  # another process registered its key first: use that one
        if legacy_plaintext is None:
            (source.folder / f"{kid}.pem").unlink(missing_ok=True)
        return active_key(db, source)
    except DBAPIError as exc:
        if not permission_denied(exc):
            raise
        if not adopted:
            (source.folder / f"{kid}.pem").unlink(missing_ok=True)
        raise KeyAdministrationRequired(
            f"this registry has no active {source.purpose} signing key yet, and the database role this process "
            "connects as may not make one"
        ) from None
    return kid, key


def _row(purpose: str, kid: str, key: Ed25519PrivateKey, valid_from: datetime) -> SigningKey:
    return SigningKey(kid=kid, purpose=purpose, algorithm="Ed25519", public_key=b64url(raw_public(key)),
                      valid_from=valid_from, status=KeyStatus.ACTIVE)  # fmt: skip


AuditHook = Callable[[Session, str, dict[str, object]], None]  # (session, action, details)


def rotate(db: Database, source: KeySource, audit: AuditHook | None = None) -> tuple[str | None, str]:
    """Retire the active key (its window closes now) and make a new one active, in one transaction
    with its audit entry. Returns (old kid, new kid)."""
    kid, key = keyfiles.new_key(source.folder, source.passphrase, source.setting)
    at = _now()
    with db.write() as s:
        old = s.scalar(select(SigningKey).where(SigningKey.purpose == source.purpose,
                                                SigningKey.status == KeyStatus.ACTIVE))  # fmt: skip
        if old is not None:
            old.status, old.valid_until = KeyStatus.RETIRED, at
            s.flush()
        s.add(_row(source.purpose, kid, key, at))
        old_kid = old.kid if old is not None else None
        if audit is not None:
            audit(s, f"{source.purpose}-key.rotate", {"retired": old_kid, "active": kid})
    return old_kid, kid


def mark_compromised(db: Database, kid: str, reason: str, audit: AuditHook | None = None) -> SigningKey:
    """Mark ``kid`` compromised: nothing it ever signed verifies any more. An active key must be
    rotated first, so the registry never runs without a usable key."""
    with db.write() as s:
        row = s.scalar(select(SigningKey).where(SigningKey.kid == kid))
        if row is None:
            raise NotFound(f"no signing key {kid}")
        if row.status == KeyStatus.ACTIVE:
            raise Conflict(f"{kid} is the active {row.purpose} key: rotate it first, then mark it compromised")
        row.status, row.reason = KeyStatus.COMPROMISED, reason
        if row.valid_until is None:
            row.valid_until = _now()
        s.flush()
        if audit is not None:
            audit(s, f"{row.purpose}-key.compromise", {"kid": kid, "reason": reason})
        s.expunge(row)
    return row
