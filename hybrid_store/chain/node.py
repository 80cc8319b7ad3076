"""One Ethereum node, through web3.py: its identity and blocks, and transactions signed locally.

``NodeReader`` reads the node; ``NodeClient`` adds the key, and is what every contract client stands
on. Transactions are always signed here with
the client's key and sent raw, so the signed bytes can be stored before they are broadcast (see
``hybrid_store.txmgr``) and re-sent unchanged after a crash. Only ``hybrid_store.chain`` sees the
``Web3`` and account objects; everything it hands out is a plain value (``chain.types``).
"""

from __future__ import annotations

import logging
import time
from functools import cached_property
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import HexStr
from eth_utils import to_checksum_address
from web3 import Web3
from web3.exceptions import BlockNotFound, TransactionNotFound

from hybrid_store.chain.reverts import decode_revert, is_revert, revert_data
from hybrid_store.chain.types import FeeQuote, Fees, Receipt, SendOutcome, SignedTx
from hybrid_store.core.hashing import keccak256, to_hex
from hybrid_store.errors import ChainError, ChainReset, ChainUnavailable, TransactionRefused, TransactionReverted

log = logging.getLogger(__name__)

GAS_MARGIN = 1.25  # estimates are exact for the state they ran on; leave room for what changes before mining
DEFAULT_TIP_WEI = 10**9  # when a node cannot suggest a tip


def account_from_key(key_hex: str) -> LocalAccount:
    return Account.from_key(key_hex)


def address_of_key(key_hex: str) -> str:
    """The checksummed address of a private key."""
    return str(Account.from_key(key_hex).address)


def checksum(address: str) -> str:
    """``address`` in EIP-55 form (raises ``ValueError`` for anything that is not an address)."""
    return str(to_checksum_address(address))


def node_words(exc: BaseException) -> str:
    """What the node said in a JSON-RPC error (its ``message``), without the library's wrapping."""
    for candidate in (*exc.args, getattr(exc, "rpc_response", None)):
        if isinstance(candidate, dict):
            error = candidate.get("error", candidate)
            if isinstance(error, dict) and isinstance(error.get("message"), str):
                return str(error["message"])
    return str(exc)


