"""A synthetic but realistic Bergen County book of land records, seeded and reproducible.

The book is produced as a stream in recording order (constant memory in the number of
instruments): every *holding* (one parcel, two adjoining lots that always convey together, or a
condominium unit) lives its own life from 1990 on: it is sold, mortgaged, refinanced; mortgages are
assigned and satisfied; a few get liens, foreclosures (lis pendens, then a sheriff's deed),
utility easements, and corrective instruments. Condominium buildings start with a master deed over
all their units. The 70 real municipality codes are used, with split blocks (100.01), lot suffixes
and condominium qualifiers (C0001), multi-party deeds (couples, estates, LLCs, trusts) and
accented names.

Deed-type instruments go in deed books, mortgage-type in mortgage books, each filling pages.
Everything derives from the seed: the same (instruments, seed) gives the same book, byte for byte.
"""

from __future__ import annotations

import csv
import hashlib
import heapq
import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hybrid_store.core.records import DocType
from hybrid_store.jurisdictions.base import PlaceInfo as MunicipalityInfo
from hybrid_store.jurisdictions.bergen import municipalities

EASTERN = ZoneInfo("America/New_York")
START = date(1990, 1, 2)
END = date(2026, 6, 30)
LATEST = date(2026, 10, 30)  # a topped-up small book still never records in the future
EVENTS_PER_HOLDING = 9.3  # mean instruments per holding over START..END with the rates below (measured: 9.6)

FIRST = [
    "JOHN", "MARY", "ROBERT", "PATRICIA", "MICHAEL", "JENNIFER", "WILLIAM", "LINDA", "DAVID", "ELIZABETH",
    "JOSEPH", "SUSAN", "THOMAS", "KAREN", "CHARLES", "NANCY", "DANIEL", "LISA", "MATTHEW", "MARGARET",
    "ANTHONY", "SANDRA", "MARK", "ASHLEY", "STEVEN", "DONNA", "PAUL", "MICHELLE", "ANDREW", "CAROL",
    "JOSÉ", "MARÍA", "JUAN", "LUIS", "ANA", "JIN", "MIN-JUN", "SEO-YEON", "HYUN", "PRIYA", "RAJESH",
    "ANIL", "DEEPA", "GIUSEPPE", "FRANCESCA", "SEAN", "SIOBHÁN", "CHAIM", "RIVKA", "YUSUF", "FATIMA",
    "ZOË", "RENÉE", "FRANÇOIS", "BJÖRN", "SØREN", "ŁUKASZ", "DMITRI", "OLGA", "WEI", "MEI",
]  # fmt: skip
LAST = [
    "SMITH", "JOHNSON", "WILLIAMS", "BROWN", "JONES", "GARCIA", "MILLER", "DAVIS", "RODRIGUEZ", "MARTINEZ",
    "KIM", "LEE", "PARK", "CHOI", "PATEL", "SHAH", "DESAI", "COHEN", "LEVY", "GOLDBERG", "ROSSI", "RUSSO",
    "ESPOSITO", "ROMANO", "O'BRIEN", "MURPHY", "KELLY", "SULLIVAN", "NGUYEN", "TRAN", "CHEN", "WANG",
    "MÜLLER", "SCHMIDT", "KOWALSKI", "NOWAK", "DE LA CRUZ", "VAN DER BERG", "GONZÁLEZ", "PEÑA", "ÅBERG",
    "NGUYỄN", "FITZGERALD", "MCCARTHY", "DIMARCO", "DEL VECCHIO", "ST. JOHN", "ABDULLAH", "HASSAN",
]  # fmt: skip
SUFFIXES = ["", "", "", "", "", "", "", "", " JR.", " SR.", " III"]
LENDERS = [
    "WELLS FARGO BANK, N.A.", "JPMORGAN CHASE BANK, N.A.", "BANK OF AMERICA, N.A.", "VALLEY NATIONAL BANK",
    "LAKELAND BANK", "COLUMBIA BANK", "TD BANK, N.A.", "CITIBANK, N.A.", "PNC BANK, NATIONAL ASSOCIATION",
    "MORTGAGE ELECTRONIC REGISTRATION SYSTEMS, INC., AS NOMINEE", "QUICKEN LOANS INC.", "M&T BANK",
    "SANTANDER BANK, N.A.", "PROVIDENT BANK", "KEARNY BANK",
]  # fmt: skip
LIENHOLDERS = ["STATE OF NEW JERSEY", "INTERNAL REVENUE SERVICE", "BERGEN COUNTY SHERIFF", "ACME ROOFING LLC",
               "GARDEN STATE PLUMBING & HEATING INC.", "NORTHEAST CONCRETE CORP."]  # fmt: skip
