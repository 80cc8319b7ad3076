"""The committed contract artifact is exactly what py-solc-x produces from the sources."""

from __future__ import annotations

import hashlib
import json

import pytest

from hybrid_store.chain import compile as contracts
from tests.conftest import REPO


@pytest.mark.subprocess
def test_recompiling_reproduces_the_artifact_byte_for_byte():
    assert contracts.compile_artifact(REPO) == contracts.ARTIFACT_PATH.read_text()


def test_artifact_records_compiler_settings_and_sources():
    artifact = json.loads(contracts.ARTIFACT_PATH.read_text())
    assert artifact["compiler"]["version"].startswith(contracts.SOLC_VERSION + "+commit.")
    assert artifact["settings"] == contracts.SETTINGS
    for unit, digest in artifact["sources"].items():
        assert hashlib.sha256((REPO / unit).read_bytes()).hexdigest() == digest, unit
    assert "node_modules/@openzeppelin/contracts/token/ERC721/ERC721.sol" in artifact["sources"]
    assert artifact["deployedBytecode"].startswith("0x60") and len(artifact["deployedBytecode"]) > 10_000


@pytest.mark.subprocess
def test_the_wasm_shim_speaks_solc(tmp_path):
    import subprocess

    out = subprocess.run(
        [str(REPO / "contracts/solc-shim/solc"), "--version"], capture_output=True, text=True, check=True
    )
    assert f"Version: {contracts.SOLC_VERSION}+commit." in out.stdout
