"""Compile contracts/DeedRegistry.sol with py-solc-x into the committed artifact.

Run ``landreg contracts build`` after changing the contract; ``landreg contracts build --check``
(and the test suite) recompile and require byte-identical output. Nothing compiles at run time.

Compiler resolution, first hit wins: ``SOLC_BINARY``; a solc of the pinned version installed by
py-solc-x; the official wasm build from npm (``solc``) behind ``contracts/solc-shim/solc``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from hybrid_store.errors import ConfigurationError

SOLC_VERSION = "0.8.37"
CONTRACT = "DeedRegistry"
SOURCE_UNIT = "contracts/DeedRegistry.sol"
ARTIFACT_PATH = Path(__file__).parent / "artifacts" / f"{CONTRACT}.json"

SETTINGS: dict[str, Any] = {
    "evmVersion": "cancun",  # runs on eth-tester's py-evm and on anvil alike
    "optimizer": {"enabled": True, "runs": 200},
    "metadata": {"bytecodeHash": "ipfs"},
    "remappings": ["@openzeppelin/contracts/=node_modules/@openzeppelin/contracts/"],
}


def project_root() -> Path:
    """The source checkout (the compiler needs contracts/ and node_modules/, which only it has)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / SOURCE_UNIT).is_file():
        raise ConfigurationError("compiling needs a source checkout with contracts/ (run from the repository)")
    return root


def resolve_compiler(root: Path) -> Path:
    explicit = os.environ.get("SOLC_BINARY")
    if explicit:
        return Path(explicit)
    from solcx.exceptions import SolcNotInstalled
    from solcx.install import get_executable

    try:
        return Path(get_executable(SOLC_VERSION))
    except SolcNotInstalled:  # not installed through py-solc-x (it cannot download here)
        pass
    shim = root / "contracts" / "solc-shim" / "solc"
    if shutil.which("node") and (root / "node_modules" / "solc").is_dir():
        return shim
    raise ConfigurationError(
        f"no solc {SOLC_VERSION}: set SOLC_BINARY, or run `npm ci` so the wasm compiler is available"
    )


def compile_artifact(root: Path | None = None) -> str:
    """Compile and return the artifact's exact text."""
    import solcx

    root = root or project_root()
    compiler = resolve_compiler(root)
    version = solcx.wrapper.get_version_str_from_solc_binary(compiler)
    if not version.startswith(SOLC_VERSION + "+"):
        raise ConfigurationError(f"{compiler} is solc {version}; the contract is pinned to {SOLC_VERSION}")
    selection = ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]
    standard_input = {
        "language": "Solidity",
        "sources": {SOURCE_UNIT: {"urls": [SOURCE_UNIT]}},
        "settings": {**SETTINGS, "outputSelection": {SOURCE_UNIT: {CONTRACT: selection}}},
    }
    output = solcx.compile_standard(standard_input, base_path=str(root), allow_paths=[str(root)], solc_binary=compiler)
    contract = output["contracts"][SOURCE_UNIT][CONTRACT]
    sources = {unit: hashlib.sha256((root / unit).read_bytes()).hexdigest() for unit in sorted(output["sources"])}
    source_hash = hashlib.sha256(json.dumps(sources, sort_keys=True).encode()).hexdigest()
    artifact = {
        "contractName": CONTRACT,
        "sourceName": SOURCE_UNIT,
        "compiler": {"name": "solc", "version": version},
        "settings": SETTINGS,
        "sourceHash": source_hash,
        "sources": sources,
        "abi": contract["abi"],
        "bytecode": "0x" + contract["evm"]["bytecode"]["object"],
        "deployedBytecode": "0x" + contract["evm"]["deployedBytecode"]["object"],
    }
    return json.dumps(artifact, indent=1, sort_keys=True) + "\n"


def build(check: bool = False) -> bool:
    """Write the artifact, or with ``check`` only compare; returns whether the committed one matched."""
    text = compile_artifact()
    current = ARTIFACT_PATH.read_text() if ARTIFACT_PATH.exists() else None
    if not check and current != text:
        ARTIFACT_PATH.write_text(text)
    return current == text
