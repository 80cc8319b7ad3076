"""The on-chain half of verifying a bundle, against a chain the auditor chooses, pinned to the
registry's trust root: the chain id and genesis, the contract's code, the anchoring transaction and
its event, the root stored for the batch, revocation, the contract's own Merkle verification, and
the depth of the anchor's block.

A revocation tagged "superseded" is the registry's word (its registrar key can revoke any leaf with
any tag), so ``verify_anchor`` says SUPERSEDED only when it is shown the successor: that version's own
bundle, verified the same way, whose commitment the tag names and whose committed history link names
this record on each of its parcels (``core.standing.supersession_problem``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from hybrid_store.core import bundle as bundles
from hybrid_store.core import merkle
from hybrid_store.core.hashing import to_hex
from hybrid_store.core.standing import (
    CURRENT,
    REVOKED,
    SUPERSEDED,
    Standing,
    parcel_keys,
    standing_of,
    supersession_problem,
)
from hybrid_store.core.trust import Deployment, TrustRoot
from hybrid_store.errors import AnchorPending, ChainUnavailable, VerificationFailed
from hybrid_store.verifier.reader import ChainReader

if TYPE_CHECKING:
    from hybrid_store.chain.types import Receipt

#: confirmations a verifier asks for unless told otherwise: the anchor's own block. The trust root
#: does not name a depth, so the auditor chooses one (``landreg verify --confirmations``) and the
#: registry's own service uses the depth it settles batches at (``chain.confirmations``)
DEFAULT_DEPTH = 1


@dataclass(frozen=True)
class AnchorVerdict:
    chain_id: int
    contract: str
    batch_id: int
    block_number: int
    block_time: int  # the anchor block's timestamp (receipts are checked against it)
    confirmations: int
    registry_version: int
    trust_version: int
    moved: str = ""  # what a reorganisation moved since the bundle was made (the anchor still holds)
    tx_hash: str = ""  # the transaction that anchors it on the chain now
    standing: Standing = Standing(CURRENT)  # superseded or deleted in legacy, as the contract says
    #: a superseded record's successor, as its verified bundle shows it: commitment, instrument number
    successor: tuple[bytes, str | None] | None = None


#: the bundle of the version that superseded the record with this commitment, if one can be had
Successors = Callable[[bytes], "bundles.ProofBundle | None"]


def verify_anchor(
    bundle: bundles.ProofBundle, chain: ChainReader, trust: TrustRoot, *, successor_of: Successors | None = None,
    depth: int = DEFAULT_DEPTH,
) -> AnchorVerdict:  # fmt: skip
    """Check a (mathematically valid) bundle's anchor on ``chain``, pinned to ``trust``: the chain and
    the contract must be ones the registry's trust root lists, and the anchor must lie in the block
    range in which that contract was the registry's. Nothing is taken from the bundle on trust.
    A record revoked as superseded is reported so only when its successor's bundle (the bundle's
    ``successor``, else ``successor_of``'s) shows it. Raises ``VerificationFailed`` with a one-line
    reason naming what was expected and what was found, and ``AnchorPending`` when everything holds
    but the anchor's block has fewer than ``depth`` confirmations."""
    verdict = anchored(bundle, chain, trust, depth=depth)
    if verdict.standing.kind == SUPERSEDED:
        evidence = bundle.successor
        if evidence is None and successor_of is not None:
            evidence = successor_of(bundle.commitment)
        shown = _show_supersession(bundle, verdict.standing, evidence, chain, trust, depth)
        verdict = replace(verdict, successor=(shown.commitment, shown.disclosed("instrument_number")))
    return verdict


