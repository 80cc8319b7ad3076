"""``landreg chain``: the managed local anvil node and the DeedRegistry deployment."""

from __future__ import annotations

import typer

from registry_service.cli.common import chain_for, console, database, fail, friendly, settings

app = typer.Typer(help="Run the local anvil node and deploy the DeedRegistry contract.", no_args_is_help=True)


@app.command()
@friendly
def start() -> None:
    """Start the managed anvil node (state under LANDREG_HOME/chain) and deploy the contract if needed."""
    from hybrid_store.chain.anvil import ManagedAnvil

    cfg = settings()
    if cfg.chain.backend != "anvil":
        raise fail(f"chain.backend is {cfg.chain.backend!r}; only the managed anvil node can be started here")
    status = ManagedAnvil(cfg).start()
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
