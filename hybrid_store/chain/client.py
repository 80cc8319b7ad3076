"""The DeedRegistry contract on one chain, through web3.py.

One class serves every backend: the in-process eth-tester chain, the managed anvil node and any
JSON-RPC node differ only in the ``Web3`` provider handed in. Transactions are always signed here
with the registrar's key and sent raw, so the signed bytes can be stored before they are broadcast
(see ``hybrid_store.anchoring``) and re-sent unchanged after a crash.
"""

from __future__ import annotations

import enum
import json
import logging
import time
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import HexStr
from eth_utils import to_checksum_address
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError, TransactionNotFound

from hybrid_store.chain.compile import ARTIFACT_PATH
from hybrid_store.core.hashing import keccak256, to_hex
from hybrid_store.errors import ChainError, ChainUnavailable, TransactionReverted

log = logging.getLogger(__name__)

ZERO32 = b"\x00" * 32
GAS_MARGIN = 1.25  # estimates are exact for the state they ran on; leave room for what changes before mining


@cache
def artifact() -> dict[str, Any]:
    return json.loads(ARTIFACT_PATH.read_text())


@cache
def error_selectors() -> dict[bytes, tuple[str, list[str]]]:
    """4-byte selector -> (custom error name, argument types), from the ABI."""
    out = {}
    for item in artifact()["abi"]:
        if item["type"] == "error":
            types = [i["type"] for i in item["inputs"]]
            out[keccak256(f"{item['name']}({','.join(types)})".encode())[:4]] = (item["name"], types)
    return out


def decode_revert(data: bytes | str | None) -> str:
    """A readable reason from revert data: custom error with arguments, Error(string), or raw hex."""
    if data is None:
        return "reverted without data"
    raw = bytes.fromhex(data[2:]) if isinstance(data, str) else bytes(data)
    if len(raw) < 4:
        return "reverted without data"
    from eth_abi import decode

    if raw[:4] == keccak256(b"Error(string)")[:4]:
        return decode(["string"], raw[4:])[0]
    known = error_selectors().get(raw[:4])
    if known is None:
        return f"reverted with unknown error 0x{raw.hex()}"
    name, types = known
    args = decode(types, raw[4:]) if types else ()
    shown = ", ".join(to_hex(a) if isinstance(a, bytes) else str(a) for a in args)
    return f"{name}({shown})"


def revert_data(exc: BaseException) -> bytes | str | None:
    """The revert data carried by a failed call, whichever backend raised it."""
    data = getattr(exc, "data", None)
    if isinstance(data, bytes | str) and data:
        return data
    # eth-tester raises TransactionFailed("execution reverted: b'...'") with the bytes' repr
    message = str(exc.args[0]) if exc.args else ""
    prefix = "execution reverted: "
    if message.startswith(prefix + "b'") or message.startswith(prefix + 'b"'):
        import ast

        try:
            value = ast.literal_eval(message[len(prefix) :])
        except (ValueError, SyntaxError):
            return None
        return value if isinstance(value, bytes) else None
    return None


def _is_revert(exc: BaseException) -> bool:
    return isinstance(exc, ContractCustomError | ContractLogicError) or type(exc).__name__ == "TransactionFailed"


@dataclass(frozen=True)
class Fees:
    """EIP-1559 fees of one transaction attempt, in wei."""

    max_fee_per_gas: int
    max_priority_fee_per_gas: int


@dataclass(frozen=True)
class FeeQuote:
    """What the node asks for now: the next block's base fee and a suggested tip, in wei."""

    next_base_fee: int
    tip: int

    def fees(self, ceiling: int | None = None) -> Fees:
        """Fees for a new transaction: room for the base fee to double, capped at ``ceiling``."""
        cap = 2 * self.next_base_fee + self.tip
        if ceiling is not None:
            cap = min(cap, ceiling)
        return Fees(cap, min(self.tip, cap))


@dataclass(frozen=True)
class SignedTx:
    raw: bytes
    tx_hash: str
    nonce: int
    max_fee_per_gas: int = 0
    max_priority_fee_per_gas: int = 0


class SendOutcome(enum.Enum):
    """What the node said to a raw transaction. Only SENT and KNOWN mean it is in the node's hands;
    NONCE_USED means some transaction with that nonce was mined (maybe an earlier attempt of this
    one: look it up, never take a new nonce); UNDERPRICED means its fee cap is below what the
    node accepts now (the base fee rose, or a replacement's bump was too small)."""

    SENT = "sent"
    KNOWN = "known"
    NONCE_USED = "nonce_used"
    UNDERPRICED = "underpriced"


@dataclass(frozen=True)
class Receipt:
    tx_hash: str
    block_number: int
    block_hash: str
    gas_used: int
    status: int
    to: str | None
    contract_address: str | None
    logs: tuple[Any, ...]


