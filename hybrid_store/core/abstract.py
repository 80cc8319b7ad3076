"""A parcel's title from its records alone: is the history complete, who owns it, what is open against it.

Pure: the verifier (``hybrid_store.verifier.abstracts``) feeds it the records of a title abstract
once each has been proven (fields -> commitment -> anchored root), and the head the anchored title
state gives the parcel. Spec: docs/title-abstract.md.

**Complete.** A record commits to the previous record of each of its parcels (``prev``), and the
title state commits to each parcel's newest record and how many records its history holds. So the
records of one parcel, oldest first, are its whole history exactly when the first names no
predecessor, each next one names the one before it, and the last is the anchored head with a history
as long as the list. An omitted, inserted, reordered or foreign record breaks one of those links,
short of a SHA-256 or keccak256 collision; ``history_problem`` names the first that breaks.

**Owners of record** replay the registry's chain-of-title rule (``core.title``) over the history: a
conveyance whose grantors include every owner of record (or one an officer or a court makes for the
owner) becomes the next link; a correction is judged against the title before what it corrects.
**Encumbrances** open with a mortgage, a lien, a lis pendens or an easement and close only by a
record whose committed cross-reference names them by number: a satisfaction or a release (of a
mortgage), a discharge (of a lien or a lis pendens). Records committed under the first commitment
scheme carry no cross-references, so what they might close, and a mortgage among them that nothing
later names, is "open or closed: not provable from the record", never either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hybrid_store.core import title
from hybrid_store.core.hashing import to_hex
from hybrid_store.core.records import CONVEYANCES, CONVEYS_FOR_OWNER, DocType, ReferenceKind

#: what an abstract must disclose of every record, or its history and title cannot be derived
NEEDED_V1 = ("instrument_number", "doc_type", "recorded_at", "parcels", "prev", "corrects")
#: ... and of a record committed under v2 besides: its cross-references and its place among versions
NEEDED_V2 = (*NEEDED_V1, "references", "supersedes")

OPEN, CLOSED, UNKNOWN = "open", "closed", "not provable"
#: the types that open an encumbrance, as the abstract names it
OPENS = {DocType.MORTGAGE: "mortgage", DocType.LIEN: "lien", DocType.LIS_PENDENS: "lis pendens",
         DocType.EASEMENT: "easement"}  # fmt: skip
#: the types that close what their reference names, by the kind of reference, and what they may close
CLOSES = {
    DocType.SATISFACTION: (ReferenceKind.ACTS_ON_MORTGAGE, frozenset({DocType.MORTGAGE})),
    DocType.RELEASE: (ReferenceKind.ACTS_ON_MORTGAGE, frozenset({DocType.MORTGAGE})),
    DocType.DISCHARGE_OF_LIEN: (ReferenceKind.DISCHARGES_LIEN, frozenset({DocType.LIEN, DocType.LIS_PENDENS})),
}
#: types that act on a mortgage without closing it: shown beside it
ACTS_ON = {DocType.ASSIGNMENT: "assigned", DocType.SUBORDINATION: "subordinated"}
#: what no abstract of this registry can show, said in every verdict
LIMITS = (
    "judgments, municipal liens and other matters indexed by name rather than by parcel",
    "records indexed under another parcel key, or under a block and lot since renumbered",
    "instruments recorded before this registry's book began (they appear only where a record cites them by book "
    "and page)",
)  # fmt: skip


@dataclass(frozen=True)
class Entry:
    """One record of the history, as its proven fields show it. ``grantors``/``grantees`` None:
    withheld; ``references``/``supersedes`` None: not in the record's scheme (v1)."""

    number: str
    doc_type: str
    recorded_at: str
    scheme: str
    commitment: bytes
    parcels: tuple[str, ...]
    prev: tuple[tuple[str, str | None], ...]
    corrects: str | None
    references: tuple[tuple[str, str | None, str | None, str | None], ...] | None
    supersedes: str | None
    grantors: tuple[str, ...] | None
    grantees: tuple[str, ...] | None
    #: the chain's word, proven: current, superseded (by the next version in this history) or
    #: deleted_in_legacy (the registry's word)
    standing: str = "current"

    def link(self, parcel_key: str) -> str | None:
        """The commitment (0x-hex) this record names as ``parcel_key``'s previous record."""
        return next(c for k, c in self.prev if k == parcel_key)


