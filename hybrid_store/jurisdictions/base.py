"""What every jurisdiction profile provides."""

from __future__ import annotations

import abc
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Any, ClassVar, Protocol, cast

from pydantic import BaseModel

from hybrid_store.core.records import CONVEYS_FOR_OWNER, DocType, ReferenceKind
from hybrid_store.jurisdictions.names import NameRules

_PARCEL_BREAKS = re.compile(r"[\s_/,;:-]+")
#: the labels a clerk may type between a parcel's parts (``BLOCK 100 LOT 5``)
_PARCEL_WORDS = frozenset({"BLOCK", "BLK", "B", "LOT", "L", "QUAL", "QUALIFIER", "Q", "BOROUGH", "BORO"})


@dataclass(frozen=True)
class Limits:
    """Input limits of a filing: generous for real instruments, bounded against abuse."""

    name_length: int = 200  # longest party name; NJ SR1A allows 35, e-recording payloads more
    parties: int = 50  # per side (grantors or grantees); estates and associations run long
    parcels: int = 500  # a condominium master deed can cover hundreds of units
    legal_description: int = 20_000  # characters; metes-and-bounds descriptions run to a few pages
    consideration: Decimal = Decimal("99999999999.99")  # under $100 billion: fits a signed 64-bit cents column
    future_tolerance: timedelta = timedelta(minutes=5)  # clock skew between a workstation and the server
    page_count: int = 100_000  # pages of one instrument; a master deed with its plans runs to thousands
    address: int = 500  # characters of a mailing or return-to address, lines included
    references: int = 50  # cross-references of one instrument (a release may name several mortgages)


@dataclass(frozen=True)
class Attestation:
    """A fact of the document landreg cannot see on an image (a signature, an acknowledgment): the
    examining clerk attests it, and the attestation is kept with the submission as the clerk's."""

    code: str
    words: str  # what the clerk attests, in the statute's words (the desk's checkbox)
    statute: str


@dataclass(frozen=True)
class GroundRule:
    """A ground for refusing a document, as data: what the statute requires (a field present, an
    attestation made, a cross-reference of a kind cited) of which document types (None: all).
    Examination (``hybrid_store.examination``) reads these; no rule is a code path of its own."""

    code: str
    statute: str
    words: str  # what is missing, in the clerk's words, and what to do about it
    doc_types: frozenset[DocType] | None = None
    field: str | None = None
    attestation: str | None = None
    cites: ReferenceKind | None = None
    #: at least one of these fields present (what the statute accepts one or the other of)
    any_field: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlaceInfo:
    """A place parcels belong to (a municipality, a borough): its code and name."""

    code: str
    name: str
    kind: str = ""


class ParcelInput(Protocol):
    """A validated parcel reference: its key (the committed name) and its parcel-table columns."""

    @property
    def key(self) -> str: ...

    def columns(self) -> dict[str, str]: ...


