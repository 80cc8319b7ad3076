"""Proof bundles (formats ``landreg-proof-bundle/v1`` and ``/v2``, spec in docs/proof-bundle.md).

A bundle carries everything an auditor needs to check one record without trusting the registry:
the disclosed fields with their salts (or only their hashes when redacted), the commitment, the
Merkle proof in ``standard-v1`` terms, and where the root was anchored. Parsing is strict: unknown
members, wrong types and non-canonical spellings are errors that name the member, so one document
has exactly one meaning. ``verify_offline`` is pure math; checking the anchor against a chain is the
job of the verifier (``hybrid_store.verifier.anchor``).

Version 2 adds one optional member, ``successor``: the bundle of the newer version that superseded
the record (a mirrored legacy record edited in place), which is the evidence a verifier needs before
it says SUPERSEDED. A bundle without it is written as version 1, byte for byte as before, so older
verifiers keep reading every bundle that does not need the new member.

Version 3 adds ``corrections``: the bundles of later records whose committed correction link names
this one, the evidence a verifier needs before it says "corrected by N" (a correction does not
revoke what it corrects, so nothing on the chain says it). Only a bundle that carries corrections is
written as version 3; one with a successor alone stays version 2, byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hybrid_store.core import merkle
from hybrid_store.core.canonical import check_domain
from hybrid_store.core.commitment import SCHEMES, Disclosure, fields_of
from hybrid_store.core.hashing import from_hex32, hex32_bytes, hex32_many, is_checksum_address, to_hex
from hybrid_store.errors import MalformedBundle, VerificationFailed

FORMAT = "landreg-proof-bundle/v1"
FORMAT_V2 = "landreg-proof-bundle/v2"  # v1 and the optional ``successor``
FORMAT_V3 = "landreg-proof-bundle/v3"  # v2 and ``corrections`` (a successor stays optional)
#: a record is corrected a handful of times at most; more is padding, not evidence
MAX_CORRECTIONS = 16
MAX_PROOF_LENGTH = 64  # a tree of 2**64 leaves; anything longer is garbage, not a proof
MAX_BUNDLE_BYTES = 1_000_000  # a bundle is a few KB; refuse to parse megabytes of input
#: a jurisdiction profile's name, as the trust root spells it (``bergen``, ``nyc``)
JURISDICTION_RE = re.compile(r"[a-z][a-z0-9-]{0,31}")


@dataclass(frozen=True)
class Anchor:
    chain_id: int
    contract: str  # EIP-55 checksummed
    batch_id: int
    tx_hash: str  # 0x + 64 lowercase hex
    block_number: int


@dataclass(frozen=True)
class TreeProof:
    leaf_encoding: tuple[str, ...]
    value: tuple[str, ...]
    proof: tuple[bytes, ...]
    root: bytes

    @property
    def leaf(self) -> bytes:
        return merkle.leaf_hash(self.leaf_encoding, self.value)


@dataclass(frozen=True)
class ProofBundle:
    disclosure: Disclosure
    commitment: bytes
    tree: TreeProof | None  # None while the record waits for its batch
    anchor: Anchor | None
    #: the jurisdiction whose rules spell the record's parcel keys; absent in bundles made before it
    #: was named (those are Bergen County's). A verifier compares it with its trust root's.
    jurisdiction: str | None = None
    #: the bundle of the version that superseded this record (format v2 only): the evidence for a
    #: SUPERSEDED verdict. It never carries a successor of its own.
    successor: ProofBundle | None = None
    #: the bundles of the corrections that name this record (format v3 only): the evidence for
    #: "corrected by N". None of them carries a successor or corrections of its own.
    corrections: tuple[ProofBundle, ...] = ()

    @property
    def is_anchored(self) -> bool:
        return self.tree is not None and self.anchor is not None

    def disclosed(self, name: str) -> Any:
        """A disclosed field's value, or None when it is redacted."""
        opened = self.disclosure.opened.get(name)
        return None if opened is None else opened[1]

    def to_json(self) -> dict[str, Any]:
        scheme = self.disclosure.scheme
        record = {
            "scheme": scheme,
            "commitment": to_hex(self.commitment),
            "fields": {
                name: {"salt": to_hex(salt), "value": value}
                for name in fields_of(scheme)
                if name in self.disclosure.opened
                for salt, value in [self.disclosure.opened[name]]
            },
            "redacted": {
                name: to_hex(self.disclosure.redacted[name])
                for name in fields_of(scheme)
                if name in self.disclosure.redacted
            },
        }
        fmt = FORMAT_V3 if self.corrections else FORMAT if self.successor is None else FORMAT_V2
        out: dict[str, Any] = {"format": fmt, "record": record, "tree": None, "anchor": None}
        if self.jurisdiction is not None:
            out["jurisdiction"] = self.jurisdiction
        if self.tree is not None:
            out["tree"] = {
                "format": merkle.FORMAT,
                "leafEncoding": list(self.tree.leaf_encoding),
                "value": list(self.tree.value),
                "proof": [to_hex(p) for p in self.tree.proof],
                "root": to_hex(self.tree.root),
            }
        if self.anchor is not None:
            out["anchor"] = {
                "chainId": self.anchor.chain_id,
                "contract": self.anchor.contract,
                "batchId": self.anchor.batch_id,
                "txHash": self.anchor.tx_hash,
                "blockNumber": self.anchor.block_number,
            }
        if self.successor is not None:
            out["successor"] = self.successor.to_json()
        if self.corrections:
            out["corrections"] = [c.to_json() for c in self.corrections]
        return out


