"""``landreg chain``: the managed local anvil node and the DeedRegistry deployment."""

from __future__ import annotations

from typing import Annotated

import typer

from registry_service.cli.common import chain_for, console, database, fail, friendly, settings

app = typer.Typer(help="Run the local anvil node and deploy the DeedRegistry contract.", no_args_is_help=True)


@app.command()
@friendly
def start(
    attach: Annotated[bool, typer.Option(
        "--attach", help="Use a node landreg did not start that already answers on the port (its genesis must be "
        "this registry's chain).")] = False,
) -> None:  # fmt: skip
    """Start the managed anvil node (state under LANDREG_HOME/chain) and deploy the contract if needed."""
    from hybrid_store.chain.anvil import ManagedAnvil, refuse_foreign_genesis
    from hybrid_store.deployment import active_deployment

    cfg = settings()
    if cfg.chain.backend != "anvil":
        raise fail(f"chain.backend is {cfg.chain.backend!r}; only the managed anvil node can be started here")
    node = ManagedAnvil(cfg)
    status = node.start(attach=attach)
    if status.pid is None:  # a node landreg did not start, taken on purpose
        db = database(cfg)
        with db.read() as session:
            pinned = active_deployment(session)
        refuse_foreign_genesis(status, pinned.genesis_hash if pinned is not None else None)
        node.remember_attached(status)
        console.print(f"attached to the node already on {status.url} (not started by landreg)")
    console.print(
        f"anvil running: pid {status.pid}, {status.url}, chain id {status.chain_id}, block {status.block_number}"
    )
    _chain, deployment = chain_for(cfg, database(cfg))
    console.print(f"DeedRegistry at {deployment.contract_address}")


@app.command()
@friendly
def stop() -> None:
    """Stop the managed anvil node cleanly (it writes its state to disk first)."""
    from hybrid_store.chain.anvil import ManagedAnvil

    if ManagedAnvil(settings()).stop():
        console.print("anvil stopped; its state is saved")
    else:
        console.print("anvil was not running")


@app.command()
@friendly
def status() -> None:
    """Show the node, the contract and how many batches it holds."""
    from hybrid_store.chain.anvil import ManagedAnvil
    from hybrid_store.deployment import active_deployment

    cfg = settings()
    if cfg.chain.backend == "anvil":
        node = ManagedAnvil(cfg).status()
        state = "running" if node.block_number is not None else ("starting or stuck" if node.running else "stopped")
        console.print(f"anvil: {state}" + (f" (pid {node.pid})" if node.pid else "") + f", {node.url}")
        if node.block_number is None:
            raise typer.Exit(1)
        console.print(f"chain id {node.chain_id}, block {node.block_number}")
    db = database(cfg)
    with db.read() as session:
        deployment = active_deployment(session)
    if deployment is None:
        console.print("no DeedRegistry deployed yet (`landreg chain deploy`)")
        return
    chain, _ = chain_for(cfg, db, deploy_if_missing=False)
    console.print(
        f"DeedRegistry {deployment.contract_address}: {chain.batch_count()} batches anchored, "
        f"next parcel token {chain.next_token_id()}"
    )


@app.command()
@friendly
def deploy() -> None:
    """Deploy a DeedRegistry for this registry (once; later calls show the existing one)."""
    cfg = settings()
    _chain, deployment = chain_for(cfg, database(cfg))
    console.print(f"DeedRegistry at {deployment.contract_address} on chain {deployment.chain_id}")


# --- roles and pause ----------------------------------------------------------------------------------
def _attached():  # -> (cfg, db, chain)
    cfg = settings()
    db = database(cfg)
    chain, _deployment = chain_for(cfg, db, deploy_if_missing=False)
    return cfg, db, chain


def _audit(db, action: str, target: str, **details: object) -> None:
    from registry_service.cli.common import audit_cli

    audit_cli(db, action, target, **details)


