"""Title abstracts (``landreg-title-abstract/v1``) and head proofs (``landreg-title-head/v1``):
whether a parcel's history is complete and current, and the title it shows. Spec: docs/title-abstract.md.

An abstract carries every record of one parcel's history, oldest first, each as a proof bundle, and
the **head**: the proof that the newest of them is the parcel's head in the title state a named
batch anchored (docs/title-state.md). Verdicts:

* ``complete``       every record from the first to the head, nothing omitted, and the head is
                     current in the newest title state anchored on the registry's contract;
* ``complete_as_of`` complete up to the abstract's batch M, but newer batches were anchored since
                     and no head proof at the newest was given to show the head did not move;
* ``stale``          complete up to batch M, but the parcel's head moved by the newest batch N;
* ``pending``        the proofs hold, but a batch is not yet at the confirmation depth asked for;
* ``invalid``        naming the gap, the record or the proof that fails;
* ``unchecked``      the math holds, but no chain or trust root was given;
* ``unavailable``    the node did not answer: nothing was concluded.

Nothing of the registry's is taken on its word: every record's anchor, the head's anchor and the
newest batch are read from the contract the trust root lists, on a chain the auditor chooses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from hybrid_store import strict_json
from hybrid_store.core import abstract as title_abstract
from hybrid_store.core import bundle as bundles
from hybrid_store.core import merkle
from hybrid_store.core import title_state as ts
from hybrid_store.core.commitment import fields_of
from hybrid_store.core.hashing import from_hex32, is_hex32, to_hex
from hybrid_store.core.standing import CURRENT, SUPERSEDED, Standing, supersession_problem
from hybrid_store.core.trust import TrustRoot
from hybrid_store.errors import AnchorPending, ChainError, ChainUnavailable, MalformedBundle, VerificationFailed
from hybrid_store.verifier.anchor import DEFAULT_DEPTH, AnchorVerdict, anchored_batch
from hybrid_store.verifier.reader import ChainReader, node_at

FORMAT = "landreg-title-abstract/v1"
HEAD_FORMAT = "landreg-title-head/v1"
#: a parcel's history runs to hundreds of records at most; more is padding, not a history
MAX_RECORDS = 10_000
MAX_ABSTRACT_BYTES = 64_000_000
MAX_HEAD_BYTES = 100_000

COMPLETE, COMPLETE_AS_OF, STALE = "complete", "complete_as_of", "stale"
PENDING, INVALID, UNCHECKED, UNAVAILABLE = "pending", "invalid", "unchecked", "unavailable"


class MalformedAbstract(MalformedBundle):
    """An abstract or a head proof that is not well formed (names the member)."""


def is_abstract(document: Any) -> bool:
    """Whether a decoded document claims to be an abstract (the API and the desk take either)."""
    return isinstance(document, dict) and document.get("format") == FORMAT


# --- parsing ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeadDoc:
    """A parcel's head (or its absence) in the title state a batch anchored, with its proofs."""

    parcel_key: str
    state_root: bytes
    proof: ts.HeadProof
    marker_proof: tuple[bytes, ...]
    anchor: bundles.Anchor
    batch_root: bytes

    def head(self) -> ts.Head | None:
        """The head the proofs show (offline: the marker's inclusion in the batch root, the head
        proof to the state root); ``VerificationFailed`` when either fails."""
        marker = merkle.commitment_leaf(ts.state_marker(self.state_root))
        if merkle.process_proof(marker, self.marker_proof) != self.batch_root:
            raise VerificationFailed(
                f"the title state {to_hex(self.state_root)} is not in batch {self.anchor.batch_id}'s tree: its marker's "
                "proof does not lead to the batch root"
            )
        try:
            return ts.verify_head(self.state_root, self.parcel_key, self.proof)
        except ts.TitleStateError as exc:
            raise VerificationFailed(f"the head proof of parcel {self.parcel_key} does not hold: {exc}") from None

    def to_json(self) -> dict[str, Any]:
        a = self.anchor
        return {
            "format": HEAD_FORMAT, "parcelKey": self.parcel_key, "stateRoot": to_hex(self.state_root),
            "headProof": self.proof.to_json(), "markerProof": [to_hex(p) for p in self.marker_proof],
            "batchRoot": to_hex(self.batch_root),
            "anchor": {"chainId": a.chain_id, "contract": a.contract, "batchId": a.batch_id, "txHash": a.tx_hash,
                       "blockNumber": a.block_number},
        }  # fmt: skip


