"""One verdict for a proof bundle, shared by ``landreg verify``, the auditors' API and the desk.

Statuses: ``valid`` (the math holds and the anchor was checked on chain against the registry's
pinned trust root, at the depth asked for), ``invalid`` (with a one-line reason), ``unchecked``
(the math holds, but nothing says the root is the registry's: no chain or no trust root was
given), ``unavailable`` (the node did not answer: nothing was concluded), and ``pending`` (the
anchor holds, but its block is not yet as deep as asked: verify again later). Only ``valid`` ever
says VALID.

A valid record's standing: ``current`` (as far as the bundle shows: not revoked on the chain, and
no correction was shown), ``corrected`` (a correction's own verified bundle names it: it stays a
record that was recorded), ``superseded`` (a legacy record edited in place, its successor shown),
``deleted_in_legacy`` (the registry's word, which the verdict says). Every one is proven from what
the auditor can check, never taken from a tag the registry wrote.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hybrid_store import strict_json
from hybrid_store.core import bundle as bundles
from hybrid_store.core.hashing import to_hex
from hybrid_store.core.standing import CURRENT, SUPERSEDED
from hybrid_store.core.trust import TrustRoot
from hybrid_store.errors import (
    AnchorPending,
    ChainError,
    ChainUnavailable,
    MalformedBundle,
    VerificationFailed,
)
from hybrid_store.verifier.anchor import DEFAULT_DEPTH, AnchorVerdict, verify_anchor
from hybrid_store.verifier.corrections import Correction, show_correction
from hybrid_store.verifier.disclosed import Disclosed, disclosed_fields
from hybrid_store.verifier.reader import ChainReader, node_at

VALID, INVALID, UNCHECKED, UNAVAILABLE, PENDING = "valid", "invalid", "unchecked", "unavailable", "pending"
CORRECTED = "corrected"
#: what "current" means in one bundle's verdict: nothing newer is proven absent by a single bundle
CURRENT_AS_SHOWN = (
    "current as far as this bundle shows: not revoked on the chain, and no correction was shown "
    "(a correction is proven by its own bundle, `--corrected-by FILE`; the title abstract proves nothing newer exists)"
)


@dataclass(frozen=True)
class Verdict:
    valid: bool
    reason: str  # one line: why not valid, or what was checked
    summary: str = ""
    checked_on_chain: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    unchecked: bool = False  # the math holds, but the anchor was not checked against a trust root
    unavailable: bool = False  # the node did not answer: nothing was concluded about the anchor
    pending: bool = False  # the anchor holds, but is not yet at the depth asked for
    #: a valid record's standing: current (as far as shown), corrected, superseded, deleted_in_legacy
    standing: str = CURRENT
    #: the fields the bundle verified (with their values) and withheld; None when it did not parse
    disclosed: Disclosed | None = None
    corrections: tuple[Correction, ...] = ()  # shown by their own verified bundles
    #: what the verdict does not rest on, and why (a correction given that did not hold)
    warnings: tuple[str, ...] = ()

    @property
    def status(self) -> str:
        if self.valid:
            return VALID
        if self.unchecked:
            return UNCHECKED
        return UNAVAILABLE if self.unavailable else PENDING if self.pending else INVALID

    @property
    def standing_shown(self) -> str:
        """The standing in words, with what it rests on."""
        if not self.valid:
            return ""
        if self.corrections:
            numbers = ", ".join(c.number for c in self.corrections)
            corrected = f"corrected by {numbers} (shown by {'its' if len(self.corrections) == 1 else 'their'} "
            corrected += "verified, anchored bundle naming this record)"
            return corrected if self.standing == CORRECTED else f"{self.standing.replace('_', ' ')}; {corrected}"
        return CURRENT_AS_SHOWN if self.standing == CURRENT else self.standing.replace("_", " ")

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "valid": self.valid,
            "reason": self.reason,
            "summary": self.summary,
            "checkedOnChain": self.checked_on_chain,
            "standing": self.standing,
            "standingShown": self.standing_shown,
            "correctedBy": [c.to_json() for c in self.corrections],
            "fields": self.disclosed.to_json() if self.disclosed is not None else None,
            "warnings": list(self.warnings),
            "details": self.details,
        }


def _describe(bundle: bundles.ProofBundle) -> str:
    number = bundle.disclosed("instrument_number") or "(number redacted)"
    doc_type = bundle.disclosed("doc_type") or "type redacted"
    recorded = bundle.disclosed("recorded_at") or "time redacted"
    return f"instrument {number} ({doc_type}, recorded {recorded})"


NO_TRUST = (
    "no trust root: a bundle is only checked against the registry's published trust root "
    "(pass --trust FILE|URL, obtained from the county, or run `landreg trust export` on the registry)"
)

#: the record's commitment -> decoded bundles the verifier may check as evidence (never believed unchecked)
Lookup = Callable[[bytes], Any]


@dataclass(frozen=True)
class Evidence:
    """What an auditor (or the registry's own service) hands the verifier besides the bundle: the
    newer version's bundle, corrections' bundles, and lookups for either. Each is only evidence:
    the verifier checks it on the chain before it says anything with it."""

    successor: Any = None  # a decoded bundle
    successor_of: Lookup | None = None  # -> a decoded bundle or None
    corrections: Sequence[Any] = ()  # decoded bundles (besides those the bundle carries)
    corrections_of: Lookup | None = None  # -> a list of decoded bundles


def unlisted_scheme(bundle: bundles.ProofBundle, trust: TrustRoot) -> str:
    """Why the bundle's commitment scheme makes it not the registry's ("" when the trust root lists it)."""
    scheme = bundle.disclosure.scheme
    if trust.lists_scheme(scheme):
        return ""
    return (f"commitment scheme {scheme} is not one {trust.describe()} lists: this registry did not commit records "
            "that way, so the bundle is not its (ask the registry for its current trust root if it says otherwise)")  # fmt: skip


def verify_document(
    document: Any, rpc_url: str | None = None, *, chain: ChainReader | None = None, trust: TrustRoot | None = None,
    successor: Any = None, successor_of: Lookup | None = None, corrections: Sequence[Any] = (),
    corrections_of: Lookup | None = None, depth: int = DEFAULT_DEPTH,
) -> Verdict:  # fmt: skip
    """Verify a decoded bundle; with a chain (``rpc_url`` or a ``ChainReader``) and ``trust``, also
    its anchor, pinned to the registry's trust root, at ``depth`` confirmations. Without both it is
    at best ``unchecked``. A record revoked as superseded needs the newer version's bundle to be
    reported SUPERSEDED: the bundle's own ``successor``, else ``successor`` (a decoded bundle the
    auditor has), else what ``successor_of`` (the record's commitment -> a decoded bundle or None)
    finds. A record is reported corrected only by a correction's bundle (``corrections``, or what
    ``corrections_of`` finds) that verifies the same way and names it."""
    try:
        bundle = bundles.parse(document)
        given = bundles.parse(successor) if successor is not None else None
    except MalformedBundle as exc:
        return Verdict(False, str(exc), details={"field": exc.field})
    what, shown = _describe(bundle), disclosed_fields(bundle)
    try:
        offline = bundles.verify_offline(bundle)
    except VerificationFailed as exc:
        return Verdict(False, str(exc), summary=what, details={"expected": exc.expected, "computed": exc.computed},
                       disclosed=shown)  # fmt: skip
    details: dict[str, Any] = {"commitment": to_hex(offline.commitment), "leaf": to_hex(offline.leaf),
                               "root": to_hex(offline.root)}  # fmt: skip
    assert bundle.anchor is not None
    a = bundle.anchor
    details["anchor"] = {"chainId": a.chain_id, "contract": a.contract, "batchId": a.batch_id,
                         "txHash": a.tx_hash, "blockNumber": a.block_number}  # fmt: skip
    unlisted = unlisted_scheme(bundle, trust) if trust is not None else ""
    if unlisted:
        return Verdict(False, unlisted, summary=what, details=details, disclosed=shown)
    if trust is None or (rpc_url is None and chain is None):
        missing = NO_TRUST if trust is None else "the anchor was not checked on chain (add --rpc URL)"
        return Verdict(
            False,
            f"UNCHECKED: the record's fields, commitment and Merkle proof agree, but {missing}",
            summary=f"{what}: commitment and Merkle proof agree with root {to_hex(offline.root)}; "
            f"the anchor (batch {a.batch_id} of {a.contract} on chain {a.chain_id}) was not checked",
            details=details, unchecked=True, disclosed=shown,
        )  # fmt: skip
    reader = chain if chain is not None else node_at(str(rpc_url))
    evidence = Evidence(successor=given, successor_of=successor_of, corrections=corrections,
                        corrections_of=corrections_of)  # fmt: skip
    return _on_chain(bundle, reader, trust, evidence, depth, what, details, shown)


def _on_chain(
    bundle: bundles.ProofBundle, chain: ChainReader, trust: TrustRoot, evidence: Evidence, depth: int, what: str,
    details: dict[str, Any], shown: Disclosed,
) -> Verdict:  # fmt: skip
    """The verdict once the anchor is checked on ``chain``; then what corrections were shown."""
    try:
        chain.ensure_reachable()
        on_chain = verify_anchor(bundle, chain, trust, successor_of=_successors(evidence), depth=depth)
    except VerificationFailed as exc:
        return Verdict(False, str(exc), summary=what, checked_on_chain=True, details=details, disclosed=shown)
    except AnchorPending as exc:
        details.update(confirmations=exc.confirmations, depthRequired=exc.depth)
        return Verdict(False, f"PENDING: the record's proof verifies and its anchor holds, but {exc}", summary=what,
                       checked_on_chain=True, details=details, pending=True, disclosed=shown)  # fmt: skip
    except ChainUnavailable as exc:
        return Verdict(False, f"UNAVAILABLE: the node did not answer, so the anchor was not checked: {exc}",
                       summary=what, details=details, unavailable=True, disclosed=shown)  # fmt: skip
    except ChainError as exc:
        return Verdict(False, f"cannot check the anchor: {exc}", summary=what, details=details, disclosed=shown)
    try:
        corrections, warnings = _corrections(bundle, chain, trust, evidence, depth)
    except ChainUnavailable as exc:
        return Verdict(False, f"UNAVAILABLE: the node did not answer while a correction was checked: {exc}",
                       summary=what, details=details, unavailable=True, disclosed=shown)  # fmt: skip
    return _valid(bundle, on_chain, trust, what, details, shown, corrections, warnings, depth)


def _corrections(
    bundle: bundles.ProofBundle, chain: ChainReader, trust: TrustRoot, evidence: Evidence, depth: int
) -> tuple[tuple[Correction, ...], tuple[str, ...]]:
    """The corrections shown (each verified on the chain), and why each other one given was not
    believed. A correction that does not hold is no evidence about the record either way, so it
    leaves the record VALID and is named in a warning (an attacker who attaches junk to a good
    record can make it look neither invalid nor corrected)."""
    given: list[tuple[str, Any]] = [(f"correction {i} carried in the bundle", c)
                                    for i, c in enumerate(bundle.corrections, 1)]  # fmt: skip
    given += [(f"correction {i} given", c) for i, c in enumerate(evidence.corrections, 1)]
    if evidence.corrections_of is not None:
        given += [(f"correction {i} the registry found", c)
                  for i, c in enumerate(evidence.corrections_of(bundle.commitment) or (), 1)]  # fmt: skip
    if given and bundle.disclosed("instrument_number") is None:  # nothing could name it: say so once
        return (), (f"{len(given)} correction{'' if len(given) == 1 else 's'} could not be checked: a correction "
                    "names what it corrects by its instrument number, and this bundle withholds the record's",)  # fmt: skip
    shown: dict[bytes, Correction] = {}
    warnings = []
    for label, document in given:
        try:
            candidate = document if isinstance(document, bundles.ProofBundle) else bundles.parse(document)
            found = show_correction(bundle, candidate, chain, trust, depth)
        except MalformedBundle as exc:
            warnings.append(f"{label} is not a proof bundle ({exc}): not taken as a correction")
        except AnchorPending as exc:
            warnings.append(f"{label} is not yet deep enough to be taken as a correction: {exc}")
        except VerificationFailed as exc:
            warnings.append(f"{label} does not show that this record was corrected: {exc.reason}")
        else:
            shown.setdefault(found.commitment, found)
    return tuple(sorted(shown.values(), key=lambda c: (c.block_number, c.number))), tuple(warnings)


def _valid(
    bundle: bundles.ProofBundle, on_chain: AnchorVerdict, trust: TrustRoot, what: str, details: dict[str, Any],
    shown: Disclosed, corrections: tuple[Correction, ...], warnings: tuple[str, ...], depth: int,
) -> Verdict:  # fmt: skip
    a = on_chain
    details["confirmations"] = a.confirmations
    details["depthRequired"] = depth
    if a.moved:
        details["moved"] = a.moved
    details["anchorTime"] = a.block_time
    details["trustRoot"] = {"version": trust.version, "registry": trust.registry_name,
                            "registryVersion": a.registry_version}  # fmt: skip
    plural = "" if a.confirmations == 1 else "s"
    standing = a.standing
    kind = CORRECTED if standing.current and corrections else standing.kind
    if standing.current:
        reason = f"the record's proof verifies and its root is anchored in the registry of {trust.registry_name} and not revoked"
        state = "not revoked"
    else:  # still a valid record of the registry, but never to be taken as the current one
        details["standing"] = {"kind": standing.kind, "atBlock": standing.at_block,
                               "successorCommitmentPrefix": to_hex(standing.successor) if standing.successor else None}  # fmt: skip
        also = ""
        if a.successor is not None:  # verify_anchor says superseded only with the successor shown
            commitment, number = a.successor
            details["standing"].update(successorCommitment=to_hex(commitment), successorNumber=number)
            also = (f" (instrument {number or '(number redacted)'}, whose anchored bundle verifies and whose history "
                    "link names this record on each of its parcels)")  # fmt: skip
        reason = (
            f"VALID, {'SUPERSEDED' if standing.kind == SUPERSEDED else 'NOT CURRENT'}: the record's proof "
            f"verifies and is anchored in the registry of {trust.registry_name}, but it was {standing.describe()}{also}"
        )
        state = f"NOT CURRENT: {standing.describe()}"
    if corrections:
        numbers = ", ".join(c.number for c in corrections)
        reason += (
            f"; it was corrected by {numbers}, whose anchored bundle names it (it stays a record that was recorded)"
        )
        state += f"; corrected by {numbers}"
    return Verdict(
        True,
        reason,
        summary=f"{what} is anchored as batch {a.batch_id} of {a.contract} on chain {a.chain_id} "
        f"(tx {a.tx_hash}, block {a.block_number}, {a.confirmations} confirmation{plural}); "
        f"{state}; pinned to trust root v{trust.version} of {trust.registry_name}"
        + (f" (note: {a.moved})" if a.moved else ""),
        checked_on_chain=True, details=details, standing=kind, disclosed=shown, corrections=corrections,
        warnings=warnings,
    )  # fmt: skip


def _successors(evidence: Evidence) -> Callable[[bytes], bundles.ProofBundle | None]:
    """The ``successor_of`` of ``verify_anchor``: the bundle the auditor gave, else the lookup's
    (a lookup's document that does not parse is no evidence)."""
    given, lookup = evidence.successor, evidence.successor_of

    def successor_of(commitment: bytes) -> bundles.ProofBundle | None:
        if given is not None or lookup is None:
            return given
        found = lookup(commitment)
        try:
            return bundles.parse(found) if found is not None else None
        except MalformedBundle:
            return None

    return successor_of


def _read(path: Path) -> Any:
    return strict_json.loads(strict_json.read_file(path, max_bytes=bundles.MAX_BUNDLE_BYTES),
                             max_bytes=bundles.MAX_BUNDLE_BYTES)  # fmt: skip


def verify_file(
    path: Path, rpc_url: str | None = None, *, trust: TrustRoot | None = None, successor: Path | None = None,
    corrected_by: Sequence[Path] = (), depth: int = DEFAULT_DEPTH, chain: ChainReader | None = None,
) -> Verdict:  # fmt: skip
    """``verify_document`` of the bundle in ``path`` (and the newer version's and corrections'
    bundles in theirs), each read within the bundle's bounds."""
    try:
        raw = strict_json.read_file(path, max_bytes=bundles.MAX_BUNDLE_BYTES)
        newer = _read(successor) if successor is not None else None
        corrections = [_read(p) for p in corrected_by]
    except OSError as exc:
        return Verdict(False, f"cannot read {exc.filename or path}: {exc.strerror}")
    except strict_json.InvalidJSON as exc:
        return Verdict(False, f"malformed bundle: (bundle): {exc}")
    try:  # bounded in size and depth before any parser runs
        document = strict_json.loads(raw, max_bytes=bundles.MAX_BUNDLE_BYTES)
    except strict_json.InvalidJSON as exc:
        return Verdict(False, f"malformed bundle: (bundle): {exc}")
    return verify_document(document, rpc_url, chain=chain, trust=trust, successor=newer, corrections=corrections,
                           depth=depth)  # fmt: skip


def verify_bytes(
    raw: bytes, rpc_url: str | None = None, *, chain: ChainReader | None = None, trust: TrustRoot | None = None,
    successor: bytes | None = None, corrections: Sequence[bytes] = (), corrections_of: Lookup | None = None,
    depth: int = DEFAULT_DEPTH,
) -> Verdict:  # fmt: skip
    try:  # bounded in size and depth before any parser runs
        document = strict_json.loads(raw, max_bytes=bundles.MAX_BUNDLE_BYTES)
    except strict_json.InvalidJSON as exc:
        return Verdict(False, f"malformed bundle: (bundle): {exc}")
    try:
        newer = strict_json.loads(successor, max_bytes=bundles.MAX_BUNDLE_BYTES) if successor is not None else None
        given = [strict_json.loads(c, max_bytes=bundles.MAX_BUNDLE_BYTES) for c in corrections]
    except strict_json.InvalidJSON as exc:
        return Verdict(False, f"malformed bundle: (the newer version's or a correction's bundle): {exc}")
    return verify_document(document, rpc_url, chain=chain, trust=trust, successor=newer, corrections=given,
                           corrections_of=corrections_of, depth=depth)  # fmt: skip