@app.command()
@friendly
def roles() -> None:
    """Show who holds the admin, registrar and pauser roles of the registry's contract, and whether it is paused."""
    from hybrid_store.chain import keys

    cfg, _db, chain = _attached()
    for role in ("admin", "registrar", "pauser"):
        address = keys.role_address(cfg, role) if role != "registrar" else chain.signer_address
        if address is None:
            console.print(f"{role}: no key configured")
            continue
        holds = chain.has_role(role, address)
        console.print(f"{role}: {address} ({'holds the role' if holds else 'does NOT hold the role'})")
    console.print(f"paused: {'yes' if chain.paused() else 'no'}")


@app.command("grant-registrar")
@friendly
def grant_registrar(address: Annotated[str, typer.Argument(help="The new registrar key's address.")]) -> None:
    """Grant REGISTRAR_ROLE to ADDRESS (signed with the admin key)."""
    from hybrid_store.chain.connect import role_signer

    cfg, db, chain = _attached()
    receipt = role_signer(cfg, chain, "admin").grant_role("registrar", address)
    _audit(db, "chain.grant-registrar", address, tx=receipt.tx_hash)
    console.print(f"granted REGISTRAR_ROLE to {address} (tx {receipt.tx_hash})")


@app.command("revoke-registrar")
@friendly
def revoke_registrar(address: Annotated[str, typer.Argument(help="The registrar key to retire.")]) -> None:
    """Revoke REGISTRAR_ROLE from ADDRESS (signed with the admin key): it can anchor nothing more."""
    from hybrid_store.chain.connect import role_signer

    cfg, db, chain = _attached()
    receipt = role_signer(cfg, chain, "admin").revoke_role("registrar", address)
    _audit(db, "chain.revoke-registrar", address, tx=receipt.tx_hash)
    console.print(f"revoked REGISTRAR_ROLE of {address} (tx {receipt.tx_hash})")


@app.command("rotate-registrar")
@friendly
def rotate_registrar(
    new_address: Annotated[str, typer.Argument(help="The new registrar key's address (its keystore is ready).")],
) -> None:
    """Grant REGISTRAR_ROLE to NEW_ADDRESS and revoke it from the configured registrar key.

    Stop the anchoring worker first; afterwards point LANDREG_CHAIN__REGISTRAR_KEYSTORE at the new key.
    """
    from hybrid_store.chain.connect import role_signer
    from hybrid_store.db.models import AnchorBatch, BatchState

    cfg, db, chain = _attached()
    old = chain.signer_address or ""
    with db.read() as s:
        from sqlalchemy import func, select

        unconfirmed = s.scalar(
            select(func.count())
            .select_from(AnchorBatch)
            .where(AnchorBatch.state.in_((BatchState.SIGNED, BatchState.MINED)))
        )
    if unconfirmed:
        raise fail(f"{unconfirmed} batches are not confirmed yet", "run `landreg worker --drain` first, then rotate")
    admin = role_signer(cfg, chain, "admin")
    with _NoWorker(db):
        granted = admin.grant_role("registrar", new_address)
        revoked = admin.revoke_role("registrar", old)
    _audit(db, "chain.rotate-registrar", new_address, retired=old, grant_tx=granted.tx_hash, revoke_tx=revoked.tx_hash)
    console.print(f"registrar rotated: {new_address} granted, {old} revoked")
    console.print("now set LANDREG_CHAIN__REGISTRAR_KEYSTORE (+ _PASSWORD) to the new key and restart the worker")


@app.command()
@friendly
def pause() -> None:
    """Stop every state change of the contract (signed with the pauser key)."""
    from hybrid_store.chain.connect import role_signer

    cfg, db, chain = _attached()
    receipt = role_signer(cfg, chain, "pauser").pause()
    _audit(db, "chain.pause", str(chain.address), tx=receipt.tx_hash)
    console.print(f"paused {chain.address} (tx {receipt.tx_hash}); anchoring waits until `landreg chain unpause`")


@app.command()
@friendly
def unpause() -> None:
    """Resume state changes (signed with the pauser key)."""
    from hybrid_store.chain.connect import role_signer

    cfg, db, chain = _attached()
    receipt = role_signer(cfg, chain, "pauser").unpause()
    _audit(db, "chain.unpause", str(chain.address), tx=receipt.tx_hash)
    console.print(f"unpaused {chain.address} (tx {receipt.tx_hash})")


