"""Writes the commitment and proof-bundle test vectors (tests/vectors/*/*.json).

Run once when a scheme is introduced: ``python tests/vectors/make_vectors.py v2`` writes the
vectors of ``landreg-commitment/v2`` (``commitment-v2/``, ``bundle-v2/``) and leaves v1's alone;
``... v1`` wrote ``commitment/`` and ``bundle/`` when v1 was introduced. The vectors are
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
from hybrid_store.core.records import Reference, build_record

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


_V2_INDEX = dict(
    document_date="2026-02-27", page_count=4, grantee_mailing_address="12 ELM STREET\nHACKENSACK, NJ 07601",
    preparer="ROBERT DOE, ESQ.",
)  # fmt: skip
RECORDS_V2: dict[str, dict[str, Any]] = {
    "deed-v2-index-fields": {
        "description": "A one-parcel deed with what a recorder indexes: the date it bears, its pages, the grantee's "
        "mailing address, the preparer; no cross-reference, supersedes nothing.",
        "seed": "00" * 31 + "02",
        "record": dict(RECORDS["deed-basic"]["record"], instrument_number="2026-0000101", **_V2_INDEX),
    },
    "satisfaction-v2-cites-mortgage": {
        "description": "A satisfaction naming the mortgage it satisfies by its number; no consideration, no "
        "mailing address.",
        "seed": "22" * 32,
        "record": dict(
            instrument_number="2026-0000102",
            doc_type="SATISFACTION",
            recorded_at="2026-05-01T09:00:00Z",
            book="20412",
            page="33",
            grantors=["VALLEY NATIONAL BANK"],
            grantees=["MARÍA GARCÍA"],
            consideration_cents=None,
            legal_description="",
            document_digest="f" * 64,
            parcels=["0223_100.01_5", "0223_100.01_6"],
            corrects=None,
            prev={"0223_100.01_5": "0x" + "5b" * 32, "0223_100.01_6": "0x" + "6b" * 32},
            document_date="2026-04-28",
            page_count=1,
            preparer="VALLEY NATIONAL BANK",
            references=[Reference("acts_on_mortgage", number="2026-0000002")],
        ),  # fmt: skip
    },
    "release-v2-cites-pre-registry-book-page": {
        "description": "A release naming two mortgages: one recorded before the registry's book began, by book "
        "and page, and one by its number.",
        "seed": "33" * 32,
        "record": dict(
            instrument_number="2026-0000103",
            doc_type="RELEASE",
            recorded_at="2026-05-02T10:11:12Z",
            book="20412",
            page="34",
            grantors=["FIRST FIDELITY BANK"],
            grantees=["ZOË MÜLLER"],
            consideration_cents=None,
            legal_description="Lot 1 in Block 2150.",
            document_digest="1" * 64,
            parcels=["0219_2150_1_C0012"],
            corrects=None,
            prev={"0219_2150_1_C0012": None},
            document_date="2026-04-30",
            page_count=2,
            references=[
                Reference("acts_on_mortgage", book="5120", page="77"),
                Reference("acts_on_mortgage", number="2026-0000002"),
            ],
        ),  # fmt: skip
    },
    "sheriffs-deed-v2-supersedes": {
        "description": "A mirrored new version of a sheriff's deed: it names the commitment of the version it "
        "supersedes.",
        "seed": "44" * 32,
        "record": dict(
            instrument_number="2026-0000104",
            doc_type="SHERIFFS_DEED",
            recorded_at="2026-06-01T12:00:00Z",
            book="7303",
            page="9",
            grantors=["SHERIFF OF BERGEN COUNTY"],
            grantees=["NGUYỄN VĂN AN"],
            consideration_cents=12_500_000,
            legal_description="As in the writ of execution.",
            document_digest="2" * 64,
            parcels=["0201_3_4"],
            corrects=None,
            prev={"0201_3_4": "0x" + "88" * 32},
            document_date="2026-05-20",
            page_count=3,
            grantee_mailing_address="1 MAIN ST\nTEANECK, NJ 07666",
            preparer="OFFICE OF THE SHERIFF",
            supersedes="0x" + "99" * 32,
        ),  # fmt: skip
    },
}
SCHEMES = {"v1": (commitment.SCHEME_V1, RECORDS, "commitment", "bundle", "deed-basic"),
           "v2": (commitment.SCHEME_V2, RECORDS_V2, "commitment-v2", "bundle-v2", "deed-v2-index-fields")}  # fmt: skip


def positive(name: str, spec: dict[str, Any], scheme: str = commitment.SCHEME_V1) -> dict[str, Any]:
    seed = bytes.fromhex(spec["seed"])
    record = build_record(**spec["record"])
    fields = commitment.fields_of(scheme)
    values = commitment.field_values(record, scheme)
    salts = {f: commitment.field_salt(seed, f, scheme) for f in fields}
    hashes = {f: commitment.field_hash(f, salts[f], values[f], scheme) for f in fields}
    value = commitment.commit(record, seed, scheme)
    return {
        "description": spec["description"],
        "scheme": scheme,
        "seed": spec["seed"],
        "fields": values,
        "expected": {
            "salts": {f: to_hex(s) for f, s in salts.items()},
            "fieldHashes": {f: to_hex(h) for f, h in hashes.items()},
            "commitment": to_hex(value),
            "leaf": to_hex(merkle.commitment_leaf(value)),
        },
    }


def bundle_for(
    spec: dict[str, Any], redact: tuple[str, ...] = (), scheme: str = commitment.SCHEME_V1
) -> dict[str, Any]:
    seed = bytes.fromhex(spec["seed"])
    record = build_record(**spec["record"])
    value = commitment.commit(record, seed, scheme)
    others = [bytes([i]) * 32 for i in range(1, 5)]
    tree = merkle.StandardTree.of([[to_hex(value)]] + [[to_hex(o)] for o in others], merkle.COMMITMENT_ENCODING)
    proof = bundles.TreeProof(merkle.COMMITMENT_ENCODING, (to_hex(value),), tuple(tree.proof(0)), tree.root)
    b = bundles.ProofBundle(commitment.disclose(record, seed, redact, scheme), value, proof, ANCHOR)
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


def negatives_v2(good: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any], dict[str, str]]]:
    """The mutations only v2's fields and its name make possible."""
    out: dict[str, tuple[str, dict[str, Any], dict[str, str]]] = {}

    def mutate(name: str, description: str, expected: dict[str, str], change) -> None:
        b = copy.deepcopy(good)
        change(b)
        out[name] = (description, b, expected)

    verification = {"kind": "verification"}
    fields = lambda b: b["record"]["fields"]  # noqa: E731
    mutate(
        "modified-value@page_count",
        "One page more.",
        verification,
        lambda b: fields(b)["page_count"].__setitem__("value", 5),
    )
    mutate(
        "modified-value@document_date",
        "The date the instrument bears moved by a day.",
        verification,
        lambda b: fields(b)["document_date"].__setitem__("value", "2026-02-28"),
    )
    mutate(
        "modified-value@grantee_mailing_address",
        "Another mailing address.",
        verification,
        lambda b: fields(b)["grantee_mailing_address"].__setitem__("value", "13 ELM STREET\nHACKENSACK, NJ 07601"),
    )
    mutate(
        "added-reference@references",
        "A cross-reference the instrument does not make.",
        verification,
        lambda b: fields(b)["references"]["value"].append(["acts_on_mortgage", "2026-0000002", None, None]),
    )
    mutate(
        "modified-value@supersedes",
        "Claims to supersede a version it does not.",
        verification,
        lambda b: fields(b)["supersedes"].__setitem__("value", "0x" + "99" * 32),
    )
    mutate(
        "missing-field@supersedes",
        "The supersedes link neither disclosed nor redacted.",
        {"kind": "malformed", "field": "record"},
        lambda b: fields(b).pop("supersedes"),
    )
    mutate(
        "relabelled-scheme@v1",
        "A v2 record presented as v1: v1 has no such fields.",
        {"kind": "malformed", "field": "record.fields.document_date"},
        lambda b: b["record"].__setitem__("scheme", commitment.SCHEME_V1),
    )
    mutate(
        "unknown-scheme@v3",
        "A commitment scheme that does not exist.",
        {"kind": "malformed", "field": "record.scheme"},
        lambda b: b["record"].__setitem__("scheme", "landreg-commitment/v3"),
    )
    return out  # fmt: skip