@dataclass(frozen=True)
class Abstract:
    jurisdiction: str
    parcel_key: str
    records: tuple[bundles.ProofBundle, ...]
    head: HeadDoc

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "jurisdiction": self.jurisdiction, "parcelKey": self.parcel_key,
                "records": [r.to_json() for r in self.records], "head": self.head.to_json()}  # fmt: skip


def _members(obj: Any, where: str, required: set[str]) -> Mapping[str, Any]:
    if not isinstance(obj, dict):
        raise MalformedAbstract(where, "must be a JSON object")
    for key in obj:
        if key not in required:
            raise MalformedAbstract(f"{where}.{key}", "is not a member of this format")
    for key in sorted(required - set(obj)):
        raise MalformedAbstract(f"{where}.{key}", "is missing")
    return obj


def _hex32(value: Any, where: str) -> bytes:
    if not is_hex32(value):
        raise MalformedAbstract(where, "must be 0x followed by 64 lowercase hex digits")
    return from_hex32(value)


def _key(value: Any, where: str) -> str:
    try:
        ts.path_of(value)  # text, NFC, 1 to 256 bytes
    except (ts.TitleStateError, AttributeError) as exc:
        raise MalformedAbstract(where, f"must be a parcel key ({exc})") from None
    return str(value)


def parse_head(obj: Any, where: str = "head") -> HeadDoc:
    top = _members(obj, where, {"format", "parcelKey", "stateRoot", "headProof", "markerProof", "batchRoot", "anchor"})
    if top["format"] != HEAD_FORMAT:
        raise MalformedAbstract(f"{where}.format", f"must be {HEAD_FORMAT!r}")
    try:
        proof = ts.proof_from_json(top["headProof"])
    except ts.TitleStateError as exc:
        raise MalformedAbstract(f"{where}.headProof", str(exc)) from None
    marker_proof = top["markerProof"]
    if not isinstance(marker_proof, list) or len(marker_proof) > bundles.MAX_PROOF_LENGTH:
        raise MalformedAbstract(f"{where}.markerProof", f"must be a list of at most {bundles.MAX_PROOF_LENGTH} hashes")
    try:
        anchor = bundles.parse_anchor(top["anchor"])
    except MalformedBundle as exc:
        raise MalformedAbstract(f"{where}.{exc.field}", exc.message) from None
    return HeadDoc(
        parcel_key=_key(top["parcelKey"], f"{where}.parcelKey"), state_root=_hex32(top["stateRoot"], f"{where}.stateRoot"),
        proof=proof, marker_proof=tuple(_hex32(p, f"{where}.markerProof[{i}]") for i, p in enumerate(marker_proof)),
        anchor=anchor, batch_root=_hex32(top["batchRoot"], f"{where}.batchRoot"),
    )  # fmt: skip


def parse(obj: Any) -> Abstract:
    """Parse a decoded abstract, or raise ``MalformedAbstract`` naming the first bad member."""
    top = _members(obj, "(abstract)", {"format", "jurisdiction", "parcelKey", "records", "head"})
    if top["format"] != FORMAT:
        raise MalformedAbstract("format", f"must be {FORMAT!r}")
    jurisdiction = top["jurisdiction"]
    if not isinstance(jurisdiction, str) or not bundles.JURISDICTION_RE.fullmatch(jurisdiction):
        raise MalformedAbstract("jurisdiction", "must be a jurisdiction's name, e.g. bergen or nyc")
    records = top["records"]
    if not isinstance(records, list) or len(records) > MAX_RECORDS:
        raise MalformedAbstract("records", f"must be a list of at most {MAX_RECORDS} proof bundles")
    parsed = []
    for i, record in enumerate(records):
        try:
            parsed.append(bundles.parse(record, nested=f"records[{i}]"))
        except MalformedBundle as exc:
            field_name = exc.field if exc.field.startswith("records[") else f"records[{i}].{exc.field}"
            raise MalformedAbstract(field_name, exc.message) from None
    key = _key(top["parcelKey"], "parcelKey")
    head = parse_head(top["head"])
    if head.parcel_key != key:
        raise MalformedAbstract("head.parcelKey", f"must be the abstract's parcel key {key!r}")
    return Abstract(jurisdiction, key, tuple(parsed), head)


