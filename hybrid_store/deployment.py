"""Which DeedRegistry this database anchors to, and the checks that it is still there.

The database records every deployment (chain id, genesis hash, address); the newest is active.
Attaching refuses a node that is not that chain: another chain id, another genesis (the node was
reset), or no contract code at the address. Anchoring to the wrong chain is never silent.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from hybrid_store.chain.client import RegistryChain
from hybrid_store.db.engine import Database
from hybrid_store.db.models import ChainDeployment
from hybrid_store.errors import ChainError, ChainMismatch

log = logging.getLogger(__name__)


def active_deployment(session: Session) -> ChainDeployment | None:
    return session.scalar(select(ChainDeployment).order_by(ChainDeployment.id.desc()).limit(1))


def check_deployment(chain: RegistryChain, deployment: ChainDeployment) -> None:
    """Raise ``ChainMismatch`` unless the node is the chain ``deployment`` lives on."""
    if chain.chain_id != deployment.chain_id:
        raise ChainMismatch(
            f"{chain.description} is chain {chain.chain_id}, but this registry anchors to chain "
            f"{deployment.chain_id} (contract {deployment.contract_address})"
        )
    genesis = chain.genesis_hash()
    if genesis != deployment.genesis_hash:
        raise ChainMismatch(
            f"{chain.description} has genesis {genesis}, not {deployment.genesis_hash}: the chain was reset "
            "or replaced. Run `landreg reconcile` to see what is missing"
        )
    if not chain.has_code(deployment.contract_address):
        raise ChainMismatch(
            f"no contract code at {deployment.contract_address} on {chain.description}: the chain lost state. "
            "Run `landreg reconcile` to see what is missing"
        )


def attach(db: Database, chain: RegistryChain, *, deploy_if_missing: bool = True) -> ChainDeployment:
    """Point ``chain`` at this registry's contract, deploying (and recording) one on first use."""
    chain.ensure_reachable()
    with db.read() as session:
        deployment = active_deployment(session)
    configured = chain.address
    if deployment is not None and (configured is None or configured == deployment.contract_address):
        check_deployment(chain, deployment)
        chain.address = deployment.contract_address
        return deployment
    if configured is not None:
        if not chain.has_code(configured):
            raise ChainMismatch(f"no contract code at the configured address {configured} on {chain.description}")
        return _record(db, chain, configured, None, None)
    if not deploy_if_missing:
        raise ChainError("no DeedRegistry deployed yet: run `landreg chain deploy`")
    receipt = chain.deploy()
    log.info("deployed DeedRegistry at %s (tx %s)", chain.address, receipt.tx_hash)
    assert chain.address is not None
    return _record(db, chain, chain.address, receipt.tx_hash, receipt.block_number)


def _record(
    db: Database, chain: RegistryChain, address: str, tx_hash: str | None, block: int | None
) -> ChainDeployment:
    deployment = ChainDeployment(
        chain_id=chain.chain_id,
        genesis_hash=chain.genesis_hash(),
        contract_address=address,
        registrar=chain.account.address if chain.account else "",
        deploy_tx=tx_hash,
        deploy_block=block,
    )
    with db.write() as session:
        session.add(deployment)
    return deployment