class _NoWorker:
    """Holds the anchoring worker's lock for the duration of a change of keys or contracts, so no
    worker anchors with a stale key or into a retired contract meanwhile."""

    def __init__(self, db):
        from hybrid_store.worker_lock import WorkerLock

        self.lock = WorkerLock(db)

    def __enter__(self) -> None:
        if not self.lock.acquire():
            raise fail(
                "an anchoring worker is running for this registry (`landreg serve` or `landreg worker`)",
                "stop it first; start it again afterwards",
            )

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


# --- moving to another contract -----------------------------------------------------------------------
ConfirmOption = Annotated[bool, typer.Option("--confirm", help="Yes: move the registry to another contract.")]


@app.command()
@friendly
def upgrade(confirm: ConfirmOption = False) -> None:
    """Deploy the current DeedRegistry release and make it the registry's contract from the next block.

    The old deployment stays in the trust root with its closed block range, so every bundle anchored
    there keeps verifying; token numbering continues. Publishes the new trust root.
    """
    from hybrid_store.deployment import upgrade as do_upgrade
    from registry_service.cli.trust import publish_trust

    if not confirm:
        raise fail("moving the registry to a new contract is never silent", "run again with --confirm")
    cfg, db, chain = _attached()
    old = chain.address
    with _NoWorker(db):
        deployment = do_upgrade(db, chain)
    _audit(db, "chain.upgrade", deployment.contract_address, previous=old, from_block=deployment.active_from_block)
    console.print(
        f"the registry now anchors to {deployment.contract_address} (DeedRegistry v{deployment.registry_version}) "
        f"from block {deployment.active_from_block}; {old} is retired"
    )
    publish_trust(cfg, db)


@app.command()
@friendly
def adopt(
    address: Annotated[str, typer.Argument(help="A DeedRegistry deployed elsewhere, to anchor to from now on.")],
    confirm: ConfirmOption = False,
) -> None:
    """Make ADDRESS the registry's contract from the next block (its code must be a known release).
    Publishes the new trust root; unset LANDREG_CHAIN__CONTRACT_ADDRESS or set it to ADDRESS afterwards."""
    from hybrid_store.chain.connect import open_chain
    from hybrid_store.deployment import adopt as do_adopt
    from registry_service.cli.trust import publish_trust

    if not confirm:
        raise fail(f"{address} is not the registry's contract; adopting it is never silent", "run again with --confirm")
    cfg = settings()
    db = database(cfg)
    chain = open_chain(cfg)
    chain.address = None
    with _NoWorker(db):
        deployment = do_adopt(db, chain, address)
    _audit(db, "chain.adopt", deployment.contract_address, from_block=deployment.active_from_block)
    console.print(
        f"the registry now anchors to {deployment.contract_address} from block {deployment.active_from_block}"
    )
    publish_trust(cfg, db)


@app.command()
@friendly
def holds() -> None:
    """Show why anchoring waits, if it does (paused, missing role, fee ceiling, permanent failure)."""
    from hybrid_store.batches import open_holds

    db = database(settings())
    with db.read() as s:
        found = open_holds(s)
    if not found:
        console.print("anchoring is not held")
        return
    for h in found:
        console.print(f"{h.kind}: since {h.since:%Y-%m-%d %H:%M:%S} UTC: {h.reason}")
    raise typer.Exit(1)


@app.command("release-hold")
@friendly
def release_hold(
    kind: Annotated[str, typer.Argument(help="The hold to release (permanent, or any other kind).")],
    reason: Annotated[str, typer.Option(help="Why it is safe to anchor again (audit-logged).")],
) -> None:
    """Let anchoring go on after a permanent failure an operator has looked at. Paused, missing-role
    and fee-ceiling holds clear themselves when their cause goes; releasing one early only makes the
    worker try (and hold) again."""
    from hybrid_store.batches import clear_hold

    db = database(settings())
    if not clear_hold(db, kind, f"cli: {reason}"):
        raise fail(f"no open {kind} hold", "`landreg chain holds` lists them")
    _audit(db, "anchoring.release-hold", kind, reason=reason)
    console.print(f"released the {kind} hold; the worker anchors again")