def entry_problem(scheme: str, fields: dict[str, Any], withheld: set[str]) -> str:
    """Why a record's disclosed fields cannot make an ``Entry`` (a field the abstract needs withheld,
    a value of the wrong shape); "" when they can."""
    needed = NEEDED_V1 if scheme.endswith("/v1") else NEEDED_V2
    missing = [f for f in needed if f in withheld or f not in fields]
    if missing:
        return (f"withholds {', '.join(missing)}, which an abstract must disclose (the history and the title are "
                "derived from them)")  # fmt: skip
    text = (str,)
    if not isinstance(fields["instrument_number"], str) or not isinstance(fields["recorded_at"], str):
        return "has no instrument number or recording time as text"
    if fields["doc_type"] not in _DOC_TYPES:
        return f"has a document type this registry does not know ({fields['doc_type']!r})"
    parcels, prev = fields["parcels"], fields["prev"]
    if (
        not isinstance(parcels, list)
        or not all(isinstance(k, str) for k in parcels)
        or len(set(parcels)) != len(parcels)
    ):
        return "names no list of distinct parcel keys"
    if not isinstance(prev, list) or not all(
        isinstance(link, list) and len(link) == 2 and isinstance(link[0], str) and isinstance(link[1], str | None)
        for link in prev
    ) or sorted(k for k, _ in prev) != sorted(parcels):  # fmt: skip
        return "has a history link that is not one [parcel key, commitment] per parcel"
    if not isinstance(fields["corrects"], str | None):
        return "has a correction link that is not an instrument number"
    for role in ("grantors", "grantees"):
        names = fields.get(role)
        if names is not None and not (isinstance(names, list) and all(isinstance(n, text) for n in names)):
            return f"has {role} that are not a list of names"
    if not scheme.endswith("/v1"):
        refs = fields["references"]
        if not isinstance(refs, list) or not all(
            isinstance(r, list) and len(r) == 4 and all(isinstance(x, str | None) for x in r) for r in refs
        ):  # fmt: skip
            return "has cross-references that are not [kind, number, book, page] entries"
        if not isinstance(fields["supersedes"], str | None):
            return "has a supersession link that is not a commitment"
    return ""


_DOC_TYPES = frozenset(t.value for t in DocType)


def make_entry(scheme: str, commitment: bytes, fields: dict[str, Any], standing: str = "current") -> Entry:
    """An ``Entry`` of fields that passed ``entry_problem``."""

    def names(role: str) -> tuple[str, ...] | None:
        value = fields.get(role)
        return tuple(value) if isinstance(value, list) else None

    refs = fields.get("references")
    return Entry(
        number=fields["instrument_number"], doc_type=fields["doc_type"], recorded_at=fields["recorded_at"],
        scheme=scheme, commitment=commitment, parcels=tuple(fields["parcels"]),
        prev=tuple((k, c) for k, c in fields["prev"]), corrects=fields["corrects"],
        references=None if scheme.endswith("/v1") else tuple((r[0], r[1], r[2], r[3]) for r in refs or ()),
        supersedes=None if scheme.endswith("/v1") else fields.get("supersedes"),
        grantors=names("grantors"), grantees=names("grantees"), standing=standing,
    )  # fmt: skip


@dataclass(frozen=True)
class HeadFacts:
    """The parcel's head in the anchored title state: its newest record and its history's length."""

    commitment: bytes
    history_length: int


def _describe(entries: Sequence[Entry], i: int) -> str:
    return f"record {i + 1} ({entries[i].number})"