def write(path: Path, obj: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def vectors(version: str) -> dict[Path, dict[str, Any]]:
    """Every vector file of scheme ``version`` (``v1``, ``v2``) and its content."""
    scheme, records, commitment_dir, bundle_dir, basic = SCHEMES[version]
    out = {HERE / commitment_dir / f"{name}.json": positive(name, spec, scheme) for name, spec in records.items()}
    good = bundle_for(records[basic], scheme=scheme)
    out[HERE / bundle_dir / "valid-deed.json"] = {"description": "A complete, valid bundle.", "bundle": good,
                                                   "expected": {"valid": True}}  # fmt: skip
    hidden = ("consideration", "grantees") if version == "v1" else ("grantee_mailing_address", "preparer", "grantees")
    out[HERE / bundle_dir / f"valid-redacted@{'-'.join(hidden)}.json"] = {
        "description": "Fields redacted: given as field hashes, the proof still verifies.",
        "bundle": bundle_for(records[basic], redact=hidden, scheme=scheme), "expected": {"valid": True},
    }  # fmt: skip
    if version == "v1":
        out[HERE / bundle_dir / f"valid-redacted@{'-'.join(hidden)}.json"]["description"] = (
            "Price and buyers redacted: given as field hashes, the proof still verifies."
        )
    mutations = negatives(good) if version == "v1" else {**negatives(good), **negatives_v2(good)}
    for name, (description, b, expected) in mutations.items():
        out[HERE / bundle_dir / f"{name}.json"] = {"description": description, "bundle": b, "expected": expected}
    return out


def main(version: str) -> None:
    for path, content in vectors(version).items():
        write(path, content)


if __name__ == "__main__":
    import sys

    main(sys.argv[1] if len(sys.argv) > 1 else "v2")
