"""Writes the commitment and proof-bundle test vectors (tests/vectors/*/*.json).

Run once when the scheme is introduced: ``python tests/vectors/make_vectors.py``. The vectors are
then frozen: the test suite recomputes every one and fails if the code's output moves, and it
checks the positive ones against an independent implementation written from the spec alone.
Negative vectors are named after their mutation (``modified-value@grantors``) and state the error.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from hybrid_store.core import bundle as bundles
from hybrid_store.core import commitment, merkle
from hybrid_store.core.hashing import to_hex
from hybrid_store.core.records import build_record

HERE = Path(__file__).parent
ANCHOR = bundles.Anchor(
    chain_id=31337,
    contract="0x5FbDB2315678afecb367f032d93F642f64180aa3",
    batch_id=0,
    tx_hash="0x" + "ab" * 32,
    block_number=2,
)

RECORDS: dict[str, dict[str, Any]] = {
    "deed-basic": {
        "description": "A one-parcel deed, first record of its parcel (prev link null).",
        "seed": "00" * 31 + "01",
        "record": dict(
            instrument_number="2026-0000001",
            doc_type="DEED",
            recorded_at="2026-03-02T14:05:09Z",
            book="7301",
            page="112",
            grantors=["JOHN Q. SMITH", "MARY SMITH"],
            grantees=["MARÍA GARCÍA"],
            consideration_cents=35_000_000,
            legal_description="ALL that certain lot in the City of Hackensack.",
            document_digest="c0ffee" + "0" * 58,
            parcels=["0223_100.01_5"],
            corrects=None,
            prev={"0223_100.01_5": None},
        ),  # fmt: skip
    },
    "mortgage-two-parcels-with-history": {
        "description": "A mortgage over two parcels, each linked to its previous record's commitment.",
        "seed": "11" * 32,
        "record": dict(
            instrument_number="2026-0000002",
            doc_type="MORTGAGE",
            recorded_at="2026-03-02T14:09:00Z",
            book="20411",
            page="7",
            grantors=["MARÍA GARCÍA"],
            grantees=["VALLEY NATIONAL BANK"],
            consideration_cents=28_000_000,
            legal_description="Lots 5 and 6 in Block 100.01.\nSee the deed recorded as instrument 2026-0000001.",
            document_digest="d" * 64,
            parcels=["0223_100.01_6", "0223_100.01_5"],
            corrects=None,
            prev={"0223_100.01_5": "0x" + "5a" * 32, "0223_100.01_6": None},
        ),  # fmt: skip
    },
    "correction-condo-unit": {
        "description": "A corrective instrument for a condominium unit (qualifier C0012), no consideration.",
        "seed": "fe" * 32,
        "record": dict(
            instrument_number="2026-0000003",
            doc_type="CORRECTION",
            recorded_at="2026-04-30T19:59:59Z",
            book="7302",
            page="1",
            grantors=["ZOË MÜLLER", "SØREN ÅBERG"],
            grantees=["NGUYỄN VĂN AN"],
            consideration_cents=None,
            legal_description="",
            document_digest="e" * 64,
            parcels=["0219_2150_1_C0012"],
            corrects="2026-0000001",
            prev={"0219_2150_1_C0012": "0x" + "77" * 32},
        ),  # fmt: skip
    },
}


def positive(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    seed = bytes.fromhex(spec["seed"])
    record = build_record(**spec["record"])
    values = commitment.field_values(record)
    salts = {f: commitment.field_salt(seed, f) for f in commitment.FIELDS}
    hashes = {f: commitment.field_hash(f, salts[f], values[f]) for f in commitment.FIELDS}
    value = commitment.commit(record, seed)
    return {
        "description": spec["description"],
        "scheme": commitment.SCHEME,
        "seed": spec["seed"],
        "fields": values,
        "expected": {
            "salts": {f: to_hex(s) for f, s in salts.items()},
            "fieldHashes": {f: to_hex(h) for f, h in hashes.items()},
            "commitment": to_hex(value),
            "leaf": to_hex(merkle.commitment_leaf(value)),
        },
    }


def bundle_for(spec: dict[str, Any], redact: tuple[str, ...] = ()) -> dict[str, Any]:
    seed = bytes.fromhex(spec["seed"])
    record = build_record(**spec["record"])
    value = commitment.commit(record, seed)
    others = [bytes([i]) * 32 for i in range(1, 5)]
    tree = merkle.StandardTree.of([[to_hex(value)]] + [[to_hex(o)] for o in others], merkle.COMMITMENT_ENCODING)
    proof = bundles.TreeProof(merkle.COMMITMENT_ENCODING, (to_hex(value),), tuple(tree.proof(0)), tree.root)
    b = bundles.ProofBundle(commitment.disclose(record, seed, redact), value, proof, ANCHOR)
    return b.to_json()


def flip_bit(hex32: str, bit: int) -> str:
    raw = bytearray(bytes.fromhex(hex32[2:]))
    raw[bit // 8] ^= 1 << (7 - bit % 8)
    return "0x" + raw.hex()


def negatives(good: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any], dict[str, str]]]:
    """name -> (description, mutated bundle, expected error)."""
    out: dict[str, tuple[str, dict[str, Any], dict[str, str]]] = {}

    def mutate(name: str, description: str, expected: dict[str, str], change) -> None:
        b = copy.deepcopy(good)
        change(b)
        out[name] = (description, b, expected)

    verification = {"kind": "verification"}
    mutate(
        "modified-value@grantors",
        "A grantor's name changed.",
        verification,
        lambda b: b["record"]["fields"]["grantors"]["value"].__setitem__(0, "JOHN Q. SMYTH"),
    )
    mutate(
        "modified-value@consideration",
        "The price changed by one cent.",
        verification,
        lambda b: b["record"]["fields"]["consideration"].__setitem__("value", 35_000_001),
    )
    mutate(
        "wrong-salt@doc_type",
        "One bit of a field salt flipped.",
        verification,
        lambda b: b["record"]["fields"]["doc_type"].__setitem__(
            "salt", flip_bit(b["record"]["fields"]["doc_type"]["salt"], 255)
        ),
    )
    mutate(
        "swapped-values@grantors-grantees",
        "Grantors and grantees exchanged.",
        verification,
        lambda b: (
            lambda f: (
                f["grantors"].__setitem__("value", f["grantees"]["value"]),
                f["grantees"].__setitem__("value", ["JOHN Q. SMITH", "MARY SMITH"]),
            )
        )(b["record"]["fields"]),
    )
    mutate(
        "reordered-value@grantors",
        "The same grantors in another order (order is committed).",
        verification,
        lambda b: b["record"]["fields"]["grantors"]["value"].reverse(),
    )
    mutate(
        "modified-history@prev",
        "The history link points at another previous record.",
        verification,
        lambda b: b["record"]["fields"]["prev"]["value"][0].__setitem__(1, "0x" + "00" * 32),
    )
    mutate(
        "modified-commitment@1-bit",
        "The stated commitment has one bit flipped.",
        verification,
        lambda b: b["record"].__setitem__("commitment", flip_bit(b["record"]["commitment"], 0)),
    )
    mutate(
        "modified-proof@0-bit",
        "The first proof hash has its first bit flipped.",
        verification,
        lambda b: b["tree"]["proof"].__setitem__(0, flip_bit(b["tree"]["proof"][0], 0)),
    )
    mutate("truncated-proof", "The last proof hash removed.", verification, lambda b: b["tree"]["proof"].pop())
    mutate(
        "wrong-root",
        "The root replaced by another tree's root.",
        verification,
        lambda b: b["tree"].__setitem__("root", "0x" + "42" * 32),
    )
    mutate(
        "leaf-value-not-commitment",
        "The Merkle leaf value is not the record's commitment.",
        verification,
        lambda b: b["tree"].__setitem__("value", ["0x" + "01" * 32]),
    )
    mutate(
        "missing-field@prev",
        "The history link neither disclosed nor redacted.",
        {"kind": "malformed", "field": "record"},
        lambda b: b["record"]["fields"].pop("prev"),
    )
    mutate(
        "disclosed-and-redacted@book",
        "A field both disclosed and redacted.",
        {"kind": "malformed", "field": "record"},
        lambda b: b["record"]["redacted"].__setitem__("book", "0x" + "00" * 32),
    )
    mutate(
        "unknown-field@owner",
        "A field the scheme does not have.",
        {"kind": "malformed", "field": "record.fields.owner"},
        lambda b: b["record"]["fields"].__setitem__("owner", {"salt": "0x" + "00" * 32, "value": "X"}),
    )
    mutate(
        "uppercase-hex@commitment",
        "The commitment spelled in upper-case hex (one spelling only).",
        {"kind": "malformed", "field": "record.commitment"},
        lambda b: b["record"].__setitem__("commitment", "0x" + b["record"]["commitment"][2:].upper()),
    )
    mutate(
        "float-value@consideration",
        "The price as a JSON float.",
        {"kind": "malformed", "field": "record.fields.consideration.value"},
        lambda b: b["record"]["fields"]["consideration"].__setitem__("value", 350000.0),
    )
    mutate(
        "wrong-leaf-encoding",
        "A leaf encoding other than bytes32.",
        {"kind": "malformed", "field": "tree.leafEncoding"},
        lambda b: b["tree"].__setitem__("leafEncoding", ["uint256"]),
    )
    mutate(
        "bad-checksum@contract",
        "The contract address with a broken EIP-55 checksum.",
        {"kind": "malformed", "field": "anchor.contract"},
        lambda b: b["anchor"].__setitem__("contract", b["anchor"]["contract"].lower()),
    )
    mutate(
        "wrong-format",
        "Another bundle format version.",
        {"kind": "malformed", "field": "format"},
        lambda b: b.__setitem__("format", "landreg-proof-bundle/v2"),
    )
    mutate(
        "tree-without-anchor",
        "A tree but no anchor.",
        {"kind": "malformed", "field": "anchor"},
        lambda b: b.__setitem__("anchor", None),
    )
    return out  # fmt: skip


def write(path: Path, obj: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main() -> None:
    for name, spec in RECORDS.items():
        write(HERE / "commitment" / f"{name}.json", positive(name, spec))
    good = bundle_for(RECORDS["deed-basic"])
    write(HERE / "bundle" / "valid-deed.json", {"description": "A complete, valid bundle.", "bundle": good,
                                                "expected": {"valid": True}})  # fmt: skip
    redacted = bundle_for(RECORDS["deed-basic"], redact=("consideration", "grantees"))
    write(HERE / "bundle" / "valid-redacted@consideration-grantees.json",
          {"description": "Price and buyers redacted: given as field hashes, the proof still verifies.",
           "bundle": redacted, "expected": {"valid": True}})  # fmt: skip
    for name, (description, b, expected) in negatives(good).items():
        write(HERE / "bundle" / f"{name}.json", {"description": description, "bundle": b, "expected": expected})


if __name__ == "__main__":
    main()