def history_problem(parcel_key: str, entries: Sequence[Entry], head: HeadFacts | None, batch: str) -> str:
    """Why ``entries`` (oldest first) are not the whole history of ``parcel_key`` up to ``head``,
    the parcel's head in the title state of ``batch`` (None: the state holds no record of it); ""
    when they are."""
    if head is None:
        if entries:
            return (f"the title state of {batch} holds no record of parcel {parcel_key}, yet the abstract gives "
                    f"{len(entries)}: they are not this registry's history of it")  # fmt: skip
        return ""
    position = {e.commitment: i for i, e in enumerate(entries)}
    for i, e in enumerate(entries):
        if parcel_key not in e.parcels:
            return (f"{_describe(entries, i)} is not a record of parcel {parcel_key}: it names "
                    f"{', '.join(e.parcels) or 'no parcel'} (a record of another parcel spliced in)")  # fmt: skip
        named = e.link(parcel_key)
        expected = to_hex(entries[i - 1].commitment) if i else None
        if named == expected:
            continue
        if i == 0:
            return (f"{_describe(entries, i)} is not the parcel's first record: its history link names the record "
                    f"committed as {named} before it, which the abstract leaves out")  # fmt: skip
        if named is None:
            return (f"{_describe(entries, i)} is the parcel's first record by its own history link, yet the abstract "
                    f"puts {i} record{'s' if i > 1 else ''} before it (out of order, or not this parcel's)")  # fmt: skip
        j = position.get(bytes.fromhex(named[2:]))
        if j is not None:
            return (f"records out of order: {entries[i].number} names {entries[j].number} as the parcel's record "
                    f"before it, but the abstract puts {entries[i - 1].number} there")  # fmt: skip
        return (f"a record is missing between {_describe(entries, i - 1)} and {_describe(entries, i)}: "
                f"{entries[i].number}'s history link names the record committed as {named}, which the abstract "
                "leaves out")  # fmt: skip
    if not entries:
        return (f"the abstract gives no record of parcel {parcel_key}, but its head in the title state of {batch} is "
                f"the record committed as {to_hex(head.commitment)}, with a history of {head.history_length}")  # fmt: skip
    if entries[-1].commitment != head.commitment or head.history_length != len(entries):
        n = len(entries)
        newer = head.history_length - n
        left_out = "" if newer <= 0 else ": the newest record is left out" if newer == 1 else (
            f": the newest {newer} records are left out")  # fmt: skip
        return (f"the abstract stops at {_describe(entries, n - 1)}, the {_ordinal(n)} record of the parcel's "
                f"history, but its head in the title state of {batch} is the record committed as "
                f"{to_hex(head.commitment)}, the {_ordinal(head.history_length)}{left_out}")  # fmt: skip
    return ""


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


# --- the title derived ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Owners:
    """The owners of record: the grantees of ``number`` (None: not provable, ``why`` says why)."""

    names: tuple[str, ...] | None
    number: str | None
    why: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"names": list(self.names) if self.names is not None else None, "byInstrument": self.number,
                "provable": not self.why, "note": self.why}  # fmt: skip


@dataclass
class Encumbrance:
    kind: str  # mortgage, lien, lis pendens, easement
    number: str  # the record that opened it
    state: str  # open, closed, not provable
    closed_by: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "openedBy": self.number, "state": self.state, "closedBy": self.closed_by,
                "notes": list(self.notes)}  # fmt: skip


@dataclass(frozen=True)
class Title:
    owners: Owners
    encumbrances: tuple[Encumbrance, ...]
    notes: tuple[str, ...]

    @property
    def open(self) -> tuple[Encumbrance, ...]:
        """Open, or not provably closed: what an examiner must not take as gone."""
        return tuple(e for e in self.encumbrances if e.state != CLOSED)

    def to_json(self) -> dict[str, Any]:
        return {"owners": self.owners.to_json(), "encumbrances": [e.to_json() for e in self.encumbrances],
                "notes": list(self.notes), "limits": list(LIMITS)}  # fmt: skip


def derive(parcel_key: str, entries: Sequence[Entry]) -> Title:
    """The owners of record and the encumbrances of record of ``parcel_key`` from its complete
    history (checked by ``history_problem`` first). A version superseded by a later one of the same
    history stands aside for it; a record the county's system deleted (the registry's word) is left
    out and named."""
    notes: list[str] = []
    live: list[Entry] = []
    for e in entries:
        if e.standing == "deleted_in_legacy":
            notes.append(f"{e.number} was deleted in the county's recorder system (the registry's word): left out")
        elif e.standing == "superseded":
            notes.append(f"{e.number} was superseded by a newer version of the same document, later in this history")
        else:
            live.append(e)
    return Title(_owners(parcel_key, live), _encumbrances(live, notes), tuple(notes))


def _kinds(entries: Sequence[Entry]) -> list[str | None]:
    """Each record's kind for the chain of title: its type, a correction's the type of the first
    record of what it corrects (None: that record is not in this history)."""
    by_number = {e.number: i for i, e in enumerate(entries)}
    kinds: list[str | None] = []
    for i, e in enumerate(entries):
        if e.doc_type != DocType.CORRECTION or e.corrects is None:
            kinds.append(e.doc_type)
            continue
        j: int | None = by_number.get(e.corrects)
        seen = {i}
        while j is not None and j not in seen and entries[j].corrects is not None:
            seen.add(j)
            j = by_number.get(entries[j].corrects or "")
        kinds.append(entries[j].doc_type if j is not None and j < i else None)
    return kinds


def _family(entries: Sequence[Entry], i: int) -> tuple[int, set[int]] | None:
    """The first record of the correction family of what record ``i`` corrects, and the family's
    members recorded before ``i`` (None: what it corrects is not in this history)."""
    by_number = {e.number: k for k, e in enumerate(entries)}
    j = by_number.get(entries[i].corrects or "")
    if j is None or j >= i:
        return None
    while (up := by_number.get(entries[j].corrects or "")) is not None and up < j:
        j = up
    members = {j}
    for k in range(j + 1, i):
        if by_number.get(entries[k].corrects or "") in members:
            members.add(k)
    return j, members


