"""Writes tests/data/title_state_vectors.json, the frozen vectors of ``landreg-title-state/v1``.

Run once, when the scheme was introduced:

    PYTHONPATH=. python tests/data/make_title_state_vectors.py

The file is then frozen: tests/test_title_state.py recomputes every state's root and proof with the
code and checks each one (and each negative case's error) against the independent implementation
in that test file, and fails if the code's output moves. Negative cases are named after their
mutation (``modified-sibling@3``) and state the error a verifier must give.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

from hybrid_store.core import title_state as ts
from hybrid_store.core.hashing import to_hex

OUT = Path(__file__).parent / "title_state_vectors.json"
COMMAND = "PYTHONPATH=. python tests/data/make_title_state_vectors.py"


def commitment(label: str) -> bytes:
    return hashlib.sha256(b"title-state vector " + label.encode()).digest()


def bergen_keys(n: int) -> list[str]:
    return [f"0223_{100 + i // 7}.01_{i % 7 + 1}" for i in range(n)]


def head(key: str, length: int = 1, tag: str = "") -> ts.Head:
    return ts.Head(key, commitment(key + tag), length)


def bit_of(path: bytes, depth: int) -> int:
    return path[depth // 8] >> (7 - depth % 8) & 1


def head_json(h: ts.Head) -> dict[str, Any]:
    return {"parcelKey": h.parcel_key, "commitment": to_hex(h.commitment), "historyLength": h.history_length}


def absent_key(store: ts.MemoryNodeStore, version: int, kind: str) -> str | None:
    """The first ``absent-N`` key whose absence proof is of ``kind`` (none: the state has no such place)."""
    for i in range(1_000):
        key = f"absent-{i}"
        if ts.prove(store, version, key).kind == kind:
            return key
    return None


STATES: list[tuple[str, str, int | None, list[ts.Head]]] = [
    ("empty", "No parcel has a head: the root is the empty constant.", None, []),
    ("one-parcel", "One parcel: the root is its leaf.", None, [head("0223_100.01_5")]),
    (
        "five-parcels",
        "Five parcels of two profiles' key formats, one key outside ASCII (UTF-8 length prefix).",
        None,
        [
            head("0223_100.01_5"),
            head("0223_100.01_6", 3),
            head("1-00123-0045", 2),
            head("4-00007-0001"),
            head("0223_É_1"),
        ],
    ),
    ("forty-parcels", "Forty parcels, each with one record.", None, [head(k) for k in bergen_keys(40)]),
    (
        "forty-parcels-updated",
        "On forty-parcels (version 4): three parcels get a second record, two new parcels their first.",
        4,
        [head(k, 2, "/2") for k in bergen_keys(3)] + [head(k) for k in ("0223_900_1", "0223_900_2")],
    ),
]


def states() -> tuple[ts.MemoryNodeStore, list[dict[str, Any]]]:
    store = ts.MemoryNodeStore()
    out = []
    for version, (name, description, base, heads) in enumerate(STATES, start=1):
        _, root = ts.apply(store, base, heads, version=version)
        everyone = ts.heads_of(store, version)
        members = sorted(everyone)[:3]
        absentees = (absent_key(store, version, kind) for kind in ("absent-empty", "absent-leaf"))
        keys = members + [k for k in absentees if k is not None]
        proofs = [
            {
                "parcelKey": k,
                "proof": ts.prove(store, version, k).to_json(),
                "head": head_json(everyone[k]) if k in everyone else None,
            }
            for k in keys
        ]
        out.append({
            "name": name,
            "description": description,
            "version": version,
            "base": base,
            "applied": [head_json(h) for h in heads],
            "root": to_hex(root),
            "marker": to_hex(ts.state_marker(root)),
            "proofs": proofs,
        })  # fmt: skip
    return store, out


def negatives(store: ts.MemoryNodeStore) -> list[dict[str, Any]]:
    version = 4  # forty-parcels
    root = to_hex(store.root_of(version))
    everyone = ts.heads_of(store, version)
    keys = sorted(everyone)
    deepest = max(keys, key=lambda k: ts.prove(store, version, k).depth)
    member = ts.prove(store, version, deepest).to_json()
    gone = absent_key(store, version, "absent-leaf")
    assert gone is not None
    absent = ts.prove(store, version, gone).to_json()
    cases: list[dict[str, Any]] = []

    def case(name: str, description: str, key: str, proof: dict[str, Any], error: str) -> None:
        cases.append({"name": name, "description": description, "root": root, "parcelKey": key, "proof": proof, "error": error})  # fmt: skip

    case(
        "wrong-key",
        "A recorded parcel's head proof, checked for another recorded parcel.",
        keys[1],
        member,
        "root-mismatch",
    )
    p = copy.deepcopy(member)
    p["siblings"][3] = p["siblings"][3][:-1] + ("1" if p["siblings"][3][-1] == "0" else "0")
    case("modified-sibling@3", "The fourth non-empty sibling has its last bit flipped.", deepest, p, "root-mismatch")
    p = copy.deepcopy(member)
    p["siblings"].append(p["siblings"][0])
    case(
        "extra-sibling",
        "One sibling more than the bitmap marks (an unused proof element).",
        deepest,
        p,
        "malformed-proof",
    )
    p = copy.deepcopy(member)
    p["siblings"].pop()
    case("missing-sibling", "One sibling fewer than the bitmap marks.", deepest, p, "malformed-proof")
    p = copy.deepcopy(absent)
    leaf = bytes.fromhex(p["leaf"]["path"][2:]), bytes.fromhex(p["leaf"]["valueHash"][2:])
    depth = p["depth"]
    bit = bit_of(ts.path_of(gone), depth)
    bitmap = int(p["bitmap"], 16) >> (-depth % 8) << 1 | 1
    p.update(
        kind="absent-empty",
        depth=depth + 1,
        bitmap="0x" + (bitmap << (-(depth + 1) % 8)).to_bytes((depth + 8) // 8, "big").hex(),
    )
    p["siblings"].append(to_hex(ts.leaf_hash(*leaf)))
    del p["leaf"]
    case("leaf-as-inner", f"The other parcel's leaf (at depth {depth} on the path) presented as an inner node over "
         f"itself and an empty subtree, so the path {'right' if bit else 'left'} of it looks empty.", gone, p, "root-mismatch")  # fmt: skip
    # the parent of a leaf at depth >= 2 whose own sibling is not empty (so the shorter proof is canonical)
    target = next(k for k in keys if (n := ts.prove(store, version, k)).depth >= 2 and n.siblings[-2] != ts.EMPTY)
    node = ts.prove(store, version, target)
    own = ts.leaf_hash(ts.path_of(target), ts.value_hash(everyone[target]))
    on_right = bit_of(ts.path_of(target), node.depth - 1)
    left, right = (node.siblings[-1], own) if on_right else (own, node.siblings[-1])
    p = ts.HeadProof(node.siblings[:-1], leaf=ts.OtherLeaf(left, right)).to_json()
    off_path = any(bit_of(left, i) != bit_of(ts.path_of(target), i) for i in range(node.depth - 1))
    case("inner-as-leaf", "The inner node above a parcel's leaf presented as another parcel's leaf (its children "
         "as path and value hash), to claim the parcel absent.", target, p, "wrong-path" if off_path else "root-mismatch")  # fmt: skip
    p = copy.deepcopy(member)
    p["bitmap"] = p["bitmap"][:-2]
    case(
        "truncated-bitmap",
        f"The bitmap of a depth-{member['depth']} proof lost its last byte.",
        deepest,
        p,
        "malformed-proof",
    )
    p = copy.deepcopy(member)
    p["depth"] = 257
    case("depth-257", "A proof deeper than a 256-bit path.", deepest, p, "malformed-proof")
    p = copy.deepcopy(member)
    p["note"] = "hello"
    case("extra-member", "An unknown member in the proof object.", deepest, p, "malformed-proof")
    p = copy.deepcopy(member)
    p["head"]["commitment"] = to_hex(commitment("forged"))
    case("modified-commitment", "The head's commitment replaced.", deepest, p, "root-mismatch")
    p = copy.deepcopy(member)
    p["head"]["historyLength"] += 1
    case("history-length+1", "The head's history length one more than recorded.", deepest, p, "root-mismatch")
    forged = ts.MemoryNodeStore()
    ts.apply(forged, None, [*everyone.values(), head(gone)], version=1)
    case("forged-head-for-unrecorded-parcel", "A head proof for a parcel the registry never recorded, made from the "
         "same heads plus a forged one.", gone, ts.prove(forged, 1, gone).to_json(), "root-mismatch")  # fmt: skip
    p = copy.deepcopy(absent)
    p["leaf"]["path"] = to_hex(ts.path_of(deepest))
    p["leaf"]["valueHash"] = to_hex(ts.value_hash(everyone[deepest]))
    case("absent-with-own-leaf", "An absence proof whose 'other' leaf is the parcel's own.", deepest, p, "wrong-path")
    p = copy.deepcopy(member)
    p["siblings"][2] = p["siblings"][2].upper().replace("0X", "0x")
    case(
        "uppercase-hex", "A sibling written in upper-case hex (one spelling per value).", deepest, p, "malformed-proof"
    )
    p = copy.deepcopy(member)
    bits = int(p["bitmap"], 16) >> (-p["depth"] % 8)
    p["depth"] += 1
    p["bitmap"] = "0x" + (bits << 1 << (-p["depth"] % 8)).to_bytes((p["depth"] + 7) // 8, "big").hex()
    case("empty-deepest-sibling", "One more level whose sibling is empty: never so in a compacted tree.", deepest, p, "malformed-proof")  # fmt: skip
    return cases


def vectors() -> dict[str, Any]:
    store, state_list = states()
    return {
        "scheme": ts.SCHEME,
        "command": COMMAND,
        "description": "Frozen vectors of landreg-title-state/v1 (docs/title-state.md). States are applied in "
        "order, each as its version onto its base (null: the empty state). A proof's head is null for an "
        "absence proof. Negative cases are checked against the root they name; 'error' is the verifier's code.",
        "states": state_list,
        "negatives": negatives(store),
    }


def render() -> str:
    return json.dumps(vectors(), indent=1, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}")
