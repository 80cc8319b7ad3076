"""The DeedRegistry releases landreg knows, by the keccak256 of their runtime code.

A deployment is recognised by its code, not by what it says about itself: attaching to, adopting
or listing a contract whose code is not one of these is refused. The artifact of each earlier
release stays committed beside the current one, so bundles anchored there keep verifying and the
tests can deploy it.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from hybrid_store.core.hashing import keccak256, to_hex

ARTIFACTS = Path(__file__).parent / "artifacts"
#: release number -> artifact file (the newest is the one `landreg contracts build` writes)
RELEASES = {1: "DeedRegistry-v1.json", 2: "DeedRegistry.json"}
CURRENT = max(RELEASES)


@cache
def release_artifact(version: int) -> dict:
    return json.loads((ARTIFACTS / RELEASES[version]).read_text())


@cache
def code_hashes() -> dict[str, int]:
    """runtime code hash -> release number"""
    out = {}
    for version in RELEASES:
        runtime = bytes.fromhex(release_artifact(version)["deployedBytecode"][2:])
        out[to_hex(keccak256(runtime))] = version
    return out


def release_of(code_hash: str) -> int | None:
    return code_hashes().get(code_hash)