class NodeReader:
    """The node behind ``w3``: what it holds and what it says about transactions (no key needed)."""

    def __init__(
        self,
        w3: Web3,
        account: LocalAccount | None = None,
        *,
        poll_interval_s: float = 0.05,
        receipt_timeout_s: float = 120.0,
        description: str = "chain",
        estimate_gas: bool = True,
    ):
        self.w3 = w3
        self.account = account
        self.poll_interval_s = poll_interval_s
        self.receipt_timeout_s = receipt_timeout_s
        self.description = description
        #: False on the in-process chain, whose estimate is a binary search of a dozen executions:
        #: there a call checks the transaction would not revert, and it gets the block's gas limit
        self.estimate_gas = estimate_gas
        #: (chain id, genesis hash) of the registry's chain, once a deployment is attached: nothing
        #: is sent to a node that is not that chain (``send``)
        self.pinned: tuple[int, str] | None = None

    # --- identity and blocks --------------------------------------------------------------------
    def ensure_reachable(self) -> None:
        try:
            self.w3.eth.block_number  # noqa: B018 - a cheap round trip
        except Exception as exc:
            raise ChainUnavailable(f"cannot reach {self.description}: {exc}") from None

    @cached_property
    def chain_id(self) -> int:
        return int(self.w3.eth.chain_id)

    def current_chain_id(self) -> int:
        """The chain id the node reports now (``chain_id`` is read once: a node may be replaced)."""
        return int(self.w3.eth.chain_id)

    def pin(self, chain_id: int, genesis_hash: str) -> None:
        """Send only to the chain with this id and genesis (the registry's deployment)."""
        self.pinned = (chain_id, genesis_hash)

    def ensure_pinned_chain(self) -> None:
        """Raise ``ChainReset`` when the node is not the pinned chain (``ChainUnavailable`` when it
        does not answer: that says nothing about the chain)."""
        if self.pinned is None:
            return
        chain_id, genesis = self.pinned
        now = (self.current_chain_id(), self.genesis_hash())
        if now != (chain_id, genesis):
            raise ChainReset(f"{self.description} is now chain {now[0]} with genesis {now[1]}, not the registry's "
                             f"chain {chain_id} with genesis {genesis}: nothing is sent to it")  # fmt: skip

    def genesis_hash(self) -> str:
        return to_hex(bytes(self.w3.eth.get_block(0)["hash"]))

    def head(self) -> int:
        return int(self.w3.eth.block_number)

    def block_timestamp(self, number: int) -> int:
        return int(self.w3.eth.get_block(number)["timestamp"])

    def block_hash_at(self, number: int) -> str | None:
        """The hash of the canonical block at ``number``, or None when the node says it has no such
        block. A node that does not answer, or answers an error, raises ``ChainUnavailable``: only
        what a node says is evidence about the chain (a reorganisation), never its silence."""
        try:
            return to_hex(bytes(self.w3.eth.get_block(number)["hash"]))
        except BlockNotFound:
            return None
        except ChainUnavailable:
            raise
        except Exception as exc:
            raise ChainUnavailable(f"{self.description} gave no usable answer for block {number} "
                                   f"({exc.__class__.__name__})") from None  # fmt: skip

    def finalized_block(self) -> int | None:
        """The number of the node's ``finalized`` block, or None where the node has no such tag."""
        try:
            return int(self.w3.eth.get_block("finalized")["number"])
        except ChainUnavailable:
            raise
        except Exception:
            return None

    def confirmations(self, receipt_block: int, receipt_block_hash: str) -> int:
        """Blocks on top of (and including) the receipt's block; 0 if that block left the canonical chain."""
        if self.block_hash_at(receipt_block) != receipt_block_hash:
            return 0
        return self.head() - receipt_block + 1

    def has_code(self, address: str) -> bool:
        return len(self.w3.eth.get_code(to_checksum_address(address))) > 0

    def code_hash_at(self, address: str) -> str:
        """keccak256 of the runtime code at ``address``."""
        return to_hex(keccak256(bytes(self.w3.eth.get_code(to_checksum_address(address)))))

    def rpc(self, method: str, params: list[Any]) -> Any:
        """A raw JSON-RPC call (node controls such as ``evm_mine``: operators' tools and tests)."""
        return self.w3.provider.make_request(method, params)  # type: ignore[arg-type]

    # --- fees -----------------------------------------------------------------------------------
    def fee_quote(self) -> FeeQuote:
        """The next block's base fee (eth_feeHistory's last entry) and the node's suggested tip."""
        base = None
        try:
            history = self.w3.eth.fee_history(1, "latest", [])["baseFeePerGas"]
            base = int(history[-1]) if history else None
        except ChainUnavailable:
            raise
        except Exception:
            pass
        if base is None:
            block = self.w3.eth.get_block("pending")
            base = int(block.get("baseFeePerGas") or 0)
        try:
            tip = int(self.w3.eth.max_priority_fee)
        except ChainUnavailable:
            raise
        except Exception:
            tip = DEFAULT_TIP_WEI
        return FeeQuote(base, tip)

    # --- transactions and receipts ------------------------------------------------------------
    def transaction_sender(self, tx_hash: str) -> str:
        return to_checksum_address(self.w3.eth.get_transaction(HexStr(tx_hash))["from"])

    def transaction_known(self, tx_hash: str) -> bool:
        try:
            self.w3.eth.get_transaction(HexStr(tx_hash))
            return True
        except TransactionNotFound:
            return False

    def receipt(self, tx_hash: str) -> Receipt | None:
        try:
            r = self.w3.eth.get_transaction_receipt(HexStr(tx_hash))
        except TransactionNotFound:
            return None
        return Receipt(
            tx_hash=to_hex(bytes(r["transactionHash"])),
            block_number=int(r["blockNumber"]),
            block_hash=to_hex(bytes(r["blockHash"])),
            gas_used=int(r["gasUsed"]),
            status=int(r["status"]),
            to=r.get("to"),
            contract_address=r.get("contractAddress"),
            logs=tuple(r["logs"]),
        )

    def wait_mined(self, tx_hash: str, timeout_s: float | None = None) -> Receipt:
        """Wait for the receipt, whatever its status."""
        timeout_s = self.receipt_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        while (receipt := self.receipt(tx_hash)) is None:
            if time.monotonic() > deadline:
                raise ChainError(f"no receipt for {tx_hash} after {timeout_s:.0f} s")
            time.sleep(self.poll_interval_s)
        return receipt

    def wait(self, tx_hash: str, timeout_s: float | None = None) -> Receipt:
        """Wait for the receipt. Status 0 is never success: it raises ``TransactionReverted``."""
        receipt = self.wait_mined(tx_hash, timeout_s)
        if receipt.status != 1:
            raise TransactionReverted(tx_hash, self.revert_reason(receipt))
        return receipt

    def revert_reason(self, receipt: Receipt) -> str:
        """Why a mined transaction reverted, from the state it actually ran in.

        A replay on the state before its block misses whatever an earlier transaction of the same
        block changed: a pause or a role revocation mined just ahead of it replays as a success.
        So the node's own trace of the transaction decides where the node has one
        (``debug_traceTransaction``: anvil, geth, erigon, nethermind, reth with the debug API on);
        elsewhere the call is replayed before its block and, when that succeeds, on the state its
        block left, where the pause or the missing role still shows."""
        traced = self._traced_revert(receipt.tx_hash)
        if traced is not None:
            return traced
        tx = self.w3.eth.get_transaction(HexStr(receipt.tx_hash))
        call = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "gas": tx["gas"]}
        for state in (receipt.block_number - 1, receipt.block_number):
            reason = self._replayed_revert(call, state)
            if reason is not None:
                return reason
        return "reverted (the replay succeeded: out of gas or state changed)"

    def _traced_revert(self, tx_hash: str) -> str | None:
        """The revert the node's call tracer saw, or None where the node cannot trace."""
        try:
            answer = self.rpc("debug_traceTransaction", [tx_hash, {"tracer": "callTracer"}])
        except ChainUnavailable:
            raise
        except Exception:
            return None
        trace = answer.get("result") if isinstance(answer, dict) else None
        if not isinstance(trace, dict) or "error" not in trace:
            return None
        output = trace.get("output")
        if isinstance(output, str) and len(output) >= 10:
            return decode_revert(output)
        return f"reverted ({trace['error']})"

    def _replayed_revert(self, call: dict[str, Any], block: int) -> str | None:
        """The revert of ``call`` on the state after ``block``; None when it succeeds there."""
        try:
            self.w3.eth.call(call, block)  # type: ignore[arg-type]
        except ChainUnavailable:
            raise  # an unreachable node says nothing about why the transaction reverted
        except Exception as exc:
            if is_revert(exc):
                return decode_revert(revert_data(exc))
            return f"reverted ({exc})"
        return None