def _owners(parcel_key: str, entries: Sequence[Entry]) -> Owners:
    kinds = _kinds(entries)
    links: list[int] = []  # the conveyances recorded on the parcel without a title flag on it
    owner: int | None = None
    for i, e in enumerate(entries):
        kind = kinds[i]
        if kind is None:
            return Owners(None, None, f"{e.number} corrects {e.corrects}, which is not in this parcel's history: "
                                      "who owns the parcel after it cannot be derived from this abstract")  # fmt: skip
        if kind not in CONVEYANCES:
            continue
        if e.grantors is None or e.grantees is None:
            return Owners(None, None, f"{e.number} withholds its grantors or grantees: the owners of record cannot "
                                      "be derived")  # fmt: skip
        for_owner = kind in CONVEYS_FOR_OWNER
        known = _conveyance(entries[owner]) if owner is not None else None
        family = _family(entries, i) if e.corrects is not None else None
        if family is None:
            flag, moves = title.check(parcel_key, e.grantors, known, for_owner=for_owner), True
        else:
            root, members = family
            before = next((k for k in reversed(links) if k < root and k not in members), None)
            corrected = title.Corrected(str(e.corrects), _conveyance(entries[before]) if before is not None else None,
                                        any(k in members for k in links), owner in members)  # fmt: skip
            flag, moves = title.check_correction(parcel_key, e.grantors, corrected, known, for_owner=for_owner)
        if flag is None:
            links.append(i)
            if moves:
                owner = i
    if owner is None:
        return Owners(None, None)
    return Owners(entries[owner].grantees, entries[owner].number)


def _conveyance(e: Entry) -> title.Conveyance:
    return title.Conveyance(e.number, e.grantors or (), e.grantees or ())


def _encumbrances(entries: Sequence[Entry], notes: list[str]) -> tuple[Encumbrance, ...]:
    found: dict[str, tuple[DocType, Encumbrance]] = {}
    for e in entries:
        doc_type = DocType(e.doc_type)
        if doc_type in OPENS:
            v1 = e.references is None
            opened = Encumbrance(OPENS[doc_type], e.number, UNKNOWN if v1 else OPEN)
            if v1:
                opened.notes.append(
                    "committed under the first commitment scheme, which carries no cross-references: open or "
                    "closed is not provable from the record unless a later record names it")  # fmt: skip
            found[e.number] = (doc_type, opened)
        if e.references is None:
            _v1_closer(e, doc_type, found)
        else:
            for reference in e.references:
                _apply(e, doc_type, reference, found, notes)
    return tuple(enc for _, enc in found.values())


def _v1_closer(e: Entry, doc_type: DocType, found: dict[str, tuple[DocType, Encumbrance]]) -> None:
    """A v1 record that may close an encumbrance names none: whatever it may close is unknown since."""
    closes = CLOSES.get(doc_type)
    if closes is None:
        return
    for kind, enc in found.values():
        if kind in closes[1] and enc.state == OPEN:
            enc.state = UNKNOWN
            enc.notes.append(f"{e.number} ({e.doc_type.lower()}) may have closed it: it carries no cross-reference "
                             "saying what it closes")  # fmt: skip


def _apply(e: Entry, doc_type: DocType, reference: tuple[str, str | None, str | None, str | None],
           found: dict[str, tuple[DocType, Encumbrance]], notes: list[str]) -> None:  # fmt: skip
    """What one committed cross-reference of ``e`` does to the encumbrance it names."""
    kind, number, book, page = reference
    if kind == ReferenceKind.CORRECTS:
        return
    if number is None:
        notes.append(f"{e.number} ({e.doc_type.lower()}) names book {book} page {page}, recorded before this "
                     "registry's book began")  # fmt: skip
        return
    if number not in found:
        notes.append(f"{e.number} ({e.doc_type.lower()}) names instrument {number}, which is not a record of this "
                     "parcel")  # fmt: skip
        return
    target_type, target = found[number]
    closes = CLOSES.get(doc_type)
    if closes is not None and kind == closes[0] and target_type in closes[1]:
        if target.state != CLOSED:
            target.state, target.closed_by = CLOSED, e.number
    elif doc_type in ACTS_ON:
        target.notes.append(f"{ACTS_ON[doc_type]} by {e.number}")
    else:
        target.notes.append(f"named by {e.number} ({e.doc_type.lower()})")