# --- verdicts --------------------------------------------------------------------------------------------

EXIT = {COMPLETE: 0, INVALID: 1, UNCHECKED: 3, UNAVAILABLE: 4, PENDING: 5, STALE: 6, COMPLETE_AS_OF: 7}


@dataclass(frozen=True)
class AbstractVerdict:
    status: str
    reason: str
    summary: str = ""
    parcel_key: str = ""
    checked_on_chain: bool = False
    #: the title derived from the records (None until the history is shown complete)
    title: title_abstract.Title | None = None
    records: tuple[dict[str, Any], ...] = ()
    warnings: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        """Complete as far as the chain shows (current, as of a batch, or moved on since)."""
        return self.status in (COMPLETE, COMPLETE_AS_OF, STALE)

    @property
    def label(self) -> str:
        if self.status == COMPLETE_AS_OF:
            return f"COMPLETE AS OF BATCH {self.details.get('headBatch')}"
        return self.status.upper()

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status, "valid": self.valid, "reason": self.reason, "summary": self.summary,
            "checkedOnChain": self.checked_on_chain, "standing": "", "standingShown": "", "correctedBy": [],
            "fields": None, "warnings": list(self.warnings), "details": self.details,
            "abstract": {"parcelKey": self.parcel_key, "label": self.label, "records": list(self.records),
                         "title": self.title.to_json() if self.title is not None else None,
                         "limits": list(title_abstract.LIMITS)},
        }  # fmt: skip


def _fields(bundle: bundles.ProofBundle) -> tuple[dict[str, Any], set[str]]:
    d = bundle.disclosure
    return {name: value for name, (_, value) in d.opened.items()}, set(d.redacted)


def _entries(parsed: Abstract) -> tuple[list[title_abstract.Entry], str]:
    entries = []
    for i, bundle in enumerate(parsed.records):
        fields, withheld = _fields(bundle)
        problem = title_abstract.entry_problem(bundle.disclosure.scheme, fields, withheld)
        if problem:
            number = fields.get("instrument_number")
            return [], f"record {i + 1}{f' ({number})' if isinstance(number, str) else ''} {problem}"
        entries.append(title_abstract.make_entry(bundle.disclosure.scheme, bundle.commitment, fields))
    return entries, ""


def _record_line(bundle: bundles.ProofBundle, standing: Standing | None = None) -> dict[str, Any]:
    a = bundle.anchor
    return {
        "number": bundle.disclosed("instrument_number"), "docType": bundle.disclosed("doc_type"),
        "recordedAt": bundle.disclosed("recorded_at"), "commitment": to_hex(bundle.commitment),
        "grantors": bundle.disclosed("grantors"), "grantees": bundle.disclosed("grantees"),
        "batch": a.batch_id if a is not None else None,
        "standing": standing.kind if standing is not None else None,
        "withheld": sorted(n for n in bundle.disclosure.redacted if n in fields_of(bundle.disclosure.scheme)),
    }  # fmt: skip