def _show_supersession(
    bundle: bundles.ProofBundle, now: Standing, evidence: bundles.ProofBundle | None, chain: ChainReader,
    trust: TrustRoot, depth: int,
) -> bundles.ProofBundle:  # fmt: skip
    """``evidence``, verified to show that the version the revocation names superseded the record
    (else ``VerificationFailed`` saying why not)."""
    assert now.successor is not None
    claim = (
        f"the record's leaf was revoked at block {now.at_block}, and the registry says the version whose "
        f"commitment starts {to_hex(now.successor)} superseded it, but that could not be shown: "
    )
    advice = (
        ". Do not take this record as current; verify it with the newer version's proof bundle (fetch this record's "
        "bundle again from the registry, or `landreg verify BUNDLE --successor NEWER.json`)"
    )
    if evidence is None:
        raise VerificationFailed(claim + "no proof bundle of that version came with this one" + advice)
    try:
        bundles.verify_offline(evidence)
        anchored(evidence, chain, trust, depth=depth)
    except VerificationFailed as exc:
        raise VerificationFailed(
            claim + f"the newer version's bundle does not verify ({exc.reason})" + advice
        ) from None
    parcels = parcel_keys(bundle.disclosed("parcels"), bundle.disclosed("prev"))
    problem = supersession_problem(bundle.commitment, parcels, now.successor, evidence.commitment,
                                   evidence.disclosed("prev"))  # fmt: skip
    if problem:
        raise VerificationFailed(claim + problem + advice)
    return evidence


def anchored(bundle: bundles.ProofBundle, chain: ChainReader, trust: TrustRoot, *, depth: int) -> AnchorVerdict:
    """``verify_anchor`` but for the standing, which is the chain's claim as its revocation reads."""
    anchor, tree = bundle.anchor, bundle.tree
    if anchor is None or tree is None:
        raise VerificationFailed("the record is pending: its batch has not been anchored yet")
    check_jurisdiction(bundle, trust)
    placed = _placed(anchor, tree, chain, trust)
    now = _check_batch(bundle, placed.contract, anchor.batch_id, placed.deployment.from_block)
    return _deep_enough(anchor, placed, trust, depth, now)


@dataclass(frozen=True)
class _Placed:
    """An anchor found where the trust root allows it: the listed contract, and the transaction
    that anchored the root as the batch."""

    deployment: Deployment
    contract: ChainReader
    receipt: Receipt


def _placed(anchor: bundles.Anchor, tree: bundles.TreeProof, chain: ChainReader, trust: TrustRoot) -> _Placed:
    _check_network(anchor, chain, trust)
    deployment, contract = _listed_contract(anchor, chain, trust)
    receipt = _anchoring_receipt(anchor, tree, contract, deployment)
    if not deployment.covers(receipt.block_number):
        raise VerificationFailed(
            f"the anchor is in block {receipt.block_number}, outside the range in which {deployment.contract} "
            f"was the registry's contract ({deployment.describe_range()}, {trust.describe()})"
        )
    return _Placed(deployment, contract, receipt)


def _deep_enough(anchor: bundles.Anchor, placed: _Placed, trust: TrustRoot, depth: int, now: Standing) -> AnchorVerdict:
    receipt, contract, deployment = placed.receipt, placed.contract, placed.deployment
    # the block number only said where the transaction was when the bundle was made
    moved = "" if receipt.block_number == anchor.block_number else (
        f"the anchoring transaction is now in block {receipt.block_number}, not {anchor.block_number} "
        "(a reorganisation moved it)")  # fmt: skip
    confirmations = contract.confirmations(receipt.block_number, receipt.block_hash)
    if confirmations < depth:  # everything holds, but a reorganisation could still undo it
        raise AnchorPending(confirmations, depth, receipt.block_number)
    return AnchorVerdict(
        chain_id=anchor.chain_id, contract=deployment.contract, batch_id=anchor.batch_id,
        block_number=receipt.block_number, block_time=contract.block_timestamp(receipt.block_number),
        confirmations=confirmations,
        registry_version=deployment.registry_version, trust_version=trust.version, moved=moved,
        tx_hash=receipt.tx_hash, standing=now,
    )  # fmt: skip


