""" "Corrected by N", shown rather than said.

A correction does not revoke what it corrects (the original stays a record that was recorded, and
stays VALID); it is a later record whose committed correction link names the original: its
``corrects`` field, or a ``references`` entry of kind ``corrects``, holding the original's
instrument number. So a verifier says a record was corrected only when it is handed the
correction's own bundle and that bundle verifies exactly as the record's did: the math, an anchor
in a contract the same trust root lists, not revoked, at the same depth, and a committed link that
names this record's number. A tag, a flag or an unsigned member the registry wrote proves nothing.

What a single bundle cannot show is that *nothing* corrected the record: a correction the auditor
was not given is simply unseen. Hence "current as far as this bundle shows"; the title abstract is
what proves "nothing newer".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hybrid_store.core import bundle as bundles
from hybrid_store.core.hashing import to_hex
from hybrid_store.core.standing import DELETED
from hybrid_store.core.trust import TrustRoot
from hybrid_store.errors import AnchorPending, ChainUnavailable, VerificationFailed
from hybrid_store.verifier.anchor import anchored
from hybrid_store.verifier.reader import ChainReader

CORRECTS = "corrects"  # the reference kind a correction names what it corrects by


@dataclass(frozen=True)
class Correction:
    number: str  # the correction's instrument number
    commitment: bytes
    block_number: int

    def to_json(self) -> dict[str, Any]:
        return {"number": self.number, "commitment": to_hex(self.commitment), "blockNumber": self.block_number}


def names(evidence: bundles.ProofBundle, number: str) -> bool:
    """Whether the correction's committed link names instrument ``number``."""
    if evidence.disclosed("corrects") == number:
        return True
    references = evidence.disclosed("references")
    return isinstance(references, list) and any(
        isinstance(ref, list) and len(ref) == 4 and ref[0] == CORRECTS and ref[1] == number for ref in references
    )


def link_problem(record: bundles.ProofBundle, evidence: bundles.ProofBundle) -> str:
    """Why ``evidence`` is not, on its face, a correction of ``record`` ("" when it is); its anchor
    is checked separately."""
    number = record.disclosed("instrument_number")
    if number is None:
        return "this record's instrument number is redacted, so no correction can be shown to name it"
    if evidence.commitment == record.commitment:
        return "the correction given is this very record"
    if evidence.disclosed("instrument_number") is None:
        return "the correction's instrument number is redacted"
    if evidence.disclosed("corrects") is None and evidence.disclosed("references") is None:
        return "the correction's link to what it corrects (corrects, references) is redacted"
    if not names(evidence, number):
        named = evidence.disclosed("corrects")
        return (
            f"instrument {evidence.disclosed('instrument_number')}'s committed link names "
            f"{named if named else 'no instrument it corrects'}, not {number}"
        )
    return ""


def show_correction(
    record: bundles.ProofBundle, evidence: bundles.ProofBundle, chain: ChainReader, trust: TrustRoot, depth: int
) -> Correction:
    """``evidence`` verified as a correction of ``record``, else ``VerificationFailed`` saying why not
    (``AnchorPending`` when it is not deep enough yet; ``ChainUnavailable`` passes through: a node
    that did not answer says nothing either way)."""
    problem = link_problem(record, evidence)
    if problem:
        raise VerificationFailed(problem)
    try:
        bundles.verify_offline(evidence)
        on_chain = anchored(evidence, chain, trust, depth=depth)
    except (AnchorPending, ChainUnavailable):
        raise
    except VerificationFailed as exc:
        raise VerificationFailed(f"the correction's bundle does not verify ({exc.reason})") from None
    if on_chain.standing.kind == DELETED:  # a correction the county's system deleted corrects nothing now
        raise VerificationFailed(f"the correction was {on_chain.standing.describe()}")
    return Correction(str(evidence.disclosed("instrument_number")), evidence.commitment, on_chain.block_number)