class Profile(abc.ABC):
    name: ClassVar[str]  # the setting's value, and what the trust root and bundles name
    title: ClassVar[str]  # "Bergen County, New Jersey"
    place_label: ClassVar[str]  # "municipality"
    parcel_key_pattern: ClassVar[re.Pattern[str]]  # every key this profile makes matches it
    parcel_key_format: ClassVar[str]  # documented form, e.g. CCDD_BLOCK_LOT[_QUAL]
    earliest_recording: ClassVar[datetime]
    limits: ClassVar[Limits] = Limits()
    #: the document types this registry records (a recorder that records everything takes OTHER too)
    doc_types: ClassVar[frozenset[DocType]] = frozenset(DocType)
    #: conveyances made for the owner of record by an officer or a court (who may convey is the
    #: type's rule): their grantors need not be the owners of record (``title.check``)
    conveys_for_owner: ClassVar[frozenset[DocType]] = CONVEYS_FOR_OWNER
    #: the cross-reference each type must cite (examination reads it: citing nothing is a ground for
    #: refusal); a type not listed cites nothing it must
    cites: ClassVar[Mapping[DocType, ReferenceKind]] = MappingProxyType({
        DocType.ASSIGNMENT: ReferenceKind.ACTS_ON_MORTGAGE,
        DocType.SATISFACTION: ReferenceKind.ACTS_ON_MORTGAGE,
        DocType.RELEASE: ReferenceKind.ACTS_ON_MORTGAGE,
        DocType.SUBORDINATION: ReferenceKind.ACTS_ON_MORTGAGE,
        DocType.DISCHARGE_OF_LIEN: ReferenceKind.DISCHARGES_LIEN,
        DocType.CORRECTION: ReferenceKind.CORRECTS,
    })  # fmt: skip

    #: what the examining clerk attests and the grounds a recorder may refuse for: none by default
    #: (a registry refuses nothing it has no statute for)
    attestations: ClassVar[tuple[Attestation, ...]] = ()
    grounds: ClassVar[tuple[GroundRule, ...]] = ()
    #: the statutory clocks, in business days after the day of receipt (None: the law sets none),
    #: and where the recorder's day is
    record_within: ClassVar[int | None] = None
    reject_within: ClassVar[int | None] = None
    timezone: ClassVar[str] = "UTC"
    #: how the grantor-grantee index folds names and reads a search (``names.NameRules``): by default
    #: order, case, punctuation and accents folded, and no suffix known
    name_rules: ClassVar[NameRules] = NameRules()

    def holidays(self, year: int) -> frozenset[date]:
        """The legal holidays of ``year`` on which the recorder's clocks stop (weekends always do)."""
        return frozenset()

    @property
    @abc.abstractmethod
    def parcel_model(self) -> type[BaseModel]:
        """Validates a parcel as filed; its instances are ``ParcelInput``."""

    @abc.abstractmethod
    def places(self) -> tuple[PlaceInfo, ...]: ...

    @abc.abstractmethod
    def key_columns(self, key: str) -> dict[str, Any]:
        """The parcel fields a (well-formed) key spells."""

    def place_codes(self) -> frozenset[str]:
        return frozenset(p.code for p in self.places())

    def place_name(self, code: str) -> str:
        return next((p.name for p in self.places() if p.code == code), code)

    def parcel_from_form(self, place: str, block: str, lot: str, qualifier: str = "") -> ParcelInput:
        """The parcel a search form names: a place (municipality, borough), block, lot, qualifier."""
        return self.parcel(**self.form_fields(place, block, lot, qualifier))

    @abc.abstractmethod
    def form_fields(self, place: str, block: str, lot: str, qualifier: str) -> dict[str, str]:
        """The parcel model's fields from the four a search form asks for."""

    def parcel_from_text(self, text: str) -> ParcelInput:
        """The parcel a clerk typed in one box, in any spelling the profile reads: its key, or its
        parts apart (``0223 100.01 5``, ``0223-100.01-5``, ``0223 BLOCK 100.01 LOT 5 QUAL C0001``);
        ``ValueError`` for anything else."""
        upper = text.strip().upper()
        if self.parcel_key_pattern.fullmatch(upper):
            return self.parse_parcel_key(upper)
        words = [w for w in _PARCEL_BREAKS.split(upper) if w and w not in _PARCEL_WORDS]
        words = self.parcel_words(words)
        if not 3 <= len(words) <= 4:
            raise ValueError(f"not a parcel of {self.title}: {text!r}")
        return self.parcel_from_form(*words)

    def parcel_words(self, words: list[str]) -> list[str]:
        """A profile's own compact spellings (a BBL's ten digits), as place, block, lot[, qualifier]."""
        return words

    def parse_parcel_key(self, key: str) -> ParcelInput:
        """The parcel a key names; ``ValueError`` for a key this profile cannot have made."""
        if not self.parcel_key_pattern.fullmatch(key):
            raise ValueError(f"not a parcel key of {self.title}: {key!r} (expected {self.parcel_key_format})")
        return self.parcel(**self.key_columns(key))

    def parcel(self, **fields: Any) -> ParcelInput:
        """A parcel from its fields; ``ValueError`` (pydantic's) when they break a rule."""
        return cast(ParcelInput, self.parcel_model.model_validate(fields))