def anchored_batch(
    anchor: bundles.Anchor, root: bytes, chain: ChainReader, trust: TrustRoot, *, depth: int
) -> tuple[AnchorVerdict, Callable[[bytes], Standing]]:
    """A batch, once for all of its leaves an auditor holds (a title abstract's records, its title
    state's marker): the anchor as ``anchored`` checks it, and a function from a leaf (whose
    standard-v1 proof to ``root`` the caller has checked) to its standing on the chain. A leaf
    revoked for no reason the registry explains raises ``VerificationFailed``."""
    tree = bundles.TreeProof(merkle.COMMITMENT_ENCODING, (to_hex(bytes(32)),), (), root)
    placed = _placed(anchor, tree, chain, trust)
    _batch_root(placed.contract, anchor.batch_id, root)
    verdict = _deep_enough(anchor, placed, trust, depth, Standing(CURRENT))

    def standing(leaf: bytes) -> Standing:
        revoked = placed.contract.revoked_at(anchor.batch_id, leaf)
        if not revoked:
            return Standing(CURRENT)
        now = standing_of(revoked, placed.contract.revocation_reason(anchor.batch_id, leaf,
                                                                      placed.deployment.from_block))  # fmt: skip
        if now.kind == REVOKED:
            raise VerificationFailed(f"the record with leaf {to_hex(leaf)} was {now.describe()}")
        return now

    return verdict, standing


def _batch_root(contract: ChainReader, batch_id: int, root: bytes) -> None:
    try:
        on_chain = contract.get_batch(batch_id)
    except ChainUnavailable:
        raise  # a node that failed to answer says nothing about the batch: the verdict is "unavailable"
    except Exception:
        raise VerificationFailed(f"the contract has no batch {batch_id}") from None
    if on_chain.root != root:
        raise VerificationFailed(f"batch {batch_id} on chain has root {to_hex(on_chain.root)}, not {to_hex(root)}")


def claimed_of_registry(bundle: bundles.ProofBundle, trust: TrustRoot) -> Deployment:
    """What the trust root alone says of an anchored bundle, without a chain: its jurisdiction, its
    chain and its contract must be the registry's. The deployment the trust root lists for the
    contract, or ``VerificationFailed`` with the reason the check on chain gives (a verification of
    many bundles names a bundle of another registry offline)."""
    assert bundle.anchor is not None
    check_jurisdiction(bundle, trust)
    check_anchor_chain(bundle.anchor, trust)
    return listed_deployment(bundle.anchor, trust)


def check_jurisdiction(bundle: bundles.ProofBundle, trust: TrustRoot) -> None:
    if bundle.jurisdiction is not None and bundle.jurisdiction != trust.jurisdiction:
        raise VerificationFailed(
            f"the bundle reads its parcels as {bundle.jurisdiction!r} does, but {trust.describe()} is a registry of "
            f"{trust.jurisdiction!r}: not a record of this registry"
        )


def check_anchor_chain(anchor: bundles.Anchor, trust: TrustRoot) -> None:
    if anchor.chain_id != trust.chain_id:
        raise VerificationFailed(
            f"the bundle was anchored on chain {anchor.chain_id}, but {trust.describe()} lists chain {trust.chain_id}"
        )


def listed_deployment(anchor: bundles.Anchor, trust: TrustRoot) -> Deployment:
    """The deployment the trust root lists for the bundle's contract (never the bundle's own word)."""
    deployment = trust.deployment(anchor.contract)
    if deployment is None:
        listed = ", ".join(f"{d.contract} ({d.describe_range()})" for d in trust.deployments) or "none"
        raise VerificationFailed(
            f"contract {anchor.contract} is not a DeedRegistry of {trust.registry_name}: {trust.describe()} lists {listed}"
        )
    return deployment


def _check_network(anchor: bundles.Anchor, chain: ChainReader, trust: TrustRoot) -> None:
    """The bundle's chain, and the node's chain and genesis, are the trust root's."""
    check_anchor_chain(anchor, trust)
    if chain.chain_id != trust.chain_id:
        raise VerificationFailed(
            f"the node is chain {chain.chain_id}, but {trust.describe()} lists chain {trust.chain_id}"
        )
    genesis = chain.genesis_hash()
    if genesis != trust.genesis_hash:
        raise VerificationFailed(
            f"the node's genesis block is {genesis}, but {trust.describe()} lists {trust.genesis_hash} "
            "(another network with the same chain id, or a reset chain)"
        )