UTILITIES = ["PUBLIC SERVICE ELECTRIC AND GAS COMPANY", "VERIZON NEW JERSEY INC.", "SUEZ WATER NEW JERSEY INC.",
             "ROCKLAND ELECTRIC COMPANY"]  # fmt: skip
STREETS = ["MAIN", "BROAD", "PARK", "CEDAR", "MAPLE", "OAK", "RIVER", "PROSPECT", "CENTRAL", "HIGHLAND",
           "SUMMIT", "WASHINGTON", "PASSAIC", "KINDERKAMACK", "PALISADE", "ESSEX", "UNION", "FRANKLIN"]  # fmt: skip
# rough weights of how many parcels a municipality holds: cities and townships are larger
KIND_WEIGHT = {"city": 3.0, "township": 2.5, "borough": 1.4, "village": 0.9, "town": 1.4}
DEED_BOOK_START, MORTGAGE_BOOK_START = 7000, 20000
PAGES_PER_BOOK = 600
MORTGAGE_BOOK_TYPES = {
    DocType.MORTGAGE, DocType.ASSIGNMENT, DocType.SATISFACTION, DocType.RELEASE, DocType.SUBORDINATION,
}  # fmt: skip


@dataclass
class _Holding:
    index: int
    parcels: list[dict[str, str]]
    municipality: MunicipalityInfo
    location: str
    base_value: float  # 1990 dollars
    kind: str  # house, condo, commercial, assemblage
    owners: list[str] = field(default_factory=list)
    mortgages: list[tuple[str, str]] = field(default_factory=list)  # (instrument number, current holder)
    liens: list[tuple[str, str]] = field(default_factory=list)
    foreclosing: str | None = None  # lender that filed a lis pendens


class BergenBook:
    """Iterate to get instrument dicts (``InstrumentInput`` fields) in recording order."""

    def __init__(self, instruments: int = 20_000, seed: int = 2026):
        if instruments < 1:
            raise ValueError("instruments must be positive")
        self.instruments = instruments
        self.seed = seed

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return _Generator(self.instruments, self.seed).run()


