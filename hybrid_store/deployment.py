"""Which DeedRegistry this database anchors to, and the checks that it is still there.

The database records every deployment (chain id, genesis hash, address, code hash, and the block
range in which it was the registry's); the newest is active. Attaching refuses a node that is not
that chain: another chain id, another genesis (the node was reset), or no contract code at the
address; and it refuses a configured address that is not the active deployment. Moving to another
contract is an explicit ``adopt`` (or ``upgrade``) that closes the old range and is published in
the trust root. Anchoring to the wrong chain or contract is never silent.
"""

from __future__ import annotations

import logging

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hybrid_store.chain.client import RegistryChain
from hybrid_store.chain.port import ChainPort
from hybrid_store.chain.releases import release_of
from hybrid_store.db.engine import Database
from hybrid_store.db.models import ChainDeployment
from hybrid_store.errors import ChainError, ChainMismatch, ChainReset

log = logging.getLogger(__name__)


def active_deployment(session: Session) -> ChainDeployment | None:
    return session.scalar(select(ChainDeployment).order_by(ChainDeployment.id.desc()).limit(1))


def identity_problems(chain: ChainPort, deployment: ChainDeployment) -> list[str]:
    """Why the node is not the chain ``deployment`` lives on (another chain id, another genesis: a
    reset, or no contract code, or code other than the pinned release's: lost state or another
    contract); empty when it is. The chain id is read afresh: the node behind a URL may have been
    replaced. Reading the node may raise ``ChainUnavailable``: an unreachable node is not a reset."""
    problems = []
    chain_id = chain.current_chain_id()
    if chain_id != deployment.chain_id:
        problems.append(f"the node is chain {chain_id}, the registry anchors to chain {deployment.chain_id}")
    genesis = chain.genesis_hash()
    if genesis != deployment.genesis_hash:
        problems.append(f"the chain's genesis is {genesis}, not {deployment.genesis_hash} (the chain was reset)")
    if problems:
        return problems
    if not chain.has_code(deployment.contract_address):
        problems.append(f"no contract code at {deployment.contract_address} (the chain lost its state)")
    elif deployment.code_hash is not None and (code_hash := chain.code_hash(deployment.contract_address)) != (
        deployment.code_hash
    ):
        problems.append(f"the code at {deployment.contract_address} hashes to {code_hash}, not the pinned "
                        f"{deployment.code_hash} (another contract)")  # fmt: skip
    return problems


def check_deployment(chain: RegistryChain, deployment: ChainDeployment) -> None:
    """Raise ``ChainReset`` (a ``ChainMismatch``) unless the node is the chain ``deployment`` lives
    on; when it is, ``chain`` sends to nothing else from now on (``NodeClient.pin``)."""
    problems = identity_problems(chain, deployment)
    if problems:
        raise ChainReset(
            f"{chain.description} is not this registry's chain (contract {deployment.contract_address}): "
            f"{'; '.join(problems)}. Run `landreg reconcile` to see what is missing"
        )
    chain.pin(deployment.chain_id, deployment.genesis_hash)


def attach(db: Database, chain: RegistryChain, *, deploy_if_missing: bool = True) -> ChainDeployment:
    """Point ``chain`` at this registry's contract, deploying (and recording) one on first use.

    A configured address other than the active deployment's is refused: switching contracts is
    never silent (``adopt`` does it, and the trust root must be published again)."""
    chain.ensure_reachable()
    with db.read() as session:
        deployment = active_deployment(session)
    configured = chain.address
    if deployment is not None:
        if configured is not None and configured != deployment.contract_address:
            raise ChainMismatch(
                f"LANDREG_CHAIN__CONTRACT_ADDRESS is {configured}, but this registry anchors to "
                f"{deployment.contract_address}; switching contracts is never silent: run "
                f"`landreg chain adopt {configured} --confirm` and publish the new trust root, "
                "or unset the setting"
            )
        check_deployment(chain, deployment)
        chain.address = deployment.contract_address
        if deployment.code_hash is None or deployment.active_from_block is None:
            deployment = _backfill(db, chain, deployment)
        return deployment
    if configured is not None:
        # first use, attaching to a contract deployed elsewhere: only anchors from now on are ours
        return _record(db, chain, configured, None, None, from_block=chain.head() + 1)
    if not deploy_if_missing:
        raise ChainError("no DeedRegistry deployed yet: run `landreg chain deploy`")
    receipt = chain.deploy()
    log.info("deployed DeedRegistry at %s (tx %s)", chain.address, receipt.tx_hash)
    assert chain.address is not None
    return _record(db, chain, chain.address, receipt.tx_hash, receipt.block_number, from_block=receipt.block_number)


