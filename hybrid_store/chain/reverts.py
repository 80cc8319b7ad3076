"""Why a DeedRegistry call reverted, in words: custom errors decoded from the contract's ABI."""

from __future__ import annotations

import ast
import json
from functools import cache
from typing import Any

from eth_abi import decode
from web3.exceptions import ContractCustomError, ContractLogicError

from hybrid_store.chain.compile import ARTIFACT_PATH
from hybrid_store.core.hashing import keccak256, to_hex


@cache
def artifact() -> dict[str, Any]:
    """The committed compiler output (ABI and bytecode) of DeedRegistry."""
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
    if raw[:4] == keccak256(b"Error(string)")[:4]:
        return str(decode(["string"], raw[4:])[0])
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
        try:
            value = ast.literal_eval(message[len(prefix) :])
        except (ValueError, SyntaxError):
            return None
        return value if isinstance(value, bytes) else None
    return None


def is_revert(exc: BaseException) -> bool:
    return isinstance(exc, ContractCustomError | ContractLogicError) or type(exc).__name__ == "TransactionFailed"
