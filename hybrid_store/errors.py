"""Typed errors. One base class; each subclass also inherits the matching builtin so callers that
only know ``ValueError`` still catch it. Translated to HTTP status codes at the service edge only."""

from __future__ import annotations

from dataclasses import dataclass


class LandregError(Exception):
    """Base of every error landreg raises on purpose."""

    #: one line that tells the user what to do next (shown by the CLI and the API)
    hint: str = ""


@dataclass(frozen=True)
class FieldError:
    """One broken rule on one field. ``field`` is a dotted path such as ``parcels[0].lot``."""

    field: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message} [{self.rule}]"


class InvalidInstrument(LandregError, ValueError):
    """An instrument failed validation; nothing was written."""

    def __init__(self, errors: list[FieldError]):
        self.errors = list(errors)
        super().__init__("; ".join(str(e) for e in self.errors))


class MalformedBundle(LandregError, ValueError):
    """A proof bundle is not well-formed; ``field`` names the offending member."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"malformed bundle: {field}: {message}")


class VerificationFailed(LandregError):
    """A well-formed proof does not verify. Carries what was expected and what was computed."""

    def __init__(self, reason: str, *, expected: str | None = None, computed: str | None = None):
        self.reason = reason
        self.expected = expected
        self.computed = computed
        detail = ""
        if expected is not None or computed is not None:
            detail = f" (expected {expected}, computed {computed})"
        super().__init__(reason + detail)


class AnchorPending(LandregError):
    """The anchor holds, but its block is not yet as deep as the verifier was asked to require: the
    record is neither valid nor invalid yet (a reorganisation could still drop its batch)."""

    def __init__(self, confirmations: int, depth: int, block_number: int):
        self.confirmations = confirmations
        self.depth = depth
        self.block_number = block_number
        super().__init__(
            f"the anchor is in block {block_number} with {confirmations} confirmation"
            f"{'' if confirmations == 1 else 's'}, fewer than the {depth} required: verify it again once "
            f"{depth - confirmations} more block{'' if depth - confirmations == 1 else 's'} are mined"
        )


class NotFound(LandregError, LookupError):
    """A requested instrument, parcel or batch does not exist."""


class Conflict(LandregError):
    """The request conflicts with the current state (e.g. an instrument number already used)."""


class MirrorMode(Conflict):
    """Filing through landreg while the registry mirrors the county's recorder database."""

    hint = "file the instrument in the county's recorder system: landreg records it from there"


class DamagedRecord(LandregError, ValueError):
    """A record's stored rows no longer make a record (changed outside landreg, e.g. a history link
    that is not a list of links). Never repaired silently: reconciliation names it."""

    hint = "run `landreg reconcile`: it names the change; restore the rows from a backup"

    def __init__(self, number: str, reason: str):
        self.number = number
        super().__init__(f"the stored rows of instrument {number} are damaged ({reason}); nothing is served from them")


class ChainError(LandregError):
    """Base of errors talking to the chain."""


class ChainUnavailable(ChainError, ConnectionError):
    hint = "start the local node with `landreg chain start`, or check LANDREG_CHAIN__RPC_URL"


class TransactionReverted(ChainError):
    """A transaction was mined with status 0. Never treated as success."""

    def __init__(self, tx_hash: str, reason: str):
        self.tx_hash = tx_hash
        self.reason = reason
        super().__init__(f"transaction {tx_hash} reverted: {reason}")


class TransactionRefused(ChainError):
    """The node refused a transaction outright: not for its fees or its nonce, and not a revert
    ("insufficient funds", "intrinsic gas too high"); ``said`` is the node's own words."""

    def __init__(self, tx_hash: str, said: str):
        self.tx_hash = tx_hash
        self.said = said
        super().__init__(f"the node refused transaction {tx_hash}: {said}")


class ChainMismatch(ChainError):
    """The node is not the chain the database anchored to (chain id, genesis or contract changed)."""


class ChainReset(ChainMismatch):
    """The node answers, but as another chain than the registry's (another chain id or genesis, or
    not the pinned contract code at the contract's address): a reset or replaced node. Anchoring
    holds, nothing is sent to it and no batch is demoted, until the registry's chain is back."""

    hint = (
        "restore the node's state (or point LANDREG_CHAIN__RPC_URL at the registry's chain); anchoring resumes "
        "by itself. `landreg reconcile` shows what the node holds"
    )


class ConfigurationError(LandregError, ValueError):
    """Settings are missing or contradictory."""