def verify_offline(parsed: Abstract) -> tuple[ts.Head | None, list[title_abstract.Entry]]:
    """The math of an abstract: every record's fields -> commitment -> Merkle proof to its stated
    root, the head's marker in its batch root and its head proof to the state root, and the history
    complete from the first record to that head. ``VerificationFailed`` names what fails."""
    for i, bundle in enumerate(parsed.records):
        try:
            bundles.verify_offline(bundle)
        except VerificationFailed as exc:
            number = bundle.disclosed("instrument_number") or "number withheld"
            raise VerificationFailed(f"record {i + 1} ({number}): {exc.reason}", expected=exc.expected,
                                     computed=exc.computed) from None  # fmt: skip
        if bundle.jurisdiction not in (None, parsed.jurisdiction):
            raise VerificationFailed(f"record {i + 1} is a record of {bundle.jurisdiction!r}, the abstract of "
                                     f"{parsed.jurisdiction!r}")  # fmt: skip
    head = parsed.head.head()
    entries, problem = _entries(parsed)
    if problem:
        raise VerificationFailed(problem)
    facts = title_abstract.HeadFacts(head.commitment, head.history_length) if head is not None else None
    problem = title_abstract.history_problem(parsed.parcel_key, entries, facts, f"batch {parsed.head.anchor.batch_id}")
    if problem:
        raise VerificationFailed(problem)
    return head, entries


#: the head of a parcel in the newest title state, from any source: parcel key -> a decoded head document
HeadSource = Callable[[str], Any]


def verify_document(
    document: Any, rpc_url: str | None = None, *, chain: ChainReader | None = None, trust: TrustRoot | None = None,
    newest: Any = None, newest_of: HeadSource | None = None, depth: int = DEFAULT_DEPTH,
) -> AbstractVerdict:  # fmt: skip
    """The verdict on a decoded abstract. ``newest``: a decoded head document of the parcel at the
    newest anchored batch (else what ``newest_of`` finds), needed only when batches were anchored
    after the abstract's: it is checked on the chain like the abstract's own head."""
    try:
        parsed = parse(document)
    except MalformedBundle as exc:
        return AbstractVerdict(INVALID, f"malformed abstract: {exc}", details={"field": exc.field})
    key = parsed.parcel_key
    lines = tuple(_record_line(b) for b in parsed.records)
    try:
        head, entries = verify_offline(parsed)
    except VerificationFailed as exc:
        return AbstractVerdict(INVALID, exc.reason, parcel_key=key, records=lines)
    batch = parsed.head.anchor.batch_id
    details: dict[str, Any] = {"headBatch": batch, "historyLength": len(entries),
                               "stateRoot": to_hex(parsed.head.state_root)}  # fmt: skip
    if trust is not None and trust.jurisdiction != parsed.jurisdiction:
        return AbstractVerdict(INVALID, f"the abstract reads its parcels as {parsed.jurisdiction!r} does, but "
                               f"{trust.describe()} is a registry of {trust.jurisdiction!r}", parcel_key=key,
                               records=lines)  # fmt: skip
    if trust is None or (rpc_url is None and chain is None):
        from hybrid_store.verifier.verdicts import NO_TRUST

        missing = NO_TRUST if trust is None else "the anchors were not checked on chain (add --rpc URL)"
        return AbstractVerdict(
            UNCHECKED, f"UNCHECKED: the records, their history links and the head proof agree, but {missing}",
            summary=_summary(key, entries, batch), parcel_key=key, records=lines,
            title=title_abstract.derive(key, entries), details=details,
        )  # fmt: skip
    reader = chain if chain is not None else node_at(str(rpc_url))
    try:
        reader.ensure_reachable()
        return _on_chain(parsed, entries, head, reader, trust, newest, newest_of, depth, details)
    except ChainUnavailable as exc:
        return AbstractVerdict(UNAVAILABLE, f"UNAVAILABLE: the node did not answer, so the anchors were not "
                               f"checked: {exc}", parcel_key=key, records=lines, details=details)  # fmt: skip
    except AnchorPending as exc:
        return AbstractVerdict(PENDING, f"PENDING: the proofs hold, but {exc}", parcel_key=key,
                               records=lines, details=details | {"confirmations": exc.confirmations,
                                                                 "depthRequired": exc.depth})  # fmt: skip
    except VerificationFailed as exc:
        return AbstractVerdict(INVALID, exc.reason, parcel_key=key, records=lines, checked_on_chain=True,
                               details=details)  # fmt: skip
    except ChainError as exc:
        return AbstractVerdict(INVALID, f"cannot check the anchors: {exc}", parcel_key=key, records=lines,
                               details=details)  # fmt: skip


