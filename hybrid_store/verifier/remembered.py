"""A chain reader that asks the node what belongs to a batch once per run, for a verification of
many bundles (``landreg verify FOLDER --rpc URL``).

Everything a bundle's anchor rests on but the bundle itself is shared by every bundle of its batch:
the network (chain id, genesis), the contract's code, the anchoring transaction's receipt and event,
the root the contract holds for the batch, the depth and time of its block. ``Remembered`` keeps
each answer (and each refusal: a batch the contract does not have stays absent) for the run, keyed
by what was asked, so each is read once per contract and batch however many bundles name it. What
is a bundle's own is asked every time: whether its leaf was revoked (and why), and whether the
contract's own ``MerkleProof`` accepts its proof.

A node that fails to answer says nothing about the chain: the verdicts it leaves open are
UNAVAILABLE, as with one bundle. Once it has failed, the rest of the run does not wait on it again
(a hung node would cost a timeout per bundle): every later question raises ``ChainUnavailable``
with what the node did the first time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from hybrid_store.errors import ChainUnavailable
from hybrid_store.verifier.reader import ChainReader

if TYPE_CHECKING:
    from hybrid_store.chain.types import OnChainBatch, Receipt

T = TypeVar("T")


class _Outage:
    """The first failure to answer, shared by a reader and the contracts it points at."""

    def __init__(self) -> None:
        self.failure: ChainUnavailable | None = None


class Remembered:
    """``ChainReader`` over ``inner``, each batch-wide answer read once (see the module's docstring)."""

    def __init__(self, inner: ChainReader, outage: _Outage | None = None) -> None:
        self.inner = inner
        self._outage = outage or _Outage()
        self._answers: dict[tuple[Any, ...], tuple[bool, Any]] = {}
        self._contracts: dict[str, Remembered] = {}

    def _ask(self, key: tuple[Any, ...], call: Callable[[], T], *, remember: bool = True) -> T:
        failure = self._outage.failure
        if failure is not None:
            raise ChainUnavailable(f"{failure} (the node failed earlier in this run, so it was not asked again)")
        known = self._answers.get(key)
        if known is not None:
            answered, value = known
            if answered:
                return value
            raise value.with_traceback(None)  # raised again for each bundle: no traceback piling up
        try:
            value = call()
        except ChainUnavailable as exc:
            self._outage.failure = exc
            raise
        except Exception as exc:  # the node's refusal is its answer (no such batch): kept as one
            if remember:
                self._answers[key] = (False, exc)
            raise
        if remember:
            self._answers[key] = (True, value)
        return value

    # the network
    @property
    def chain_id(self) -> int:
        return self._ask(("chain_id",), lambda: self.inner.chain_id)

    def ensure_reachable(self) -> None:
        self._ask(("reachable",), self.inner.ensure_reachable)

    def genesis_hash(self) -> str:
        return self._ask(("genesis",), self.inner.genesis_hash)

    def block_timestamp(self, number: int) -> int:
        return self._ask(("time", number), lambda: self.inner.block_timestamp(number))

    def confirmations(self, receipt_block: int, receipt_block_hash: str) -> int:
        # read once per run: a run that takes minutes reports the depth its batch had when first asked
        return self._ask(("depth", receipt_block, receipt_block_hash),
                         lambda: self.inner.confirmations(receipt_block, receipt_block_hash))  # fmt: skip

    # a contract
    def at(self, address: str) -> Remembered:
        key = address.lower()
        if key not in self._contracts:
            self._contracts[key] = Remembered(self._ask(("at", key), lambda: self.inner.at(address)), self._outage)
        return self._contracts[key]

    def has_code(self, address: str) -> bool:
        return self._ask(("has_code", address.lower()), lambda: self.inner.has_code(address))

    def code_hash(self, address: str) -> str:
        return self._ask(("code_hash", address.lower()), lambda: self.inner.code_hash(address))

    def receipt(self, tx_hash: str) -> Receipt | None:
        return self._ask(("receipt", tx_hash), lambda: self.inner.receipt(tx_hash))

    def anchored_events(self, receipt: Receipt) -> list[dict[str, Any]]:
        return self._ask(("events", receipt.tx_hash), lambda: self.inner.anchored_events(receipt))

    def anchoring_receipt(self, chain_batch_id: int, from_block: int = 0) -> Receipt | None:
        return self._ask(("anchoring", chain_batch_id, from_block),
                         lambda: self.inner.anchoring_receipt(chain_batch_id, from_block))  # fmt: skip

    # the registry's state: the batch's, once; the leaf's, each time
    def batch_count(self) -> int:
        return self._ask(("batch_count",), self.inner.batch_count, remember=False)

    def get_batch(self, batch_id: int) -> OnChainBatch:
        return self._ask(("batch", batch_id), lambda: self.inner.get_batch(batch_id))

    def batch_of_root(self, root: bytes) -> int | None:
        return self._ask(("batch_of_root", root), lambda: self.inner.batch_of_root(root))

    def revoked_at(self, batch_id: int, leaf: bytes) -> int:
        return self._ask((), lambda: self.inner.revoked_at(batch_id, leaf), remember=False)

    def revocation_reason(self, chain_batch_id: int, leaf: bytes, from_block: int = 0) -> bytes | None:
        return self._ask((), lambda: self.inner.revocation_reason(chain_batch_id, leaf, from_block), remember=False)

    def verify_commitment(self, batch_id: int, proof: list[bytes], commitment: bytes) -> bool:
        return self._ask((), lambda: self.inner.verify_commitment(batch_id, proof, commitment), remember=False)
