"""The DeedRegistry contract on one chain.

One class serves every backend: the in-process eth-tester chain, the managed anvil node and any
JSON-RPC node differ only in the ``Web3`` provider handed in (``chain.connect`` builds it). What
the node itself does (blocks, fees, signing, sending, receipts) is ``NodeClient``'s; this class adds
the contract: deploying it, its roles, its reads and the anchoring and revocation calls.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3 import Web3

from hybrid_store.chain.node import NodeClient, account_from_key, checksum
from hybrid_store.chain.reverts import artifact
from hybrid_store.chain.types import Fees, OnChainBatch, Receipt, SignedTx
from hybrid_store.core.hashing import keccak256
from hybrid_store.errors import ChainError

ZERO32 = b"\x00" * 32
ROLE_NAMES = {"admin": None, "registrar": "REGISTRAR_ROLE", "pauser": "PAUSER_ROLE"}

__all__ = ["ROLE_NAMES", "RegistryChain", "account_from_key", "role_id"]


def role_id(role: str) -> bytes:
    """The AccessControl role id of ``role`` (admin is DEFAULT_ADMIN_ROLE, zero)."""
    if role not in ROLE_NAMES:
        raise ValueError(f"unknown role {role!r} (admin, registrar, pauser)")
    name = ROLE_NAMES[role]
    return ZERO32 if name is None else keccak256(name.encode())


class RegistryChain(NodeClient):
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
        estimate_gas: bool = True,
    ):
        super().__init__(w3, account, poll_interval_s=poll_interval_s, receipt_timeout_s=receipt_timeout_s,
                         description=description, estimate_gas=estimate_gas)  # fmt: skip
        #: addresses of the admin and pauser roles (for deployment); their keys stay elsewhere
        self.role_addresses = dict(role_addresses or {})
        #: checksummed (a plain str so deployments and reconciliation may assign stored addresses)
        self.address: str | None = checksum(address) if address else None

    # --- which contract -------------------------------------------------------------------------
    def has_code(self, address: str | None = None) -> bool:
        target = address or self.address
        return target is not None and super().has_code(target)

    def code_hash(self, address: str | None = None) -> str:
        """keccak256 of the runtime code at ``address`` (the trust root pins deployments by it)."""
        return self.code_hash_at(address or self.address or "")

    @property
    def contract(self) -> Any:
        if self.address is None:
            raise ChainError("no DeedRegistry address: deploy one (`landreg chain deploy`) or configure it")
        return self._contract_at(self.address)

    @cache  # noqa: B019 - one contract object per address for the client's lifetime
    def _contract_at(self, address: str) -> Any:
        return self.w3.eth.contract(address=to_checksum_address(address), abi=artifact()["abi"])

    def at(self, address: str) -> RegistryChain:
        """The DeedRegistry at ``address`` on the same node, read-only."""
        other = RegistryChain(self.w3, None, address, poll_interval_s=self.poll_interval_s,
                              receipt_timeout_s=self.receipt_timeout_s, description=self.description,
                              estimate_gas=self.estimate_gas)  # fmt: skip
        other.pinned = self.pinned
        return other

    def with_signer(self, account: LocalAccount, description: str | None = None) -> RegistryChain:
        """The same contract on the same node, signing with another key (admin or pauser operations)."""
        other = RegistryChain(
            self.w3, account, self.address, poll_interval_s=self.poll_interval_s,
            receipt_timeout_s=self.receipt_timeout_s, description=description or self.description,
            role_addresses=self.role_addresses, estimate_gas=self.estimate_gas,
        )  # fmt: skip
        other.pinned = self.pinned
        return other

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
        if checksum(admin) == me:
            raise ChainError("the contract admin must not be the registrar key (a stolen hot key must not grant roles)")
        factory = self.w3.eth.contract(abi=artifact()["abi"], bytecode=artifact()["bytecode"])
        constructor = factory.constructor(name, symbol, checksum(admin), checksum(pauser), me, first_token_id)
        base = self.base_transaction(self.pending_nonce())
        if not self.estimate_gas:
            base["gas"] = self.block_gas_limit
        tx = constructor.build_transaction(base)
        receipt = self.wait(self.broadcast(self.sign_transaction(tx)))
        if receipt.contract_address is None:
            raise ChainError("the deployment transaction created no contract")
        self.address = checksum(receipt.contract_address)
        return receipt

    # --- roles and pause (admin and pauser keys) ------------------------------------------------
    def has_role(self, role: str, address: str) -> bool:
        return bool(self.contract.functions.hasRole(role_id(role), checksum(address)).call())

    def grant_role(self, role: str, address: str) -> Receipt:
        return self.transact(self.contract.functions.grantRole(role_id(role), checksum(address)))

    def revoke_role(self, role: str, address: str) -> Receipt:
        return self.transact(self.contract.functions.revokeRole(role_id(role), checksum(address)))

    def registrar_holds_role(self) -> bool:
        return self.has_role("registrar", self.registrar.address)

    def paused(self) -> bool:
        return bool(self.contract.functions.paused().call())

    def pause(self) -> Receipt:
        return self.transact(self.contract.functions.pause())

    def unpause(self) -> Receipt:
        return self.transact(self.contract.functions.unpause())

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
        return str(self.contract.functions.ownerOf(token_id).call())

    def anchoring_receipt(self, chain_batch_id: int, from_block: int = 0) -> Receipt | None:
        """The receipt of the transaction that anchored batch ``chain_batch_id``, found by its event
        (searched from ``from_block``: the contract's deployment block)."""
        event = self.contract.events.BatchAnchored()
        logs = event.get_logs(argument_filters={"batchId": chain_batch_id}, from_block=from_block)
        return self.receipt("0x" + bytes(logs[0]["transactionHash"]).hex()) if logs else None

    def revocation_reason(self, chain_batch_id: int, leaf: bytes, from_block: int = 0) -> bytes | None:
        """The reason the contract's ``RecordRevoked`` event gives for ``leaf`` of the batch (None when
        the node has no such event: not revoked, or its logs were pruned)."""
        event = self.contract.events.RecordRevoked()
        logs = event.get_logs(argument_filters={"batchId": chain_batch_id, "leaf": leaf}, from_block=from_block)
        # the contract emits one event per leaf; the filter is this contract's address, so another
        # contract's event for the same batch id and leaf is never read (the newest would be)
        return bytes(logs[-1]["args"]["reason"]) if logs else None

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

    # --- anchoring and revocation (the registrar) -----------------------------------------------
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
        return self.sign_transaction(self.build_call(fn, nonce, fees))

    def sign_revoke(
        self, batch_id: int, leaves: list[bytes], reason: bytes, nonce: int, fees: Fees | None = None
    ) -> SignedTx:
        return self.sign_transaction(
            self.build_call(self.contract.functions.revokeRecords(batch_id, leaves, reason), nonce, fees)
        )

    def anchor_cost(self, records: int) -> tuple[int, int]:
        """(gas, price per gas in wei) of anchoring a batch of ``records`` records that mints as many
        tokens, estimated by the node on a sample batch (planning figures; nothing is signed)."""
        fn = self.contract.functions.anchorBatch(self.batch_count(), b"\x11" * 32, records, b"\x22" * 32, records)
        gas = int(fn.estimate_gas({"from": self.registrar.address}))
        quote = self.fee_quote()
        return gas, quote.next_base_fee + quote.tip