class NodeClient(NodeReader):
    """The node behind ``w3``, with ``account`` to sign and send transactions."""

    # --- the signing account --------------------------------------------------------------------
    @property
    def registrar(self) -> LocalAccount:
        if self.account is None:
            raise ChainError("this connection is read-only: no registrar key configured")
        return self.account

    @property
    def signer_address(self) -> str | None:
        """The address transactions are signed with, or None on a read-only connection."""
        return str(self.account.address) if self.account is not None else None

    def pending_nonce(self) -> int:
        return int(self.w3.eth.get_transaction_count(self.registrar.address, "pending"))

    def mined_nonce(self) -> int:
        """Nonces below this are used by mined transactions."""
        return int(self.w3.eth.get_transaction_count(self.registrar.address, "latest"))

    def base_transaction(self, nonce: int, fees: Fees | None = None) -> dict[str, Any]:
        fees = fees or self.fee_quote().fees()
        return {
            "from": self.registrar.address,
            "nonce": nonce,
            "chainId": self.chain_id,
            "maxPriorityFeePerGas": fees.max_priority_fee_per_gas,
            "maxFeePerGas": fees.max_fee_per_gas,
        }

    # --- signing and sending --------------------------------------------------------------------
    def build_call(self, fn: Any, nonce: int, fees: Fees | None = None) -> dict[str, Any]:
        """The transaction of contract call ``fn`` with gas estimated; a call that would revert
        raises ``TransactionReverted`` here, before anything is signed."""
        tx = self.base_transaction(nonce, fees)
        try:
            if self.estimate_gas:
                tx["gas"] = int(fn.estimate_gas({"from": self.registrar.address}) * GAS_MARGIN) + 10_000
            else:
                fn.call({"from": self.registrar.address})
                tx["gas"] = self.block_gas_limit
        except Exception as exc:
            if not is_revert(exc):
                raise
            raise TransactionReverted("(not sent)", decode_revert(revert_data(exc))) from None
        return dict(fn.build_transaction(tx))

    @cached_property
    def block_gas_limit(self) -> int:
        return int(self.w3.eth.get_block("latest")["gasLimit"])

    def sign_transaction(self, tx: dict[str, Any]) -> SignedTx:
        signed = self.registrar.sign_transaction(tx)
        return SignedTx(raw=bytes(signed.raw_transaction), tx_hash=to_hex(bytes(signed.hash)), nonce=int(tx["nonce"]),
                        max_fee_per_gas=int(tx.get("maxFeePerGas", 0)),
                        max_priority_fee_per_gas=int(tx.get("maxPriorityFeePerGas", 0)))  # fmt: skip

    def resign(self, raw: bytes, fees: Fees) -> SignedTx:
        """The same transaction (nonce, call, gas) signed again with other fees: a replacement."""
        from eth_account.typed_transactions import TypedTransaction
        from hexbytes import HexBytes

        tx = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
        for signature_part in ("v", "r", "s", "type"):
            tx.pop(signature_part, None)
        tx.update(maxFeePerGas=fees.max_fee_per_gas, maxPriorityFeePerGas=fees.max_priority_fee_per_gas)
        tx["to"] = to_checksum_address(tx["to"])
        return self.sign_transaction(tx)

    def transact(self, fn: Any) -> Receipt:
        """Sign, send and wait for a contract call (administrative operations)."""
        return self.wait(self.broadcast(self.sign_transaction(self.build_call(fn, self.pending_nonce()))))

    def broadcast(self, signed: SignedTx) -> str:
        """Send a signed transaction that must be accepted (or already known); else ``ChainError``."""
        outcome = self.send(signed)
        if outcome not in (SendOutcome.SENT, SendOutcome.KNOWN):
            raise ChainError(f"node refused transaction {signed.tx_hash}: {outcome.value}")
        return signed.tx_hash

    def send(self, signed: SignedTx) -> SendOutcome:
        """Send a signed transaction and say what became of it. Nodes word "already known", "nonce
        too low" and "underpriced" differently, so a refusal is looked up before it is classified;
        an unreachable node raises ``ChainUnavailable``, any other refusal ``ChainError``, and a node
        that is not the pinned chain ``ChainReset`` (checked before every send: a transaction
        signed for the registry's chain is never handed to a reset or replaced one)."""
        self.ensure_pinned_chain()
        try:
            self.w3.eth.send_raw_transaction(signed.raw)
            return SendOutcome.SENT
        except ChainUnavailable:
            raise
        except Exception as exc:
            message = str(exc).lower()
            if self.transaction_known(signed.tx_hash):
                log.info("transaction %s was already known to the node", signed.tx_hash)
                return SendOutcome.KNOWN
            if "nonce too low" in message or "nonce has already been used" in message or "already mined" in message:
                return SendOutcome.NONCE_USED
            if "underpriced" in message or "base fee" in message or "fee cap" in message or "too low" in message:
                return SendOutcome.UNDERPRICED
            raise TransactionRefused(signed.tx_hash, node_words(exc)) from None