# --- parsing -----------------------------------------------------------------------------------------
def _object(obj: Any, where: str, required: set[str], optional: frozenset[str] = frozenset()) -> Mapping[str, Any]:
    if not isinstance(obj, dict):
        raise MalformedBundle(where, "must be a JSON object")
    for key in obj:
        if key not in required and key not in optional:
            raise MalformedBundle(f"{where}.{key}" if where != "(bundle)" else key, "is not a member of this format")
    for key in sorted(required):
        if key not in obj:
            raise MalformedBundle(f"{where}.{key}" if where != "(bundle)" else key, "is missing")
    return obj


def _hex32(value: Any, where: str) -> bytes:
    data = hex32_bytes(value)
    if data is None:
        raise MalformedBundle(where, "must be 0x followed by 64 lowercase hex digits")
    return data


def _uint(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MalformedBundle(where, "must be a non-negative integer")
    return value


def parse(obj: Any, *, nested: str = "") -> ProofBundle:
    """Parse a decoded JSON bundle, or raise ``MalformedBundle`` naming the first bad member.
    ``nested``: where the bundle sits in another (``successor``, ``corrections[0]``); such a bundle
    carries no successor or corrections of its own."""
    where = nested or "(bundle)"
    optional = frozenset({"jurisdiction"} if nested else {"jurisdiction", "successor", "corrections"})
    top = _object(obj, where, {"format", "record", "tree", "anchor"}, optional)
    if nested and top["format"] != FORMAT:
        raise MalformedBundle(f"{nested}.format", f"must be {FORMAT!r} (a bundle inside another carries none)")
    _check_format(top)
    jurisdiction = top.get("jurisdiction")
    if jurisdiction is not None and not (isinstance(jurisdiction, str) and JURISDICTION_RE.fullmatch(jurisdiction)):
        raise MalformedBundle("jurisdiction", "must be a jurisdiction's name, e.g. bergen or nyc")
    commitment, disclosure = _parse_record(top["record"])
    tree = _parse_tree(top["tree"]) if top["tree"] is not None else None
    anchor = parse_anchor(top["anchor"]) if top["anchor"] is not None else None
    if (tree is None) != (anchor is None):
        raise MalformedBundle("anchor" if anchor is None else "tree", "tree and anchor come together or not at all")
    successor = _parse_nested(top["successor"], "successor") if "successor" in top else None
    corrections = tuple(_parse_nested(c, f"corrections[{i}]") for i, c in enumerate(top.get("corrections", ())))
    return ProofBundle(
        disclosure=disclosure, commitment=commitment, tree=tree, anchor=anchor, jurisdiction=jurisdiction,
        successor=successor, corrections=corrections,
    )  # fmt: skip


def _check_format(top: Mapping[str, Any]) -> None:
    """The format names exactly the optional members the bundle has: v2 a successor, v3 corrections."""
    fmt = top["format"]
    if fmt not in (FORMAT, FORMAT_V2, FORMAT_V3):
        raise MalformedBundle("format", f"must be {FORMAT!r}, {FORMAT_V2!r} or {FORMAT_V3!r}")
    if "successor" in top and fmt == FORMAT:
        raise MalformedBundle("successor", f"is a member of {FORMAT_V2!r} and {FORMAT_V3!r} only")
    if fmt == FORMAT_V2 and "successor" not in top:
        raise MalformedBundle("format", f"{FORMAT_V2!r} is a bundle with a successor, and this one has none")
    if "corrections" in top and fmt != FORMAT_V3:
        raise MalformedBundle("corrections", f"is a member of {FORMAT_V3!r} only")
    if fmt == FORMAT_V3:
        given = top.get("corrections")
        if not isinstance(given, list) or not 1 <= len(given) <= MAX_CORRECTIONS:
            raise MalformedBundle("corrections", f"must be a list of 1 to {MAX_CORRECTIONS} bundles")


def _parse_nested(obj: Any, where: str) -> ProofBundle:
    try:
        return parse(obj, nested=where)
    except MalformedBundle as exc:  # name the member as it sits in the outer bundle
        if exc.field.startswith(where):
            raise
        raise MalformedBundle(f"{where}.{exc.field}", exc.message) from None


_FIELD_SETS = {scheme: frozenset(fields_of(scheme)) for scheme in SCHEMES}
_OPENED = {"salt", "value"}


def _parse_record(obj: Any) -> tuple[bytes, Disclosure]:
    record = _object(obj, "record", {"scheme", "commitment", "fields", "redacted"})
    scheme = record["scheme"]
    if scheme not in SCHEMES:  # every scheme whose proofs exist, each with its own fields
        raise MalformedBundle("record.scheme", f"must be one of {', '.join(repr(s) for s in SCHEMES)}")
    fields_here = _FIELD_SETS[scheme]
    commitment = _hex32(record["commitment"], "record.commitment")
    fields = _object(record["fields"], "record.fields", set(), fields_here)
    opened = _opened_at_once(fields)
    if opened is None:  # something is wrong: the first field that is, named
        opened = _opened(fields)
    redacted_obj = _object(record["redacted"], "record.redacted", set(), fields_here)
    redacted = {name: _hex32(h, f"record.redacted.{name}") for name, h in redacted_obj.items()}
    disclosure = Disclosure(opened=opened, redacted=redacted, scheme=scheme)
    try:
        disclosure.check_fields()
    except ValueError as exc:
        raise MalformedBundle("record", str(exc)) from None
    return commitment, disclosure


def _opened_at_once(fields: Mapping[str, Any]) -> dict[str, tuple[bytes, Any]] | None:
    """The disclosed fields' salts and values, or None if any field is not well-formed. A bulk
    verification parses every field of every bundle: the salts are decoded together, and where a
    member is, and the sets a check compares with, are spelled out only by ``_opened``."""
    members = fields.values()
    try:  # a salt and a value each (looked at in C: each a dict, of two members, these two)
        texts, values = [member["salt"] for member in members], [member["value"] for member in members]
    except (TypeError, KeyError, IndexError):
        return None
    if set(map(type, members)) != {dict} or set(map(len, members)) != {2}:
        return None
    salts = hex32_many(texts)
    if salts is None:
        return None
    try:
        for value in values:
            check_domain(value)
    except ValueError:
        return None
    return dict(zip(fields, zip(salts, values, strict=True), strict=True))


def _opened(fields: Mapping[str, Any]) -> dict[str, tuple[bytes, Any]]:
    """The disclosed fields' salts and values, field by field; ``MalformedBundle`` for the first
    member that is wrong, naming it."""
    opened = {}
    for name, member in fields.items():
        where = f"record.fields.{name}"
        member = _object(member, where, _OPENED)
        salt = _hex32(member["salt"], f"{where}.salt")
        try:
            check_domain(member["value"], f"{where}.value")
        except ValueError as exc:
            field, _, message = str(exc).partition(": ")
            raise MalformedBundle(field, message) from None
        opened[name] = (salt, member["value"])
    return opened


def _parse_tree(obj: Any) -> TreeProof:
    t = _object(obj, "tree", {"format", "leafEncoding", "value", "proof", "root"})
    if t["format"] != merkle.FORMAT:
        raise MalformedBundle("tree.format", f"must be {merkle.FORMAT!r}")
    if t["leafEncoding"] != list(merkle.COMMITMENT_ENCODING):
        raise MalformedBundle("tree.leafEncoding", f"must be {list(merkle.COMMITMENT_ENCODING)}")
    value, proof = t["value"], t["proof"]
    if not isinstance(value, list) or len(value) != 1:
        raise MalformedBundle("tree.value", "must be a list holding the commitment")
    if not isinstance(proof, list) or len(proof) > MAX_PROOF_LENGTH:
        _hex32(value[0], "tree.value[0]")  # a bad value is named first, as it comes first
        raise MalformedBundle("tree.proof", f"must be a list of at most {MAX_PROOF_LENGTH} hashes")
    hashes = hex32_many([value[0], *proof, t["root"]])  # the tree's hashes at once; one by one to name one
    if hashes is None:
        _hex32(value[0], "tree.value[0]")
        hashes = [b"", *(_hex32(p, f"tree.proof[{i}]") for i, p in enumerate(proof)), _hex32(t["root"], "tree.root")]
    return TreeProof(tuple(t["leafEncoding"]), tuple(value), tuple(hashes[1:-1]), hashes[-1])


def parse_anchor(obj: Any) -> Anchor:
    a = _object(obj, "anchor", {"chainId", "contract", "batchId", "txHash", "blockNumber"})
    if not isinstance(a["contract"], str) or not is_checksum_address(a["contract"]):
        raise MalformedBundle("anchor.contract", "must be an EIP-55 checksummed address")
    _hex32(a["txHash"], "anchor.txHash")
    return Anchor(
        chain_id=_uint(a["chainId"], "anchor.chainId"),
        contract=a["contract"],
        batch_id=_uint(a["batchId"], "anchor.batchId"),
        tx_hash=a["txHash"],
        block_number=_uint(a["blockNumber"], "anchor.blockNumber"),
    )


# --- verification ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OfflineVerdict:
    commitment: bytes
    leaf: bytes
    root: bytes


def verify_offline(bundle: ProofBundle, *, memo: merkle.PairMemo | None = None) -> OfflineVerdict:
    """Check the math: fields -> commitment -> leaf -> root. Raises ``VerificationFailed``.

    Says nothing about whether the root is on a chain; see ``hybrid_store.verifier.anchor.verify_anchor``.
    ``memo``: inner nodes hashed for earlier bundles (``merkle.process_proof``), for many bundles at once.
    """
    computed = bundle.disclosure.commitment()
    if computed != bundle.commitment:
        raise VerificationFailed(
            "the record's fields do not produce its commitment (a field, salt or hash was altered)",
            expected=to_hex(bundle.commitment),
            computed=to_hex(computed),
        )
    if bundle.tree is None:
        raise VerificationFailed("the record is pending: its batch has not been anchored yet")
    if from_hex32(bundle.tree.value[0]) != bundle.commitment:
        raise VerificationFailed(
            "the Merkle leaf value is not the record's commitment",
            expected=to_hex(bundle.commitment),
            computed=bundle.tree.value[0],
        )
    # the leaf of the value just compared with the commitment (``tree.leaf`` decodes it again)
    leaf = (
        merkle.commitment_leaf(computed)
        if bundle.tree.leaf_encoding == merkle.COMMITMENT_ENCODING
        else bundle.tree.leaf
    )
    root = merkle.process_proof(leaf, bundle.tree.proof, memo)
    if root != bundle.tree.root:
        raise VerificationFailed(
            "the Merkle proof does not lead to the stated root",
            expected=to_hex(bundle.tree.root),
            computed=to_hex(root),
        )
    return OfflineVerdict(commitment=computed, leaf=leaf, root=root)