def _known_release(chain: RegistryChain, address: str) -> tuple[str, int]:
    if not chain.has_code(address):
        raise ChainMismatch(f"no contract code at {address} on {chain.description}")
    code_hash = chain.code_hash(address)
    version = release_of(code_hash)
    if version is None:
        raise ChainMismatch(
            f"the contract at {address} is not a DeedRegistry release landreg knows (code hash {code_hash})"
        )
    return code_hash, version


def _backfill(db: Database, chain: RegistryChain, deployment: ChainDeployment) -> ChainDeployment:
    """Deployments recorded before the trust root existed get their code hash and range once."""
    code_hash, version = _known_release(chain, deployment.contract_address)
    with db.write() as s:
        row = s.get(ChainDeployment, deployment.id)
        assert row is not None
        row.code_hash, row.registry_version = code_hash, version
        if row.active_from_block is None:
            row.active_from_block = row.deploy_block if row.deploy_block is not None else 0
        s.flush()
        s.expunge(row)
    return row


def _record(
    db: Database, chain: RegistryChain, address: str, tx_hash: str | None, block: int | None, *, from_block: int
) -> ChainDeployment:
    code_hash, version = _known_release(chain, address)
    deployment = ChainDeployment(
        chain_id=chain.chain_id,
        genesis_hash=chain.genesis_hash(),
        contract_address=address,
        registrar=chain.signer_address or "",
        deploy_tx=tx_hash,
        deploy_block=block,
        code_hash=code_hash,
        registry_version=version,
        active_from_block=from_block,
    )
    with db.write() as session:
        session.add(deployment)
    chain.pin(deployment.chain_id, deployment.genesis_hash)
    return deployment


def adopt(db: Database, chain: RegistryChain, address: str, *, deploy_tx: str | None = None,
          deploy_block: int | None = None) -> ChainDeployment:  # fmt: skip
    """Make ``address`` the registry's contract from the next block on, closing the active
    deployment's range at the current head. Refuses with batches still unconfirmed on the old one."""
    from hybrid_store.chain.node import checksum
    from hybrid_store.db.models import AnchorBatch, BatchState

    address = checksum(address)
    chain.ensure_reachable()
    with db.read() as s:
        current = active_deployment(s)
        if current is not None:
            check_deployment(chain, current)
            if current.contract_address == address:
                raise ChainError(f"{address} is already the registry's contract")
            open_batches = s.scalar(
                select(func.count())
                .select_from(AnchorBatch)
                .where(
                    AnchorBatch.deployment_id == current.id,
                    AnchorBatch.state.in_((BatchState.SIGNED, BatchState.MINED)),
                )
            )
            if open_batches:
                raise ChainError(
                    f"{open_batches} batches of {current.contract_address} are not confirmed yet: "
                    "run `landreg worker --drain` first"
                )
    code_hash, version = _known_release(chain, address)
    head = chain.head()
    with db.write() as s:
        if current is not None:
            row = s.get(ChainDeployment, current.id)
            assert row is not None
            row.active_until_block = head
        deployment = ChainDeployment(
            chain_id=chain.chain_id, genesis_hash=chain.genesis_hash(), contract_address=address,
            registrar=chain.signer_address or "", deploy_tx=deploy_tx, deploy_block=deploy_block,
            code_hash=code_hash, registry_version=version, active_from_block=head + 1,
        )  # fmt: skip
        s.add(deployment)
        s.flush()
        s.expunge(deployment)
    chain.address = address
    return deployment


def upgrade(db: Database, chain: RegistryChain) -> ChainDeployment:
    """Deploy the current DeedRegistry release and adopt it; token numbering continues."""
    with db.read() as s:
        current = active_deployment(s)
    first_token = 0
    if current is not None:
        check_deployment(chain, current)
        chain.address = current.contract_address
        first_token = chain.next_token_id()
    old_address = chain.address
    receipt = chain.deploy(first_token_id=first_token)
    new_address = chain.address
    assert new_address is not None
    chain.address = old_address
    return adopt(db, chain, new_address, deploy_tx=receipt.tx_hash, deploy_block=receipt.block_number)