class _Scheduler:
    """The book's machinery: holdings, the calendar of their next events, numbers, books and pages,
    names and prices. ``_Generator`` adds what happens to a holding."""

    def __init__(self, target: int, seed: int):
        self.target = target
        self.seed = seed
        self.rng = random.Random(seed)
        self.queue: list[tuple[datetime, int, int, str, dict[str, Any]]] = []
        self.order = itertools.count()
        self.numbers: dict[int, int] = {}
        self.books = {"deed": [DEED_BOOK_START, 1], "mortgage": [MORTGAGE_BOOK_START, 1]}
        self.holdings: list[_Holding] = []
        self.emitted = 0
        self.end = END

    # --- population -------------------------------------------------------------------------------
    def _populate(self, units: int, first_day: date = START) -> None:
        rng = self.rng
        span_days = 12 * 365
        if first_day > START:  # topping up a small book: the newcomers' lives may run past END
            first_day = min(first_day, LATEST - timedelta(days=30))
            self.end = min(LATEST, max(self.end, first_day + timedelta(days=3 * 365)))
            span_days = (self.end - first_day).days // 2
        munis = list(municipalities())
        weights = [KIND_WEIGHT.get(m.kind, 1.0) * rng.uniform(0.5, 1.5) for m in munis]
        next_block: dict[str, int] = {}
        made = 0
        while made < units:
            muni = rng.choices(munis, weights)[0]
            block_no = next_block.get(muni.code, rng.randint(1, 40))
            next_block[muni.code] = block_no + rng.randint(1, 12)
            block = str(block_no)
            if rng.random() < 0.06:  # split blocks: N.J.A.C. 18:23A-1.9
                block += f".{rng.randint(1, 3):02d}"
            street = f"{rng.randint(1, 999)} {rng.choice(STREETS)} {rng.choice(['STREET', 'AVENUE', 'ROAD', 'PLACE'])}"
            muni_factor = rng.lognormvariate(0, 0.35)
            if rng.random() < 0.05:  # a condominium building: a master deed, then the units
                count = min(rng.randint(6, 40), units - made + 1)
                lot = str(rng.randint(1, 30))
                unit_parcels = [
                    {"municipality_code": muni.code, "block": block, "lot": lot, "qualifier": f"C{u:04d}"}
                    for u in range(1, count + 1)
                ]
                value = 95_000 * muni_factor
                for u, parcel in enumerate(unit_parcels, start=1):
                    self.holdings.append(
                        _Holding(len(self.holdings), [parcel], muni, f"{street}, UNIT {u}", value, "condo")
                    )
                self._schedule_master_deed(unit_parcels, muni, street, self.holdings[-count:], first_day)
                made += count
                continue
            lots_in_block = rng.randint(3, 25)
            lot_no = 1
            while lot_no <= lots_in_block and made < units:
                lot = str(lot_no) + (f".{rng.randint(1, 4):02d}" if rng.random() < 0.04 else "")
                parcels = [{"municipality_code": muni.code, "block": block, "lot": lot, "qualifier": ""}]
                kind = "house"
                if rng.random() < 0.05 and lot_no < lots_in_block:  # two lots that always convey together
                    lot_no += 1
                    parcels.append(
                        {"municipality_code": muni.code, "block": block, "lot": str(lot_no), "qualifier": ""}
                    )
                    kind = "assemblage"
                elif rng.random() < 0.07:
                    kind = "commercial"
                value = {"house": 160_000, "assemblage": 230_000, "commercial": 400_000}[kind] * muni_factor
                holding = _Holding(len(self.holdings), parcels, muni, street, value * rng.lognormvariate(0, 0.25), kind)
                self.holdings.append(holding)
                self._at(self._random_day(first_day, span_days), holding, "first_sale")
                made += 1
                lot_no += 1

    def _schedule_master_deed(self, parcels: list[dict[str, str]], muni: MunicipalityInfo, street: str,
                              units: list[_Holding], first_day: date = START) -> None:  # fmt: skip
        moment = self._random_day(first_day, 10 * 365 if first_day == START else 30)
        developer = f"{self.rng.choice(STREETS)} {self.rng.choice(['URBAN RENEWAL', 'DEVELOPMENT', 'TOWERS'])} LLC"
        self._at(moment, units[0], "master_deed", parcels=parcels, developer=developer)
        for unit in units:
            unit.owners = [developer]
            self._at(moment + timedelta(days=self.rng.randint(20, 400)), unit, "sale")

    # --- scheduling -------------------------------------------------------------------------------
    def _random_day(self, start: date, span_days: int) -> datetime:
        day = start + timedelta(days=self.rng.randint(0, span_days))
        return self._business_time(day)

    def _business_time(self, day: date) -> datetime:
        while day.weekday() >= 5:
            day += timedelta(days=1)
        minute = self.rng.randint(9 * 60, 16 * 60 + 29)
        local = datetime.combine(day, time(minute // 60, minute % 60, self.rng.randint(0, 59)), EASTERN)
        return local.astimezone(UTC)

    def _later(self, moment: datetime, min_days: float, max_days: float) -> datetime:
        return self._business_time((moment + timedelta(days=self.rng.uniform(min_days, max_days))).date())

    def _at(self, moment: datetime, holding: _Holding, action: str, **extra: Any) -> None:
        if moment.date() <= self.end:
            heapq.heappush(self.queue, (moment, next(self.order), holding.index, action, extra))

    # --- recording ----------------------------------------------------------------------------------
    def _emit(self, moment: datetime, doc_type: DocType, grantors: list[str], grantees: list[str],
              holding: _Holding | None, *, parcels: list[dict[str, str]] | None = None,
              consideration: float | None = None, corrects: str | None = None,
              legal: str | None = None) -> dict[str, Any]:  # fmt: skip
        year = moment.astimezone(EASTERN).year
        self.numbers[year] = self.numbers.get(year, 0) + 1
        number = f"{year}-{self.numbers[year]:07d}"
        series = "mortgage" if doc_type in MORTGAGE_BOOK_TYPES else "deed"
        book, page = self.books[series]
        pages = self.rng.randint(2, 14)
        self.books[series] = [book + 1, 1] if page + pages > PAGES_PER_BOOK else [book, page + pages]
        parcels = parcels if parcels is not None else holding.parcels  # type: ignore[union-attr]
        digest = hashlib.sha256(f"landreg-synthetic/{self.seed}/{number}".encode()).hexdigest()
        return {
            "instrument_number": number,
            "book": str(book),
            "page": str(page),
            "recorded_at": moment,
            "doc_type": doc_type.value,
            "grantors": grantors,
            "grantees": grantees,
            "parcels": parcels,
            "consideration": None if consideration is None else Decimal(round(consideration)).quantize(Decimal("1.00")),
            "legal_description": legal if legal is not None else _legal_description(holding, parcels),
            "document_digest": digest,
            "corrects": corrects,
        }

    # --- names and money --------------------------------------------------------------------------
    def _person(self, last: str | None = None) -> str:
        middle = f" {self.rng.choice('ABCDEFGHJKLMNPRSTW')}." if self.rng.random() < 0.4 else ""
        return f"{self.rng.choice(FIRST)}{middle} {last or self.rng.choice(LAST)}{self.rng.choice(SUFFIXES)}"

    def _buyers(self, holding: _Holding) -> list[str]:
        r = self.rng.random()
        if holding.kind == "commercial" or r < 0.08:
            return [f"{self.rng.choice(STREETS)} {self.rng.choice(['HOLDINGS', 'REALTY', 'PROPERTIES'])} LLC"]
        if r < 0.12:
            trustee = self._person()
            return [f"{trustee}, TRUSTEE OF THE {trustee.split()[-1]} FAMILY TRUST"]
        if r < 0.62:
            last = self.rng.choice(LAST)
            return [self._person(last), self._person(last)]
        if r < 0.68:
            return [self._person(), self._person(), self._person()]
        return [self._person()]

    def _price(self, moment: datetime, holding: _Holding) -> float:
        years = (moment.date() - START).days / 365.25
        return holding.base_value * 1.038**years * self.rng.lognormvariate(0, 0.12)


class _Generator(_Scheduler):
    """The lives of the holdings, one event at a time, in recording order."""

    # --- running ----------------------------------------------------------------------------------
    def run(self) -> Iterator[dict[str, Any]]:
        if not self.holdings:
            self._populate(max(8, math.ceil(self.target / EVENTS_PER_HOLDING)))
        last = datetime.min.replace(tzinfo=UTC)
        while self.emitted < self.target:
            if not self.queue:  # a small book can outlive its holdings: more parcels come onto the market
                self._populate(math.ceil((self.target - self.emitted) / 2), last.date() + timedelta(days=1))
            moment, _, index, action, extra = heapq.heappop(self.queue)
            moment = max(moment, last + timedelta(seconds=1))  # one recording per second at most
            last = moment
            holding = self.holdings[index]
            instrument = getattr(self, f"_{action}")(moment, holding, **extra)
            if instrument is not None:
                self.emitted += 1
                yield instrument

    # --- actions ----------------------------------------------------------------------------------
    def _master_deed(self, moment: datetime, holding: _Holding, parcels: list[dict[str, str]],
                     developer: str) -> dict[str, Any]:  # fmt: skip
        legal = (f"ALL those condominium units in {holding.location.split(', UNIT')[0]}, Block {parcels[0]['block']}, "
                 f"Lot {parcels[0]['lot']}, Units C0001 through C{len(parcels):04d}, on the Tax Map of the "
                 f"{holding.municipality.name}, Bergen County, New Jersey, together with an undivided interest in "
                 "the common elements, as set forth in this Master Deed.")  # fmt: skip
        return self._emit(moment, DocType.MASTER_DEED, [developer], [developer], None, parcels=parcels, legal=legal)

    def _first_sale(self, moment: datetime, holding: _Holding) -> dict[str, Any]:
        holding.owners = self._buyers(holding)  # owners of record before the window opens
        return self._sale(moment, holding)

    def _sale(self, moment: datetime, holding: _Holding, sheriff: bool = False) -> dict[str, Any]:
        sellers = list(holding.owners) or [self._person()]
        buyers = self._buyers(holding)
        price = self._price(moment, holding)
        if sheriff:
            sellers = ["SHERIFF OF BERGEN COUNTY"]
            price *= 0.7
            holding.foreclosing = None
        elif self.rng.random() < 0.07:  # transfer within the family: nominal consideration
            buyers = [self._person(sellers[0].split()[-1])]
            price = self.rng.choice([1.0, 10.0, 100.0])
        elif self.rng.random() < 0.05:  # an estate sells
            sellers = [f"ESTATE OF {sellers[0]}", f"{self._person()}, EXECUTOR"]
        deed = self._emit(moment, DocType.DEED, sellers, buyers, holding, consideration=price)
        holding.owners = buyers
        for number, _holder in holding.mortgages:
            self._at(self._later(moment, 20, 120), holding, "satisfaction", number=number)
        holding.mortgages = []
        if price > 1000 and self.rng.random() < 0.78 and "LLC" not in buyers[0]:
            self._at(moment + timedelta(minutes=self.rng.randint(1, 30)), holding, "mortgage", amount=price * 0.8)
        if self.rng.random() < 0.012:
            self._at(self._later(moment, 30, 200), holding, "correction", deed=deed)
        self._schedule_life(moment, holding)
        return deed

    def _schedule_life(self, moment: datetime, holding: _Holding) -> None:
        r = self.rng.random()
        if r < 0.55:
            self._at(self._later(moment, 365 * 5, 365 * 14), holding, "sale")
        elif r < 0.85:
            self._at(self._later(moment, 365 * 3, 365 * 8), holding, "refinance")
        elif r < 0.92:
            self._at(self._later(moment, 365, 365 * 9), holding, "lien")
        elif r < 0.96:
            self._at(self._later(moment, 365, 365 * 10), holding, "easement")
        else:
            self._at(self._later(moment, 365 * 2, 365 * 9), holding, "lis_pendens")

    def _mortgage(self, moment: datetime, holding: _Holding, amount: float) -> dict[str, Any] | None:
        if not holding.owners:
            return None
        lender = self.rng.choice(LENDERS)
        mortgage = self._emit(moment, DocType.MORTGAGE, list(holding.owners), [lender], holding,
                              consideration=amount * self.rng.uniform(0.75, 1.1))  # fmt: skip
        holding.mortgages.append((mortgage["instrument_number"], lender))
        if self.rng.random() < 0.25:
            self._at(self._later(moment, 60, 900), holding, "assignment", number=mortgage["instrument_number"])
        return mortgage

    def _refinance(self, moment: datetime, holding: _Holding) -> dict[str, Any] | None:
        old = list(holding.mortgages)
        mortgage = self._mortgage(moment, holding, self._price(moment, holding) * 0.6)
        for number, _ in old:
            self._at(self._later(moment, 15, 90), holding, "satisfaction", number=number)
        holding.mortgages = [m for m in holding.mortgages if m not in old]
        self._schedule_life(moment, holding)
        return mortgage

    def _assignment(self, moment: datetime, holding: _Holding, number: str) -> dict[str, Any] | None:
        for i, (n, holder) in enumerate(holding.mortgages):
            if n == number:
                assignee = self.rng.choice([lender for lender in LENDERS if lender != holder])
                holding.mortgages[i] = (n, assignee)
                return self._emit(moment, DocType.ASSIGNMENT, [holder], [assignee], holding,
                                  legal=f"Assignment of the mortgage recorded as instrument {n}.")  # fmt: skip
        return None  # satisfied before it could be assigned

    def _satisfaction(self, moment: datetime, holding: _Holding, number: str) -> dict[str, Any]:
        holder = self.rng.choice(LENDERS)
        return self._emit(moment, DocType.SATISFACTION, [holder], list(holding.owners) or [self._person()], holding,
                          legal=f"Satisfaction of the mortgage recorded as instrument {number}.")  # fmt: skip

    def _lien(self, moment: datetime, holding: _Holding) -> dict[str, Any] | None:
        if not holding.owners:
            return None
        holder = self.rng.choice(LIENHOLDERS)
        lien = self._emit(moment, DocType.LIEN, list(holding.owners), [holder], holding,
                          consideration=self.rng.uniform(1_500, 60_000))  # fmt: skip
        holding.liens.append((lien["instrument_number"], holder))
        self._at(self._later(moment, 90, 900), holding, "lien_discharge")
        self._schedule_life(moment, holding)
        return lien

    def _lien_discharge(self, moment: datetime, holding: _Holding) -> dict[str, Any] | None:
        if not holding.liens:
            return None
        number, holder = holding.liens.pop(0)
        return self._emit(moment, DocType.DISCHARGE_OF_LIEN, [holder], list(holding.owners), holding,
                          legal=f"Discharge of the lien recorded as instrument {number}.")  # fmt: skip

    def _easement(self, moment: datetime, holding: _Holding) -> dict[str, Any] | None:
        if not holding.owners:
            return None
        utility = self.rng.choice(UTILITIES)
        easement = self._emit(moment, DocType.EASEMENT, list(holding.owners), [utility], holding, consideration=1.0,
                              legal=f"A ten-foot utility easement along the rear line of {holding.location}, "
                                    f"{holding.municipality.name}.")  # fmt: skip
        self._schedule_life(moment, holding)
        return easement

    def _lis_pendens(self, moment: datetime, holding: _Holding) -> dict[str, Any] | None:
        if not holding.mortgages or not holding.owners:
            self._schedule_life(moment, holding)
            return None
        lender = holding.mortgages[-1][1]
        holding.foreclosing = lender
        notice = self._emit(moment, DocType.LIS_PENDENS, [lender], list(holding.owners), holding,
                            legal=f"Notice of lis pendens: {lender} v. {holding.owners[0]}, et al., "
                                  "Superior Court of New Jersey, Chancery Division, Bergen County "
                                  f"(foreclosure of mortgage {holding.mortgages[-1][0]}).")  # fmt: skip
        self._at(self._later(moment, 300, 800), holding, "sale", sheriff=True)
        return notice

    def _correction(self, moment: datetime, holding: _Holding, deed: dict[str, Any]) -> dict[str, Any]:
        return self._emit(moment, DocType.CORRECTION, deed["grantors"], deed["grantees"], holding,
                          parcels=deed["parcels"], consideration=1.0, corrects=deed["instrument_number"],
                          legal="Corrective deed, recorded to correct the legal description of the deed recorded "
                                f"as instrument {deed['instrument_number']}. " + deed["legal_description"])  # fmt: skip


def _legal_description(holding: _Holding | None, parcels: list[dict[str, str]]) -> str:
    if holding is None:
        return ""
    lots = " and ".join(
        f"Lot {p['lot']}" + (f", Qualifier {p['qualifier']}" if p["qualifier"] else "") for p in parcels
    )
    return (
        f"ALL that certain lot, piece or parcel of land, with the buildings and improvements thereon, situate in the "
        f"{holding.municipality.name}, County of Bergen, State of New Jersey, known as {holding.location} and "
        f"designated as {lots} in Block {parcels[0]['block']} on the Tax Map of the "
        f"{holding.municipality.name}."
    )


# --- the book as a recorder system's CSV export (migration_tools/legacy/csv_export.py) ---------------
EXPORT_COLUMNS = {
    "documents.csv": ["doc_id", "instrument_number", "doc_type", "book", "page", "recorded_at", "consideration",
                      "legal_description", "document_sha256"],
    "parties.csv": ["doc_id", "role", "seq", "name", "address"],
    "parcels.csv": ["doc_id", "seq", "municipality_code", "block", "lot", "qualifier"],
    "xrefs.csv": ["doc_id", "ref_doc_id", "kind"],
}  # fmt: skip
MESS_EVERY = 500  # about one row in this many is damaged the way real exports are (messy=True)


def write_csv_export(folder: Path, instruments: int, seed: int = 2026, *, messy: bool = False) -> None:
    """The book as a ``landreg-export`` folder: ``doc_id`` D0000001 on, local times, one row per
    party and parcel, corrections as ``CORRECTS`` and satisfactions as ``SATISFIES`` cross-references.

    ``messy`` (also seeded) writes it as exports come: documents a little out of recording order,
    the child tables in no order of document (parties shuffled, parcels backwards), and about one
    row in ``MESS_EVERY`` damaged: a party or parcel of a document that does not exist, an unknown
    role or document type, a date that is not a date, a doc_id listed twice, a cross-reference to
    a document the export does not hold. The reader must give exactly the same records whatever
    the order; the damaged rows go to the quarantine."""
    rng = random.Random(f"{seed}/export")
    folder.mkdir(parents=True, exist_ok=True)
    tables: dict[str, list[list[str]]] = {name: [] for name in EXPORT_COLUMNS}
    doc_of: dict[str, str] = {}
    mortgage_on: dict[str, str] = {}  # a parcel's latest mortgage, which a satisfaction names
    for i, item in enumerate(BergenBook(instruments, seed=seed), start=1):
        doc = f"D{i:07d}"
        doc_of[item["instrument_number"]] = doc
        _export_rows(tables, doc, item, doc_of, mortgage_on, rng if messy else None)
    if messy:
        documents = tables["documents.csv"]
        for at in range(0, len(documents) - 1, 97):  # a few neighbours swapped: not quite recording order
            documents[at], documents[at + 1] = documents[at + 1], documents[at]
        rng.shuffle(tables["parties.csv"])
        tables["parcels.csv"].reverse()
    for name, columns in EXPORT_COLUMNS.items():
        with open(folder / name, "w", encoding="utf-8", newline="") as f:
            out = csv.writer(f)
            out.writerow(columns)
            out.writerows(tables[name])


def _export_rows(tables: dict[str, list[list[str]]], doc: str, item: dict[str, Any], doc_of: dict[str, str],
                 mortgage_on: dict[str, str], rng: random.Random | None) -> None:  # fmt: skip
    def damaged() -> bool:
        return rng is not None and rng.randrange(MESS_EVERY) == 0

    local = item["recorded_at"].astimezone(EASTERN).strftime("%Y-%m-%d %H:%M:%S")
    consideration = "" if item["consideration"] is None else f"${item['consideration']:,}"
    row = [doc, item["instrument_number"], item["doc_type"], item["book"], item["page"], local, consideration,
           item["legal_description"], item["document_digest"]]  # fmt: skip
    if damaged():
        row[2] = "GIFT OF LAND"  # an unknown document type
    if damaged():
        row[5] = "the day after"
    if damaged() and tables["documents.csv"]:
        row[0] = tables["documents.csv"][-1][0]  # a doc_id listed twice: this one's parties become orphans
    tables["documents.csv"].append(row)
    for role, names in (("GRANTOR", item["grantors"]), ("GRANTEE", item["grantees"])):
        for seq, name in enumerate(names, start=1):
            address = f"{seq} MAIN ST\nHACKENSACK NJ 07601" if role == "GRANTEE" and seq % 2 else ""
            tables["parties.csv"].append([doc + ("X" if damaged() else ""), "BUYER" if damaged() else role, str(seq),
                                          name, address])  # fmt: skip
    key = "_".join(item["parcels"][0].values())
    for seq, p in enumerate(item["parcels"], start=1):
        tables["parcels.csv"].append([doc + ("X" if damaged() else ""), str(seq), p["municipality_code"].lstrip("0"),
                                      p["block"], p["lot"], p["qualifier"]])  # fmt: skip
    if item["corrects"]:
        tables["xrefs.csv"].append([doc, doc_of[item["corrects"]], "CORRECTS"])
    if item["doc_type"] == DocType.MORTGAGE.value:
        mortgage_on[key] = doc
    elif item["doc_type"] == DocType.SATISFACTION.value and key in mortgage_on:
        tables["xrefs.csv"].append([doc, mortgage_on[key] + ("X" if damaged() else ""), "SATISFIES"])