def _summary(key: str, entries: Sequence[title_abstract.Entry], batch: int) -> str:
    n = len(entries)
    if not n:
        return f"parcel {key} has no record in this registry in the title state of batch {batch}"
    return (f"parcel {key}: {n} record{'s' if n != 1 else ''}, {entries[0].number} to {entries[-1].number}, the "
            f"head in the title state of batch {batch}")  # fmt: skip


class _Batches:
    """Each batch checked on the chain once, however many of the abstract's records it holds."""

    def __init__(self, chain: ChainReader, trust: TrustRoot, depth: int) -> None:
        self.chain, self.trust, self.depth = chain, trust, depth
        self.seen: dict[tuple[str, int, str, bytes], tuple[AnchorVerdict, Callable[[bytes], Standing]]] = {}

    def check(self, anchor: bundles.Anchor, root: bytes) -> tuple[AnchorVerdict, Callable[[bytes], Standing]]:
        key = (anchor.contract.lower(), anchor.batch_id, anchor.tx_hash, root)
        if key not in self.seen:
            self.seen[key] = anchored_batch(anchor, root, self.chain, self.trust, depth=self.depth)
        return self.seen[key]


def _on_chain(
    parsed: Abstract, entries: list[title_abstract.Entry], head: ts.Head | None, chain: ChainReader, trust: TrustRoot,
    newest: Any, newest_of: HeadSource | None, depth: int, details: dict[str, Any],
) -> AbstractVerdict:  # fmt: skip
    key = parsed.parcel_key
    batches = _Batches(chain, trust, depth)
    standings: list[Standing] = []
    for i, bundle in enumerate(parsed.records):
        assert bundle.anchor is not None and bundle.tree is not None
        try:
            _, standing_of_leaf = batches.check(bundle.anchor, bundle.tree.root)
            standings.append(standing_of_leaf(bundle.tree.leaf))
        except VerificationFailed as exc:
            raise VerificationFailed(f"record {i + 1} ({entries[i].number}): {exc.reason}") from None
    for i, standing in enumerate(standings):
        if standing.kind == SUPERSEDED:  # the successor must be the next version, in this very history
            nxt = parsed.records[i + 1] if i + 1 < len(parsed.records) else None
            problem = "no newer version follows it in the abstract" if nxt is None else supersession_problem(
                parsed.records[i].commitment, list(entries[i].parcels), standing.successor or b"", nxt.commitment,
                nxt.disclosed("prev"))  # fmt: skip
            if problem:
                raise VerificationFailed(
                    f"record {i + 1} ({entries[i].number}) was revoked as superseded, but {problem}"
                )
    lines = tuple(_record_line(b, s) for b, s in zip(parsed.records, standings, strict=True))
    head_verdict, marker_standing = batches.check(parsed.head.anchor, parsed.head.batch_root)
    if marker_standing(merkle.commitment_leaf(ts.state_marker(parsed.head.state_root))).kind != CURRENT:
        raise VerificationFailed(
            "the title state's marker leaf was revoked on the chain: the state is not the registry's"
        )
    entries = [replace(e, standing=st.kind) for e, st in zip(entries, standings, strict=True)]
    title = title_abstract.derive(key, entries)
    batch = parsed.head.anchor.batch_id
    details |= {"headAnchor": {"contract": head_verdict.contract, "batchId": batch, "txHash": head_verdict.tx_hash,
                               "blockNumber": head_verdict.block_number, "confirmations": head_verdict.confirmations},
                "trustRoot": {"version": trust.version, "registry": trust.registry_name}}  # fmt: skip
    summary = _summary(key, entries, batch)
    common: dict[str, Any] = {"parcel_key": key, "records": lines, "title": title, "checked_on_chain": True}
    current = _current_deployment(trust)
    count = chain.at(current).batch_count()
    newest_batch = count - 1
    details |= {"newestBatch": newest_batch, "newestContract": current}
    if current.lower() == parsed.head.anchor.contract.lower() and batch == newest_batch:
        return AbstractVerdict(COMPLETE, f"COMPLETE: every record of parcel {key} from the first to the head, and the "
                               f"head is current in the newest title state (batch {batch}) of {trust.registry_name}",
                               summary=summary, details=details, **common)  # fmt: skip
    warnings: list[str] = []
    fresh = newest if newest is not None else newest_of(key) if newest_of is not None else None
    moved = _newest_head(fresh, key, current, newest_batch, batches, warnings)
    if moved is None:
        same = current.lower() == parsed.head.anchor.contract.lower()
        since = newest_batch - batch if same else 0
        anchored_since = (f"{since} batch{'es were' if since != 1 else ' was'} anchored since" if same
                          else "the registry has anchored to a newer contract since")  # fmt: skip
        return AbstractVerdict(
            COMPLETE_AS_OF, f"COMPLETE AS OF BATCH {batch}: every record of parcel {key} from the first to the head in "
            f"the title state of batch {batch}; {anchored_since} (the newest is batch {newest_batch}), and no head "
            "proof at the newest was given to show the head did not move: fetch the parcel's head from the registry "
            "(`--head`), or a fresh abstract",
            summary=summary, details=details, warnings=tuple(warnings), **common,
        )  # fmt: skip
    now, length = moved
    if head is not None and now is not None and now.commitment == head.commitment:
        return AbstractVerdict(COMPLETE, f"COMPLETE: every record of parcel {key} from the first to the head, and the "
                               f"head is still the head in the newest title state (batch {newest_batch})",
                               summary=summary, details=details, warnings=tuple(warnings), **common)  # fmt: skip
    was = head.history_length if head is not None else 0
    return AbstractVerdict(
        STALE, f"STALE: the parcel's head moved after the abstract's batch {batch}: in the newest title state (batch "
        f"{newest_batch}) its history holds {length} record{'s' if length != 1 else ''}, the abstract's {was}; ask for "
        "a fresh abstract", summary=summary, details=details, warnings=tuple(warnings), **common,
    )  # fmt: skip