def _listed_contract(anchor: bundles.Anchor, chain: ChainReader, trust: TrustRoot) -> tuple[Deployment, ChainReader]:
    """The deployment the trust root lists for the bundle's contract, with its code as listed."""
    deployment = listed_deployment(anchor, trust)
    contract = chain.at(deployment.contract)  # the listed contract, read-only
    if not contract.has_code(deployment.contract):
        raise VerificationFailed(f"no contract at {deployment.contract} on this chain (reset chain or wrong network)")
    code_hash = contract.code_hash(deployment.contract)
    if code_hash != deployment.code_hash:
        raise VerificationFailed(
            f"the code at {deployment.contract} has hash {code_hash}, but the trust root lists {deployment.code_hash}"
        )
    return deployment, contract


def _anchoring_receipt(
    anchor: bundles.Anchor, tree: bundles.TreeProof, contract: ChainReader, deployment: Deployment
) -> Receipt:
    """The receipt of the transaction the bundle names, which must have anchored this root as this
    batch of the listed contract. Both survive a reorganisation (the worker sends the very same
    transaction again); the block it is in may not, and is not relied on."""
    receipt = contract.receipt(anchor.tx_hash)
    if receipt is None or receipt.status != 1:
        what = "is not on this chain" if receipt is None else "reverted"
        raise VerificationFailed(f"the anchoring transaction {anchor.tx_hash} {what}" + _anchored_elsewhere(
            contract, tree.root, anchor, deployment.from_block))  # fmt: skip
    events = [e for e in contract.anchored_events(receipt)
              if e["batchId"] == anchor.batch_id and bytes(e["root"]) == tree.root]  # fmt: skip
    if not events or (receipt.to or "").lower() != deployment.contract.lower():
        raise VerificationFailed(
            f"transaction {anchor.tx_hash} did not anchor root {to_hex(tree.root)} as batch {anchor.batch_id} "
            f"of {deployment.contract}"
        )
    return receipt


def _check_batch(bundle: bundles.ProofBundle, contract: ChainReader, batch_id: int, from_block: int) -> Standing:
    """The contract's own record: the batch holds the root and the contract's MerkleProof accepts
    the proof of the commitment; and the record's standing: current, or revoked with the reason
    the contract's event gives (superseded by a newer version, deleted in the legacy system)."""
    tree = bundle.tree
    assert tree is not None
    _batch_root(contract, batch_id, tree.root)
    revoked = contract.revoked_at(batch_id, tree.leaf)
    if revoked:  # the contract's verifyCommitment answers false for a revoked leaf: the root equality
        # above and the bundle's proof, checked here against that root, place it in the batch
        now = standing_of(revoked, contract.revocation_reason(batch_id, tree.leaf, from_block))
        if now.kind == REVOKED:  # not a replacement the registry explains: the record does not stand
            raise VerificationFailed(f"the record was {now.describe()}")
        bundles.verify_offline(bundle)
        return now
    if not contract.verify_commitment(batch_id, list(tree.proof), bundle.commitment):
        raise VerificationFailed("the contract's MerkleProof rejects the proof")
    return Standing(CURRENT)


def _anchored_elsewhere(chain: ChainReader, root: bytes, anchor: bundles.Anchor, from_block: int) -> str:
    """A hint when the contract holds the root under another transaction (the batch was anchored
    again after a reorganisation replaced its transaction): the bundle is stale, not the record."""
    try:
        batch_id = chain.batch_of_root(root)
        found = chain.anchoring_receipt(batch_id, from_block) if batch_id is not None else None
    except Exception:
        return ""
    if found is None or found.tx_hash == anchor.tx_hash:
        return ""
    return (
        f"; the contract holds this root as batch {batch_id}, anchored by transaction {found.tx_hash}: the "
        "bundle predates a reorganisation, fetch a fresh one"
    )
