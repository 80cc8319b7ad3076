"""Batch manifests (format ``landreg-batch-manifest/v1``): what each batch anchored, record by record.

A manifest lists, in tree order, the instrument number and commitment of every leaf of one batch.
Rebuilding the standard-v1 tree from it must give the root the contract holds, so a manifest
authenticates itself against the chain wherever it is stored: on the registry's disk, on an
auditor's share, on write-once media. That is what lets reconciliation locate a tampered record
even when whoever changed it also rewrote the database's commitment, leaf and proof columns:
the database no longer decides what was anchored.

Files are named by their root (``<root hex>.json``), written once, never changed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hybrid_store.core import merkle
from hybrid_store.core.hashing import from_hex32, is_hex32, to_hex
from hybrid_store.files import create_once

FORMAT = "landreg-batch-manifest/v1"


class ManifestError(ValueError):
    pass


@dataclass(frozen=True)
class Manifest:
    chain_id: int
    contract: str
    batch_id: int
    root: bytes
    records: tuple[tuple[str, bytes], ...]  # (instrument number, commitment), in tree order

    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "chainId": self.chain_id,
            "contract": self.contract,
            "batchId": self.batch_id,
            "root": to_hex(self.root),
            "leafEncoding": list(merkle.COMMITMENT_ENCODING),
            "records": [[number, to_hex(c)] for number, c in self.records],
        }

    def rebuilt_root(self) -> bytes:
        leaves = [merkle.commitment_leaf(c) for _, c in self.records]
        if leaves != sorted(leaves):
            raise ManifestError("records are not in tree (sorted-leaf) order")
        return merkle.build(leaves)[0]

    def check(self) -> None:
        """Raise ``ManifestError`` unless the records rebuild the stated root."""
        if self.rebuilt_root() != self.root:
            raise ManifestError(f"records do not rebuild root {to_hex(self.root)}")


def path_for(directory: Path, root: bytes) -> Path:
    return directory / f"{to_hex(root)}.json"


def write(directory: Path, manifest: Manifest) -> Path:
    path = path_for(directory, manifest.root)
    create_once(path, (json.dumps(manifest.to_json(), separators=(",", ":")) + "\n").encode(), mode=0o444)
    return path


def parse(document: dict) -> Manifest:
    try:
        if document["format"] != FORMAT:
            raise ManifestError(f"not a {FORMAT} document")
        records = []
        for number, commitment in document["records"]:
            if not isinstance(number, str) or not is_hex32(commitment):
                raise ManifestError(f"bad record entry {number!r}")
            records.append((number, from_hex32(commitment)))
        if not is_hex32(document["root"]):
            raise ManifestError("bad root")
        return Manifest(int(document["chainId"]), str(document["contract"]), int(document["batchId"]),
                        from_hex32(document["root"]), tuple(records))  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ManifestError):
            raise
        raise ManifestError(f"malformed manifest: {exc}") from None


def read(directory: Path, root: bytes) -> Manifest | None:
    """The manifest of ``root`` in ``directory``, or None; a file that does not rebuild its root
    (damaged, or swapped) raises ``ManifestError``."""
    path = path_for(directory, root)
    if not path.exists():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"cannot read {path.name}: {exc}") from None
    manifest = parse(document)
    if manifest.root != root:
        raise ManifestError(f"{path.name} states root {to_hex(manifest.root)}")
    manifest.check()
    return manifest


def from_tree(chain_id: int, contract: str, batch_id: int, root: bytes,
              records_in_tree_order: Sequence[tuple[str, bytes]]) -> Manifest:  # fmt: skip
    return Manifest(chain_id, contract, batch_id, root, tuple(records_in_tree_order))