def _current_deployment(trust: TrustRoot) -> str:
    """The contract the registry anchors to now: the trust root's last deployment still open."""
    open_ = [d for d in trust.deployments if d.until_block is None]
    if not open_:
        raise VerificationFailed(f"{trust.describe()} lists no contract the registry anchors to now")
    return open_[-1].contract


def _newest_head(
    fresh: Any, key: str, contract: str, newest_batch: int, batches: _Batches, warnings: list[str]
) -> tuple[ts.Head | None, int] | None:
    """The parcel's head in the newest title state, from a head document (None: none given, or it
    does not show the newest; a warning says why)."""
    if fresh is None:
        return None
    try:
        doc = parse_head(fresh, "newest head")
        if doc.parcel_key != key:
            raise VerificationFailed(f"it is the head of parcel {doc.parcel_key}, not {key}")
        if doc.anchor.contract.lower() != contract.lower() or doc.anchor.batch_id != newest_batch:
            raise VerificationFailed(f"it proves the head at batch {doc.anchor.batch_id} of {doc.anchor.contract}, not "
                                     f"at the newest batch {newest_batch} of {contract}")  # fmt: skip
        now = doc.head()
        _, standing = batches.check(doc.anchor, doc.batch_root)
        if standing(merkle.commitment_leaf(ts.state_marker(doc.state_root))).kind != CURRENT:
            raise VerificationFailed("its title state's marker leaf was revoked")
    except MalformedBundle as exc:
        warnings.append(f"the newest head given is not a head proof ({exc}): not taken as evidence")
        return None
    except VerificationFailed as exc:
        warnings.append(f"the newest head given does not hold: {exc.reason}")
        return None
    except AnchorPending as exc:
        warnings.append(f"the newest head given is not yet deep enough: {exc}")
        return None
    return now, now.history_length if now is not None else 0


def verify_bytes(raw: bytes, rpc_url: str | None = None, **kw: Any) -> AbstractVerdict:
    try:
        document = strict_json.loads(raw, max_bytes=MAX_ABSTRACT_BYTES)
    except strict_json.InvalidJSON as exc:
        return AbstractVerdict(INVALID, f"malformed abstract: {exc}")
    return verify_document(document, rpc_url, **kw)
