"""Many bundles at once, for an auditor who checks a registry's output in bulk: a folder of bundles,
a JSON-lines file, or several files (``landreg verify PATH... --trust T [--rpc URL]``).

Each bundle is checked in full for what is its own, exactly as one bundle is: parsed strictly, every
disclosed field hashed and the commitment recomputed, the leaf hashed and its Merkle proof folded to
the stated root. What is not its own is checked once: the trust root's signature when it is loaded,
and on chain what a batch's bundles share (``remembered.Remembered``: the network, the contract's
code, the anchoring transaction and its event, the root the contract holds, the block's depth and
time, each read once per contract and batch). Each bundle's own leaf is still asked of the contract
(revoked or not, and the contract's ``MerkleProof`` on its proof), as one bundle's is.

Offline, a bundle that names another registry is named too: its jurisdiction, chain and contract
must be the ones the trust root lists (the words are those of the check on chain). One bundle on
its own says UNCHECKED offline and leaves that to ``--rpc``, as it always has; among thousands, a
bundle of another registry would otherwise hide among the UNCHECKED.

What is read (``Inputs``):

* a folder: every ``*.json`` file in it and in its sub-folders, folder by folder in name order, one
  bundle each (a symbolic link to a folder is not followed; a ``.jsonl`` file in a folder is not read:
  it may be an earlier run's ``--report``);
* a ``.jsonl`` or ``.ndjson`` file: one bundle a line, named ``FILE:LINE``; blank lines are skipped;
* any other file: one bundle.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from hybrid_store import strict_json
from hybrid_store.core import bundle as bundles
from hybrid_store.core import merkle
from hybrid_store.core.trust import TrustRoot
from hybrid_store.errors import MalformedBundle, VerificationFailed
from hybrid_store.verifier.anchor import DEFAULT_DEPTH, claimed_of_registry
from hybrid_store.verifier.reader import ChainReader, node_at
from hybrid_store.verifier.remembered import Remembered
from hybrid_store.verifier.verdicts import (
    INVALID,
    NO_TRUST,
    PENDING,
    UNAVAILABLE,
    UNCHECKED,
    VALID,
    unlisted_scheme,
    verify_document,
)

#: files read as JSON lines, a bundle a line; any other file given is one bundle
LINES_SUFFIXES = (".jsonl", ".ndjson")
#: the files a folder is searched for, recursively
BUNDLE_SUFFIX = ".json"
#: the worst verdict first: a run's exit status is its worst bundle's
SEVERITY = (INVALID, UNAVAILABLE, PENDING, UNCHECKED, VALID)
#: the verdicts a run names bundle by bundle (the rest are counted)
NAMED = (INVALID, UNAVAILABLE, PENDING)
#: trees whose inner nodes a run keeps at once (a folder may hold a few batches' bundles in turn)
MEMO_TREES = 8
#: a report's columns (``Checked.row``), one row per bundle
REPORT_COLUMNS = ("bundle", "status", "standing", "instrument", "chainId", "contract", "batchId", "reason")
OFFLINE = (
    "UNCHECKED: the record's fields, commitment and Merkle proof agree, and its chain, contract and jurisdiction are "
    "the trust root's, but the anchor was not checked on chain (add --rpc URL)"
)


def is_many(paths: Sequence[Path]) -> bool:
    """Whether ``landreg verify`` was handed many bundles (a folder, a JSON-lines file, more than one
    path) rather than the one bundle (or title abstract) it has always verified."""
    return len(paths) != 1 or paths[0].is_dir() or paths[0].suffix.lower() in LINES_SUFFIXES


class Item(NamedTuple):  # a tuple: one is made per bundle, and a frozen dataclass costs several times more
    """One bundle as read: where it is (its file, or ``FILE:LINE``), its bytes, or why it has none."""

    where: str
    raw: bytes | None
    problem: str = ""
    size: int = 0  # the bytes of input it accounts for (what a progress bar counts)


class Inputs:
    """The bundles of ``paths``, read one at a time (a folder's files are listed when it is reached)."""

    def __init__(self, paths: Iterable[Path], *, skip: Path | None = None) -> None:
        self.paths = list(paths)
        #: a file a folder's search passes over (the run's own report, written into the folder it reads)
        self.skip = os.path.realpath(skip) if skip is not None else None

    def size(self) -> int:
        """The bytes all inputs hold (a progress bar's total): a stat of every file, so only asked
        when a bar is shown."""
        total = 0
        for path in self.paths:
            files = self._files(path, []) if path.is_dir() else [str(path)]
            for file in files:
                try:
                    total += os.stat(file).st_size
                except OSError:
                    continue
        return total

    def __iter__(self) -> Iterator[Item]:
        for path in self.paths:
            if path.is_dir():
                unreadable: list[OSError] = []
                for file in self._files(path, unreadable):
                    yield _whole(file)
                for exc in unreadable:
                    yield Item(str(exc.filename), None, f"cannot read the folder {exc.filename}: {exc.strerror}")
            elif path.suffix.lower() in LINES_SUFFIXES:
                yield from _lines(path)
            else:
                yield _whole(str(path))

    def _files(self, folder: Path, unreadable: list[OSError]) -> list[str]:
        found: list[str] = []
        for top, folders, files in os.walk(folder, onerror=unreadable.append):  # links to folders: not followed
            folders.sort()
            found.extend(os.path.join(top, name) for name in sorted(files) if name.endswith(BUNDLE_SUFFIX))
        if self.skip is not None:  # (the real path only of a file of the report's name)
            name = os.path.basename(self.skip)
            found = [f for f in found if os.path.basename(f) != name or os.path.realpath(f) != self.skip]
        return found


def _whole(file: str) -> Item:
    try:
        raw = strict_json.read_file(file, max_bytes=bundles.MAX_BUNDLE_BYTES)
    except OSError as exc:
        return Item(file, None, f"cannot read {file}: {exc.strerror}")
    except strict_json.InvalidJSON as exc:  # the words of one bundle's verdict
        return Item(file, None, f"malformed bundle: (bundle): {exc}", bundles.MAX_BUNDLE_BYTES)
    return Item(file, raw, size=len(raw))


def _lines(path: Path) -> Iterator[Item]:
    """A JSON-lines file's bundles; a line longer than a bundle may be is named, not read whole."""
    try:
        f = open(path, "rb", buffering=1 << 20)  # noqa: SIM115 - closed below, after the generator's last line
    except OSError as exc:
        yield Item(str(path), None, f"cannot read {path}: {exc.strerror}")
        return
    name, number, limit = str(path), 0, bundles.MAX_BUNDLE_BYTES
    with f:
        while line := f.readline(limit + 2):  # a bundle, and its line's end
            number += 1
            size = len(line)
            if size > limit and not line.endswith(b"\n"):
                while not line.endswith(b"\n") and (line := f.readline(1 << 20)):  # the rest of it, unkept
                    size += len(line)
                yield Item(f"{name}:{number}", None, f"malformed bundle: (bundle): larger than {limit} bytes", size)
            elif not line.isspace():  # the line's end is whitespace JSON allows: taken off only where it counts
                yield Item(f"{name}:{number}", line if size <= limit else line.rstrip(b"\r\n"), size=size)


class Checked(NamedTuple):
    """One bundle's verdict in a run: where it is, its status and standing, and the reason in words."""

    where: str
    status: str
    reason: str
    number: str | None = None  # the instrument's number, when the bundle discloses it
    anchor: bundles.Anchor | None = None  # where the bundle says it was anchored
    standing: str = ""  # a valid record's: current, corrected, superseded, deleted_in_legacy

    def row(self) -> dict[str, Any]:
        """The report's row (``--report``): every bundle, with its verdict."""
        a = self.anchor
        return dict(zip(REPORT_COLUMNS, (
            self.where, self.status, self.standing, self.number or "", a.chain_id if a else "",
            a.contract if a else "", a.batch_id if a else "", self.reason), strict=True))  # fmt: skip


class Bulk:
    """Verifies bundle after bundle against one trust root (and, given a node, one chain)."""

    def __init__(
        self, trust: TrustRoot | None, *, rpc_url: str | None = None, chain: ChainReader | None = None,
        depth: int = DEFAULT_DEPTH,
    ) -> None:  # fmt: skip
        self.trust, self.depth = trust, depth
        reader = chain if chain is not None else node_at(rpc_url) if rpc_url is not None else None
        self.chain = Remembered(reader) if reader is not None else None
        self._refused: dict[tuple[Any, ...], str] = {}
        #: the inner nodes hashed so far, a memo per tree (by its root), the last few: bundles come a
        #: batch at a time, and a small memo is read from the cache where one of all batches is not
        self._trees: dict[bytes, merkle.PairMemo] = {}

    def check(self, item: Item) -> Checked:
        where = item.where
        if item.raw is None:
            return Checked(where, INVALID, item.problem)
        try:  # bounded in size and depth before any parser runs
            document = strict_json.loads(item.raw, max_bytes=bundles.MAX_BUNDLE_BYTES)
        except strict_json.InvalidJSON as exc:
            return Checked(where, INVALID, f"malformed bundle: (bundle): {exc}")
        try:
            bundle = bundles.parse(document)
        except MalformedBundle as exc:
            return Checked(where, INVALID, _not_a_bundle(document, exc))
        number = bundle.disclosed("instrument_number")
        number = number if isinstance(number, str) else None
        offline = self._offline(where, bundle, number)
        if offline.status == INVALID or self.chain is None or self.trust is None:
            return offline  # a node, up or down, changes nothing about what the trust root refuses
        verdict = verify_document(document, chain=self.chain, trust=self.trust, depth=self.depth)
        return Checked(where, verdict.status, verdict.reason, number, bundle.anchor,
                       verdict.standing if verdict.valid else "")  # fmt: skip

    def _offline(self, where: str, bundle: bundles.ProofBundle, number: str | None) -> Checked:
        try:
            bundles.verify_offline(bundle, memo=self._memo(bundle))
        except VerificationFailed as exc:
            return Checked(where, INVALID, str(exc), number, bundle.anchor)
        if self.trust is None:
            return Checked(where, UNCHECKED, f"UNCHECKED: the record's fields, commitment and Merkle proof agree, but "
                           f"{NO_TRUST}", number, bundle.anchor)  # fmt: skip
        anchor = bundle.anchor
        assert anchor is not None  # verify_offline refuses a pending bundle
        # what the trust root says of a scheme, jurisdiction, chain and contract, found once for all
        # the bundles that name them (a registry's bundles name a handful)
        claims = (bundle.disclosure.scheme, bundle.jurisdiction, anchor.chain_id, anchor.contract)
        refused = self._refused.get(claims)
        if refused is None:
            refused = self._refused[claims] = self._refusal(bundle)
        if refused:
            return Checked(where, INVALID, refused, number, anchor)
        return Checked(where, UNCHECKED, OFFLINE, number, anchor)

    def _memo(self, bundle: bundles.ProofBundle) -> merkle.PairMemo | None:
        if bundle.tree is None:
            return None
        memo = self._trees.get(bundle.tree.root)
        if memo is None:
            if len(self._trees) >= MEMO_TREES:
                del self._trees[next(iter(self._trees))]  # the oldest tree
            memo = self._trees[bundle.tree.root] = {}
        return memo

    def _refusal(self, bundle: bundles.ProofBundle) -> str:
        """Why the trust root says the bundle is not the registry's ("" when it may be)."""
        assert self.trust is not None
        unlisted = unlisted_scheme(bundle, self.trust)
        if unlisted:
            return unlisted
        try:
            claimed_of_registry(bundle, self.trust)
        except VerificationFailed as exc:
            return str(exc)
        return ""


def _not_a_bundle(document: Any, exc: MalformedBundle) -> str:
    if isinstance(document, dict) and str(document.get("format", "")).startswith("landreg-title-abstract/"):
        return "a title abstract, not a proof bundle: verify it on its own (landreg verify FILE --trust T --rpc URL)"
    return str(exc)


@dataclass
class Tally:
    """A run's totals: bundles per verdict, valid ones per standing, and the worst verdict."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SEVERITY, 0))
    standings: dict[str, int] = field(default_factory=dict)

    def add(self, checked: Checked) -> None:
        self.counts[checked.status] += 1
        if checked.status == VALID:
            self.standings[checked.standing] = self.standings.get(checked.standing, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def worst(self) -> str | None:
        return next((status for status in SEVERITY if self.counts[status]), None)