@dataclass(frozen=True)
class OnChainBatch:
    batch_id: int
    root: bytes
    parcel_root: bytes
    chain_hash: bytes
    record_count: int
    first_token_id: int
    token_count: int
    anchored_at_block: int


class RegistryChain:
    """DeedRegistry at ``address`` on the chain behind ``w3``; writes need ``account`` (the registrar)."""

    def __init__(
        self,
        w3: Web3,
        account: LocalAccount | None = None,
        address: str | None = None,
        *,
        poll_interval_s: float = 0.05,
        receipt_timeout_s: float = 120.0,
        description: str = "chain",
        role_addresses: dict[str, str] | None = None,
    ):
        self.w3 = w3
        self.account = account
        #: addresses of the admin and pauser roles (for deployment); their keys stay elsewhere
        self.role_addresses = dict(role_addresses or {})
        #: checksummed (a plain str so deployments and reconciliation may assign stored addresses)
        self.address: str | None = to_checksum_address(address) if address else None
        self.poll_interval_s = poll_interval_s
        self.receipt_timeout_s = receipt_timeout_s
        self.description = description

    # --- identity -------------------------------------------------------------------------------
    def ensure_reachable(self) -> None:
        try:
            self.w3.eth.block_number  # noqa: B018 - a cheap round trip
        except Exception as exc:
            raise ChainUnavailable(f"cannot reach {self.description}: {exc}") from None

    @cached_property
    def chain_id(self) -> int:
        return int(self.w3.eth.chain_id)

    def genesis_hash(self) -> str:
        return to_hex(bytes(self.w3.eth.get_block(0)["hash"]))

    def head(self) -> int:
        return int(self.w3.eth.block_number)

    def has_code(self, address: str | None = None) -> bool:
        target = address or self.address
        return target is not None and len(self.w3.eth.get_code(to_checksum_address(target))) > 0

    @property
    def contract(self) -> Any:
        if self.address is None:
            raise ChainError("no DeedRegistry address: deploy one (`landreg chain deploy`) or configure it")
        return self._contract_at(self.address)

    @cache  # noqa: B019 - one contract object per address for the client's lifetime
    def _contract_at(self, address: str) -> Any:
        return self.w3.eth.contract(address=to_checksum_address(address), abi=artifact()["abi"])

    @property
    def registrar(self) -> LocalAccount:
        if self.account is None:
            raise ChainError("this connection is read-only: no registrar key configured")
        return self.account

    def at(self, address: str) -> RegistryChain:
        """The DeedRegistry at ``address`` on the same node, read-only."""
        return RegistryChain(self.w3, None, address, poll_interval_s=self.poll_interval_s,
                             receipt_timeout_s=self.receipt_timeout_s, description=self.description)  # fmt: skip

    def with_signer(self, account: LocalAccount, description: str | None = None) -> RegistryChain:
        """The same contract on the same node, signing with another key (admin or pauser operations)."""
        return RegistryChain(
            self.w3, account, self.address, poll_interval_s=self.poll_interval_s,
            receipt_timeout_s=self.receipt_timeout_s, description=description or self.description,
            role_addresses=self.role_addresses,
        )  # fmt: skip

    # --- deployment -----------------------------------------------------------------------------
    def deploy(
        self,
        name: str = "Landreg Parcel",
        symbol: str = "PARCEL",
        *,
        admin: str | None = None,
        pauser: str | None = None,
        first_token_id: int = 0,
    ) -> Receipt:
        """Deploy a DeedRegistry: this client's key becomes the registrar; admin and pauser are other
        keys (given, or this client's ``role_addresses``). Token ids start at ``first_token_id``."""
        me = self.registrar.address
        admin = admin or self.role_addresses.get("admin")
        pauser = pauser or self.role_addresses.get("pauser")
        if not admin or not pauser:
            raise ChainError(
                "deploying needs the addresses of the contract admin and the pauser, distinct from the registrar: "
                "set LANDREG_CHAIN__ADMIN_ADDRESS and LANDREG_CHAIN__PAUSER_ADDRESS (or their keys)"
            )
        if to_checksum_address(admin) == me:
            raise ChainError("the contract admin must not be the registrar key (a stolen hot key must not grant roles)")
        factory = self.w3.eth.contract(abi=artifact()["abi"], bytecode=artifact()["bytecode"])
        constructor = factory.constructor(
            name, symbol, to_checksum_address(admin), to_checksum_address(pauser), me, first_token_id
        )
        tx = constructor.build_transaction(self.base_transaction(self.pending_nonce()))
        receipt = self.wait(self.broadcast(self.sign_transaction(tx)))
        if receipt.contract_address is None:
            raise ChainError("the deployment transaction created no contract")
        self.address = to_checksum_address(receipt.contract_address)
        return receipt

    def code_hash(self, address: str | None = None) -> str:
        """keccak256 of the runtime code at ``address`` (the trust root pins deployments by it)."""
        target = to_checksum_address(address or self.address or "")
        return to_hex(keccak256(bytes(self.w3.eth.get_code(target))))

    # --- roles and pause (admin and pauser keys) ------------------------------------------------
    def has_role(self, role: str, address: str) -> bool:
        return bool(self.contract.functions.hasRole(role_id(role), to_checksum_address(address)).call())

    def grant_role(self, role: str, address: str) -> Receipt:
        return self.transact(self.contract.functions.grantRole(role_id(role), to_checksum_address(address)))

    def revoke_role(self, role: str, address: str) -> Receipt:
        return self.transact(self.contract.functions.revokeRole(role_id(role), to_checksum_address(address)))

    def paused(self) -> bool:
        return bool(self.contract.functions.paused().call())

    def pause(self) -> Receipt:
        return self.transact(self.contract.functions.pause())

    def unpause(self) -> Receipt:
        return self.transact(self.contract.functions.unpause())

    def block_timestamp(self, number: int) -> int:
        return int(self.w3.eth.get_block(number)["timestamp"])

    def transaction_sender(self, tx_hash: str) -> str:
        return to_checksum_address(self.w3.eth.get_transaction(HexStr(tx_hash))["from"])

    # --- reads ----------------------------------------------------------------------------------
    def batch_count(self) -> int:
        return int(self.contract.functions.batchCount().call())

    def get_batch(self, batch_id: int) -> OnChainBatch:
        b = self.contract.functions.getBatch(batch_id).call()
        return OnChainBatch(batch_id, bytes(b[0]), bytes(b[1]), bytes(b[2]), b[3], b[4], b[5], b[6])

    def batch_of_root(self, root: bytes) -> int | None:
        anchored, batch_id = self.contract.functions.batchOfRoot(root).call()
        return int(batch_id) if anchored else None

    def revoked_at(self, batch_id: int, leaf: bytes) -> int:
        return int(self.contract.functions.revokedAt(batch_id, leaf).call())

    def next_token_id(self) -> int:
        return int(self.contract.functions.nextTokenId().call())

    def chain_head_hash(self) -> bytes:
        return bytes(self.contract.functions.chainHead().call())

    def verify_commitment(self, batch_id: int, proof: list[bytes], commitment: bytes) -> bool:
        return bool(self.contract.functions.verifyCommitment(batch_id, proof, commitment).call())

    def owner_of(self, token_id: int) -> str:
        return self.contract.functions.ownerOf(token_id).call()

    # --- writes ---------------------------------------------------------------------------------
    def pending_nonce(self) -> int:
        return int(self.w3.eth.get_transaction_count(self.registrar.address, "pending"))

    def mined_nonce(self) -> int:
        """Nonces below this are used by mined transactions."""
        return int(self.w3.eth.get_transaction_count(self.registrar.address, "latest"))

    def sign_anchor(
        self,
        expected_batch_id: int,
        root: bytes,
        record_count: int,
        parcel_root: bytes | None,
        token_count: int,
        nonce: int,
        fees: Fees | None = None,
    ) -> SignedTx:
        """Sign (not send) ``anchorBatch``; a call that would revert raises ``TransactionReverted`` here."""
        fn = self.contract.functions.anchorBatch(
            expected_batch_id, root, record_count, parcel_root or ZERO32, token_count
        )
        return self.sign_transaction(self._build(fn, nonce, fees))

    def sign_revoke(
        self, batch_id: int, leaves: list[bytes], reason: bytes, nonce: int, fees: Fees | None = None
    ) -> SignedTx:
        return self.sign_transaction(
            self._build(self.contract.functions.revokeRecords(batch_id, leaves, reason), nonce, fees)
        )

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
            tip = 10**9
        return FeeQuote(base, tip)

    def finalized_block(self) -> int | None:
        """The number of the node's ``finalized`` block, or None where the node has no such tag."""
        try:
            return int(self.w3.eth.get_block("finalized")["number"])
        except ChainUnavailable:
            raise
        except Exception:
            return None

    def anchoring_receipt(self, chain_batch_id: int, from_block: int = 0) -> Receipt | None:
        """The receipt of the transaction that anchored batch ``chain_batch_id``, found by its event
        (searched from ``from_block``: the contract's deployment block)."""
        event = self.contract.events.BatchAnchored()
        logs = event.get_logs(argument_filters={"batchId": chain_batch_id}, from_block=from_block)
        return self.receipt("0x" + bytes(logs[0]["transactionHash"]).hex()) if logs else None

    def registrar_holds_role(self) -> bool:
        return self.has_role("registrar", self.registrar.address)

    def transact(self, fn: Any) -> Receipt:
        """Sign, send and wait for a contract call (administrative operations)."""
        signed = self.sign_transaction(self._build(fn, self.pending_nonce()))
        outcome = self.send(signed)
        if outcome not in (SendOutcome.SENT, SendOutcome.KNOWN):
            raise ChainError(f"node refused transaction {signed.tx_hash}: {outcome.value}")
        return self.wait(signed.tx_hash)

    def broadcast(self, signed: SignedTx) -> str:
        """Send a signed transaction that must be accepted (or already known); else ``ChainError``."""
        outcome = self.send(signed)
        if outcome not in (SendOutcome.SENT, SendOutcome.KNOWN):
            raise ChainError(f"node refused transaction {signed.tx_hash}: {outcome.value}")
        return signed.tx_hash

    def send(self, signed: SignedTx) -> SendOutcome:
        """Send a signed transaction and say what became of it. Nodes word "already known", "nonce
        too low" and "underpriced" differently, so a refusal is looked up before it is classified;
        an unreachable node raises ``ChainUnavailable``, any other refusal ``ChainError``."""
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
            raise ChainError(f"node refused transaction {signed.tx_hash}: {exc}") from None

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

    def block_hash_at(self, number: int) -> str | None:
        try:
            return to_hex(bytes(self.w3.eth.get_block(number)["hash"]))
        except Exception:
            return None

    def confirmations(self, receipt_block: int, receipt_block_hash: str) -> int:
        """Blocks on top of (and including) the receipt's block; 0 if that block left the canonical chain."""
        if self.block_hash_at(receipt_block) != receipt_block_hash:
            return 0
        return self.head() - receipt_block + 1

    def anchored_events(self, receipt: Receipt) -> list[dict[str, Any]]:
        """The BatchAnchored events of a receipt, decoded (others ignored)."""
        event = self.contract.events.BatchAnchored()
        out = []
        for entry in receipt.logs:
            try:
                out.append(dict(event.process_log(entry)["args"]))
            except Exception:
                continue
        return out

    # --- internals ------------------------------------------------------------------------------
    def base_transaction(self, nonce: int, fees: Fees | None = None) -> dict[str, Any]:
        fees = fees or self.fee_quote().fees()
        return {
            "from": self.registrar.address,
            "nonce": nonce,
            "chainId": self.chain_id,
            "maxPriorityFeePerGas": fees.max_priority_fee_per_gas,
            "maxFeePerGas": fees.max_fee_per_gas,
        }

    def _build(self, fn: Any, nonce: int, fees: Fees | None = None) -> dict[str, Any]:
        tx = self.base_transaction(nonce, fees)
        try:
            gas = fn.estimate_gas({"from": self.registrar.address})
        except Exception as exc:
            if not _is_revert(exc):
                raise
            raise TransactionReverted("(not sent)", decode_revert(revert_data(exc))) from None
        tx["gas"] = int(gas * GAS_MARGIN) + 10_000
        return fn.build_transaction(tx)

    def sign_transaction(self, tx: dict[str, Any]) -> SignedTx:
        signed = self.registrar.sign_transaction(tx)
        return SignedTx(raw=bytes(signed.raw_transaction), tx_hash=to_hex(bytes(signed.hash)), nonce=int(tx["nonce"]),
                        max_fee_per_gas=int(tx.get("maxFeePerGas", 0)),
                        max_priority_fee_per_gas=int(tx.get("maxPriorityFeePerGas", 0)))  # fmt: skip

    def revert_reason(self, receipt: Receipt) -> str:
        """Re-run a reverted transaction as a call on the state before its block to learn why."""
        try:
            tx = self.w3.eth.get_transaction(HexStr(receipt.tx_hash))
            self.w3.eth.call(
                {"from": tx["from"], "to": tx["to"], "data": tx["input"], "gas": tx["gas"]}, receipt.block_number - 1
            )
        except Exception as exc:
            if _is_revert(exc):
                return decode_revert(revert_data(exc))
            return f"reverted ({exc})"
        return "reverted (the replay succeeded: out of gas or state changed)"


ROLE_NAMES = {"admin": None, "registrar": "REGISTRAR_ROLE", "pauser": "PAUSER_ROLE"}


def role_id(role: str) -> bytes:
    """The AccessControl role id of ``role`` (admin is DEFAULT_ADMIN_ROLE, zero)."""
    if role not in ROLE_NAMES:
        raise ValueError(f"unknown role {role!r} (admin, registrar, pauser)")
    name = ROLE_NAMES[role]
    return ZERO32 if name is None else keccak256(name.encode())


def account_from_key(key_hex: str) -> LocalAccount:
    return Account.from_key(key_hex)
