"""``landreg trust`` and ``landreg signing-keys``: the trust root auditors pin, and the keys that
sign receipts and trust-root versions, with their lifecycles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from registry_service.cli.common import audit_cli, console, database, err_console, fail, friendly, settings

trust_app = typer.Typer(
    help="The registry's trust root: what auditors pin (chain, contracts, receipt keys).", no_args_is_help=True
)
keys_app = typer.Typer(
    help="Receipt and trust-root signing keys: list, rotate, mark compromised.", no_args_is_help=True
)


def publish_trust(cfg, db) -> None:
    """Publish the next trust-root version if anything changed, and say so."""
    from hybrid_store.trust import publish

    root, new = publish(cfg, db)
    where = cfg.trust_dir / "root.json"
    if new:
        err_console.print(f"published trust root v{root.version} ({where}); hand it to auditors")
    return None


@trust_app.command("export")
@friendly
def export(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Also write the trust root here.")] = None,
) -> None:
    """Write the published trust root to --out; with LANDREG_TRUST__SIGNING_KEY_PASSPHRASE, first
    publish a new signed version when anything changed.

    Without the passphrase it copies the newest published, signed version (an auditor needs
    nothing else), and says so loudly when that version is out of date. The service serves it at
    /.well-known/landreg-trust-root.json; auditors obtain the first copy out of band.
    """
    from hybrid_store.trust import latest, publish, signed_content

    cfg = settings()
    db = database(cfg)
    if cfg.trust.signing_key_passphrase is not None:
        root, new = publish(cfg, db)
    else:
        published = latest(cfg)
        if published is None:
            raise fail("no trust root has been published yet, and publishing the first one signs it",
                       "set LANDREG_TRUST__SIGNING_KEY_PASSPHRASE and run `landreg trust export` again")  # fmt: skip
        root, new = published, False
        unsigned = {k: v for k, v in root.document["signed"].items() if k not in ("version", "issuedAt")}
        if unsigned != signed_content(cfg, db):
            err_console.print(
                f"[yellow]warning:[/yellow] trust root v{root.version}, the newest published, is out of date: the "
                "registry has changed since (new keys or deployments), and auditors holding it cannot verify what "
                "those sign. "
                "Publish the next version with LANDREG_TRUST__SIGNING_KEY_PASSPHRASE set"
            )
    text = (cfg.trust_dir / "root.json").read_text()
    if out is not None:
        out.write_text(text)
    audit_cli(db, "trust.publish" if new else "trust.export", f"trust root v{root.version}",
              out=str(out) if out else None)  # fmt: skip
    console.print(
        f"trust root v{root.version} ({'new' if new else 'unchanged'}): chain {root.chain_id}, "
        f"{len(root.deployments)} deployment(s), {len(root.receipt_keys)} receipt key(s)"
        + (f" -> {out}" if out else "")
    )


@trust_app.command("show")
@friendly
def show(
    trust: Annotated[str | None, typer.Argument(help="A trust root file or URL [default: this registry's].")] = None,
) -> None:
    """Show what a trust root pins."""
    from hybrid_store.verifier.trust import load

    cfg = settings()
    root = load(trust or cfg.trust_dir / "root.json")
    console.print(f"{root.describe()}, jurisdiction {root.jurisdiction}, issued {root.issued_at:%Y-%m-%d %H:%M}Z")
    console.print(f"genesis {root.genesis_hash}; schemes {', '.join(root.commitment_schemes)}")
    for d in root.deployments:
        console.print(f"  DeedRegistry v{d.registry_version} {d.contract}: {d.describe_range()}, code {d.code_hash}")
    for k in root.receipt_keys:
        until = f" until {k.valid_until:%Y-%m-%d %H:%M}Z" if k.valid_until else ""
        console.print(f"  receipt key {k.kid}: {k.status}, from {k.valid_from:%Y-%m-%d %H:%M}Z{until}")
    for k in root.root_keys:
        console.print(f"  root key {k.kid}")


@trust_app.command("update")
@friendly
def update(
    pinned: Annotated[Path, typer.Argument(help="The trust root file you hold (rewritten when updated).")],
    source: Annotated[str, typer.Option("--from", help="Where the registry publishes its versions.")] = (
        "http://127.0.0.1:8000/.well-known/landreg-trust-root"
    ),
) -> None:
    """Follow the registry's newer trust-root versions from the one you hold, checking that each is
    signed by a root key of the version before it. An update signed by anyone else is refused."""
    from hybrid_store.verifier.trust import load, load_updates

    held = load(pinned)
    newest = load_updates(held, source)
    if newest.version == held.version:
        console.print(f"{pinned}: v{held.version} is the newest published version")
        return
    pinned.write_text(json.dumps(newest.document, indent=2, ensure_ascii=False) + "\n")
    console.print(f"{pinned}: updated from v{held.version} to v{newest.version}")


@trust_app.command("check-update")
@friendly
def check_update(
    pinned: Annotated[Path, typer.Argument(help="The trust root file you hold.")],
    candidate: Annotated[Path, typer.Argument(help="A newer version, e.g. a downloaded N.json.")],
) -> None:
    """Check that CANDIDATE is a valid next version of PINNED (exit 1, with the reason, if not)."""
    from hybrid_store.core.trust import check_update as check
    from hybrid_store.core.trust import parse
    from hybrid_store.verifier.trust import load, read_file, read_json

    held = load(pinned)
    update_root = parse(read_json(read_file(candidate), str(candidate)))
    check(held, update_root)
    console.print(f"VALID: v{update_root.version} follows v{held.version}")


# --- signing keys -------------------------------------------------------------------------------------
def _source(cfg, purpose: str):
    from hybrid_store import trust
    from registry_service import receipts

    if purpose == "receipt":
        return receipts.key_source(cfg)
    if purpose == "trust-root":
        return trust.key_source(cfg)
    raise fail(f"unknown key purpose {purpose!r}", "choose receipt or trust-root")


def _audit_hook():
    from registry_service.cli.common import audit_hook

    return audit_hook()


@keys_app.command("list")
@friendly
def keys_list() -> None:
    """Every signing key with its window and status (private halves are never shown)."""
    from rich.table import Table

    from hybrid_store.signing_keys import keys_of

    db = database(settings())
    table = Table("purpose", "key id", "status", "valid from", "valid until", "reason")
    for purpose in ("receipt", "trust-root"):
        for k in keys_of(db, purpose):
            until = f"{k.valid_until:%Y-%m-%d %H:%M:%S}" if k.valid_until else ""
            table.add_row(purpose, k.kid, k.status, f"{k.valid_from:%Y-%m-%d %H:%M:%S}", until, k.reason or "")
    console.print(table)


@keys_app.command("init")
@friendly
def keys_init() -> None:
    """Make the first receipt and trust-root keys, where there are none (key administration: run as
    the owner role, before the service first starts; the runtime role may not make keys). Idempotent."""
    from hybrid_store.signing_keys import active_key

    cfg = settings()
    db = database(cfg)
    for purpose in ("receipt", "trust-root"):
        plaintext = cfg.keys_dir / "receipt-ed25519.pem" if purpose == "receipt" else None  # an older release's
        kid, _key = active_key(db, _source(cfg, purpose), legacy_plaintext=plaintext)
        console.print(f"{purpose} key {kid} is active")


@keys_app.command("rotate")
@friendly
def keys_rotate(
    purpose: Annotated[str, typer.Argument(help="receipt or trust-root")],
) -> None:
    """Retire the active key (its window closes now) and make a new one; publishes the trust root.

    What the retired key signed keeps verifying; servers pick up the new receipt key within
    LANDREG_SERVICE__KEY_CACHE_S seconds.
    """
    from hybrid_store.signing_keys import rotate

    cfg = settings()
    db = database(cfg)
    old, new = rotate(db, _source(cfg, purpose), audit=_audit_hook())
    console.print(f"{purpose} key {new} is active" + (f"; {old} retired" if old else ""))
    publish_trust(cfg, db)


@keys_app.command("compromise")
@friendly
def keys_compromise(
    kid: Annotated[str, typer.Argument(help="The key id, e.g. ed25519-0123456789abcdef.")],
    reason: Annotated[str, typer.Option(help="Why, for the audit log and the trust root's readers.")],
) -> None:
    """Mark a retired key compromised: nothing it ever signed verifies any more. Publishes the trust root."""
    from hybrid_store.signing_keys import mark_compromised

    cfg = settings()
    db = database(cfg)
    mark_compromised(db, kid, reason, audit=_audit_hook())
    console.print(f"{kid} marked compromised")
    publish_trust(cfg, db)
