"""Legacy recorder databases for the tests, on the local MariaDB and PostgreSQL servers.

``LegacyServer`` makes a throwaway database on one server; ``ACRIS``, ``EXPORT`` and ``RENAMED``
hold each layout's tables and hand-written rows, one document per kind of real-world messiness,
with the record each must become written out beside it (``EXPECTED``), and malformed documents
with the reason each is quarantined for (``MALFORMED``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import create_engine, text

MARIADB_ADMIN = os.environ.get("LANDREG_TEST_MARIADB_URL", "mysql+mysqldb://root@127.0.0.1:3306/test")
POSTGRES_ADMIN = os.environ.get("LANDREG_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SERVERS = {"mariadb": MARIADB_ADMIN, "postgres": POSTGRES_ADMIN}


class LegacyServer:
    """A database of its own on one of the local servers, dropped afterwards."""

    def __init__(self, kind: str):
        self.kind = kind
        self.admin_url = SERVERS[kind]
        self.name = f"legacy_{uuid.uuid4().hex[:10]}"
        self.url = self.admin_url.rsplit("/", 1)[0] + "/" + self.name

    def create(self) -> LegacyServer:
        admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(f"CREATE DATABASE {self.name}")
        except Exception as exc:  # the server is not there: loud skip, or a failure on CI
            message = f"{self.kind} at {self.admin_url} is unreachable ({exc.__class__.__name__}: {exc})"
            if os.environ.get("LANDREG_REQUIRE_POSTGRES"):
                pytest.fail(message + " and LANDREG_REQUIRE_POSTGRES is set (CI runs both servers)")
            pytest.skip(message)
        finally:
            admin.dispose()
        return self

    def drop(self) -> None:
        admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            force = " WITH (FORCE)" if self.kind == "postgres" else ""
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {self.name}{force}")
        admin.dispose()

    @contextmanager
    def connect(self) -> Iterator[Any]:
        engine = create_engine(self.url)
        try:
            with engine.begin() as conn:
                yield conn
        finally:
            engine.dispose()

    def load(self, schema: Schema) -> None:
        with self.connect() as conn:
            for ddl in schema.ddl:
                conn.exec_driver_sql(ddl)
            for table, rows in schema.rows.items():
                if rows:
                    cols = list(rows[0])
                    conn.execute(text(f"INSERT INTO {table} ({', '.join(cols)}) VALUES "
                                      f"({', '.join(':' + c for c in cols)})"), rows)  # fmt: skip

    def execute(self, sql: str, **params: Any) -> None:
        with self.connect() as conn:
            conn.execute(text(sql), params)


@dataclass
class Schema:
    ddl: list[str]
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


# --- ACRIS: New York City's tables as published (headers lower-cased, no spaces) ------------------------
ACRIS_DDL = [
    "CREATE TABLE acris_master (documentid VARCHAR(20), recordtype CHAR(1), crfn VARCHAR(13), borough VARCHAR(2), "
    "doctype VARCHAR(10), docdate VARCHAR(12), docamount DECIMAL(16,2), recordedfiled VARCHAR(24), "
    "modifieddate VARCHAR(24), reelyear INTEGER, reelnbr INTEGER, reelpage INTEGER, pcttransferred DECIMAL(5,2), "
    "goodthroughdate VARCHAR(12))",
    "CREATE TABLE acris_legals (documentid VARCHAR(20), recordtype CHAR(1), borough VARCHAR(2), block INTEGER, "
    "lot INTEGER, easement CHAR(1), partiallot CHAR(1), airrights CHAR(1), subterraneanrights CHAR(1), "
    "propertytype VARCHAR(4), streetnumber VARCHAR(12), streetname VARCHAR(40), unit VARCHAR(8), "
    "goodthroughdate VARCHAR(12))",
    "CREATE TABLE acris_parties (documentid VARCHAR(20), recordtype CHAR(1), partytype VARCHAR(2), name VARCHAR(80), "
    "address1 VARCHAR(60), address2 VARCHAR(60), country VARCHAR(4), city VARCHAR(30), state VARCHAR(4), "
    "zip VARCHAR(10), goodthroughdate VARCHAR(12))",
    "CREATE TABLE acris_references (documentid VARCHAR(20), recordtype CHAR(1), referencebycrfn VARCHAR(13), "
    "referencebydocid VARCHAR(20), referencebyreelyear INTEGER, referencebyreelborough VARCHAR(2), "
    "referencebyreelnbr INTEGER, referencebyreelpage INTEGER, goodthroughdate VARCHAR(12))",
]
GOOD = "12/31/2025"


def master(doc: str, crfn: str, doctype: str, recorded: str, amount: str | None = "0", *, docdate: str = "",
           reel: tuple[int, int, int] = (0, 0, 0), borough: str = "1", modified: str = "") -> dict[str, Any]:  # fmt: skip
    return {"documentid": doc, "recordtype": "A", "crfn": crfn, "borough": borough, "doctype": doctype,
            "docdate": docdate, "docamount": None if amount is None else Decimal(amount), "recordedfiled": recorded,
            "modifieddate": modified or recorded, "reelyear": reel[0], "reelnbr": reel[1], "reelpage": reel[2],
            "pcttransferred": Decimal("100"), "goodthroughdate": GOOD}  # fmt: skip


def legal(doc: str, block: int, lot: int, *, borough: str = "1", unit: str = "", number: str = "", street: str = "",
          partial: str = "E") -> dict[str, Any]:  # fmt: skip
    return {"documentid": doc, "recordtype": "L", "borough": borough, "block": block, "lot": lot, "easement": "N",
            "partiallot": partial, "airrights": "N", "subterraneanrights": "N", "propertytype": "D4",
            "streetnumber": number, "streetname": street, "unit": unit, "goodthroughdate": GOOD}  # fmt: skip


def party(doc: str, kind: str, name: str, address: str = "") -> dict[str, Any]:
    return {"documentid": doc, "recordtype": "P", "partytype": kind, "name": name, "address1": address,
            "address2": "", "country": "US" if address else "", "city": "NEW YORK" if address else "",
            "state": "NY" if address else "", "zip": "", "goodthroughdate": GOOD}  # fmt: skip


def reference(doc: str, *, crfn: str = "", docid: str = "", reel: tuple[int, str, int, int] | None = None) -> dict:
    year, borough, nbr, page = reel or (0, "", 0, 0)
    return {"documentid": doc, "recordtype": "X", "referencebycrfn": crfn, "referencebydocid": docid,
            "referencebyreelyear": year or None, "referencebyreelborough": borough, "referencebyreelnbr": nbr or None,
            "referencebyreelpage": page or None, "goodthroughdate": GOOD}  # fmt: skip


# One document per kind of messiness in the published data (../shared/reference/acris_layout.md)
ACRIS_GOOD = {
    # names in LAST, FIRST and FIRST LAST order; a company; blank and filled addresses; a time of day
    "2019010400123001": (
        [
            master(
                "2019010400123001",
                "2019000004567",
                "DEED",
                "01/04/2019 10:15:32 AM",
                "1250000.00",
                docdate="12/20/2018",
            )
        ],  # fmt: skip
        [legal("2019010400123001", 1234, 56, number="100", street="WEST 86 STREET")],
        [
            party("2019010400123001", "1", "TAYLOR, EMILY", "100 WEST 86 STREET"),
            party("2019010400123001", "2", "JOHN SMITH"),
            party("2019010400123001", "2", "BLUE HARBOR HOLDINGS, LLC"),
        ],
        [],
    ),
    # suffixes on either side of the comma; a bank with a comma in its name; a mortgage
    "2019011000200002": (
        [master("2019011000200002", "2019000008899", "MTGE", "01/10/2019", "800000")],
        [legal("2019011000200002", 1234, 56, number="100", street="WEST 86 STREET")],
        [
            party("2019011000200002", "1", "SMITH JR, JOHN"),
            party("2019011000200002", "1", "O'BRIEN, MARY, III"),
            party("2019011000200002", "2", "WELLS FARGO BANK, N.A."),
        ],
        [],
    ),
    # one document on several lots, one of them listed twice (entire and partial)
    "2019020100300003": (
        [master("2019020100300003", "2019000011111", "DEED", "02/01/2019", "2400000")],
        [
            legal("2019020100300003", 2001, 10, borough="3"),
            legal("2019020100300003", 2001, 11, borough="3"),
            legal("2019020100300003", 2001, 10, borough="3", partial="P"),
            legal("2019020100300003", 87, 1, borough="3"),
        ],
        [
            party("2019020100300003", "1", "ATLANTIC YARDS DEVELOPMENT CORP."),
            party("2019020100300003", "2", "KIM, MIN-JUN"),
        ],
        [],
    ),
    # condominium units: each unit a lot of its own
    "2019030500400004": (
        [master("2019030500400004", "2019000022222", "DEED", "03/05/2019", "975000")],
        [
            legal("2019030500400004", 1500, 1001, unit="4A", number="20", street="RIVERSIDE BOULEVARD"),
            legal("2019030500400004", 1500, 1002, unit="4B", number="20", street="RIVERSIDE BOULEVARD"),
        ],
        [
            party("2019030500400004", "1", "RIVERSIDE TOWERS CONDOMINIUM LLC"),
            party("2019030500400004", "2", "PATEL, PRIYA"),
        ],
        [],
    ),
    # an empty document date, an amount of 0, a reference to a document not in the extract
    "2019040200500005": (
        [master("2019040200500005", "2019000033333", "SAT", "04/02/2019", "0", docdate="")],
        [legal("2019040200500005", 1234, 56)],
        [party("2019040200500005", "1", "WELLS FARGO BANK, N.A."), party("2019040200500005", "2", "TAYLOR, EMILY")],
        [reference("2019040200500005", crfn="2015000099999")],
    ),
    # case and whitespace variations in codes, keys and names; party type 3 (neither side)
    "2019050600600006": (
        [master("2019050600600006", "2019000044444", " deed ", "05/06/2019", "650000.00", borough=" 1 ")],
        [legal(" 2019050600600006", 1234, 57, borough=" 1")],
        [
            party("2019050600600006 ", " 1", "  GARCIA,   MARIA  "),
            party("2019050600600006", "2 ", "lee, david"),
            party("2019050600600006", "3", "FIRST AMERICAN TITLE INSURANCE CO"),
        ],
        [],
    ),
    # a reel-era document: no CRFN, so its document id is its number; book and page from the reel
    "FT_1980000012345": (
        [master("FT_1980000012345", "0", "DEED", "06/17/1980", "85000", reel=(1980, 512, 1044))],
        [legal("FT_1980000012345", 1234, 56)],
        [party("FT_1980000012345", "1", "HOROWITZ, SAMUEL"), party("FT_1980000012345", "2", "TAYLOR, ROBERT")],
        [reference("FT_1980000012345", reel=(1975, "1", 301, 12))],
    ),
}

# What each document must become, written from the layout and the profile's rules alone
ACRIS_EXPECTED = {
    "2019010400123001": {
        "instrument_number": "2019000004567", "doc_type": "DEED", "book": "0", "page": "0",
        "recorded_at": "2019-01-04T15:15:32Z", "grantors": ["EMILY TAYLOR"],
        "grantees": ["BLUE HARBOR HOLDINGS, LLC", "JOHN SMITH"], "parcels": ["1-01234-0056"],
        "consideration_cents": 125000000, "legal_description": "Block 1234, Lot 56: 100 WEST 86 STREET",
        "corrects": None,
    },
    "2019011000200002": {
        "instrument_number": "2019000008899", "doc_type": "MORTGAGE", "book": "0", "page": "0",
        "recorded_at": "2019-01-10T17:00:00Z", "grantors": ["JOHN SMITH JR", "MARY O'BRIEN III"],
        "grantees": ["WELLS FARGO BANK, N.A."], "parcels": ["1-01234-0056"], "consideration_cents": 80000000,
        "legal_description": "Block 1234, Lot 56: 100 WEST 86 STREET", "corrects": None,
    },
    "2019020100300003": {
        "instrument_number": "2019000011111", "doc_type": "DEED", "book": "0", "page": "0",
        "recorded_at": "2019-02-01T17:00:00Z", "grantors": ["ATLANTIC YARDS DEVELOPMENT CORP."],
        "grantees": ["MIN-JUN KIM"], "parcels": ["3-00087-0001", "3-02001-0010", "3-02001-0011"],
        "consideration_cents": 240000000,
        "legal_description": "Block 87, Lot 1\nBlock 2001, Lot 10\nBlock 2001, Lot 11", "corrects": None,
    },
    "2019030500400004": {
        "instrument_number": "2019000022222", "doc_type": "DEED", "book": "0", "page": "0",
        "recorded_at": "2019-03-05T17:00:00Z", "grantors": ["RIVERSIDE TOWERS CONDOMINIUM LLC"],
        "grantees": ["PRIYA PATEL"], "parcels": ["1-01500-1001", "1-01500-1002"], "consideration_cents": 97500000,
        "legal_description": "Block 1500, Lot 1001, Unit 4A: 20 RIVERSIDE BOULEVARD\n"
                             "Block 1500, Lot 1002, Unit 4B: 20 RIVERSIDE BOULEVARD",
        "corrects": None,
    },
    "2019040200500005": {
        "instrument_number": "2019000033333", "doc_type": "SATISFACTION", "book": "0", "page": "0",
        "recorded_at": "2019-04-02T16:00:00Z", "grantors": ["WELLS FARGO BANK, N.A."], "grantees": ["EMILY TAYLOR"],
        "parcels": ["1-01234-0056"], "consideration_cents": None,
        "legal_description": "Block 1234, Lot 56\nReferences: CRFN 2015000099999", "corrects": None,
    },
    "2019050600600006": {
        "instrument_number": "2019000044444", "doc_type": "DEED", "book": "0", "page": "0",
        "recorded_at": "2019-05-06T16:00:00Z", "grantors": ["MARIA GARCIA"], "grantees": ["david lee"],
        "parcels": ["1-01234-0057"], "consideration_cents": 65000000, "legal_description": "Block 1234, Lot 57",
        "corrects": None,
    },
    "FT_1980000012345": {
        "instrument_number": "FT_1980000012345", "doc_type": "DEED", "book": "512", "page": "1044",
        "recorded_at": "1980-06-17T16:00:00Z", "grantors": ["SAMUEL HOROWITZ"], "grantees": ["ROBERT TAYLOR"],
        "parcels": ["1-01234-0056"], "consideration_cents": 8500000,
        "legal_description": "Block 1234, Lot 56\nReferences: reel 1975/1/301/12", "corrects": None,
    },
}  # fmt: skip

# Malformed documents: each quarantined with the column and reason given; the sync goes on
ACRIS_BAD = {
    "2019060100700007": (  # a recording date that is no date
        [master("2019060100700007", "2019000055555", "DEED", "13/45/2019", "100")],
        [legal("2019060100700007", 1, 1)], [party("2019060100700007", "1", "A, B"), party("2019060100700007", "2", "C, D")], [],
    ),
    "2019060200800008": (  # a document type the city's code table does not know
        [master("2019060200800008", "2019000066666", "ZZZZ", "06/02/2019", "100")],
        [legal("2019060200800008", 1, 1)], [party("2019060200800008", "1", "A, B"), party("2019060200800008", "2", "C, D")], [],
    ),
    "2019060300900009": (  # a parcel outside the city (there is no borough 6)
        [master("2019060300900009", "2019000077777", "DEED", "06/03/2019", "100")],
        [legal("2019060300900009", 1, 1, borough="6")], [party("2019060300900009", "1", "A, B"), party("2019060300900009", "2", "C, D")], [],
    ),
    "2019060401000010": (  # parties of a document that is not in the master table
        [], [], [party("2019060401000010", "1", "ORPHAN, ONE"), party("2019060401000010", "2", "ORPHAN, TWO")], [],
    ),
    "2019060501100011": (  # an empty recording date
        [master("2019060501100011", "2019000088888", "DEED", "", "100")],
        [legal("2019060501100011", 1, 1)], [party("2019060501100011", "1", "A, B"), party("2019060501100011", "2", "C, D")], [],
    ),
    "2019060601200012": (  # a deed that names nobody it conveys to
        [master("2019060601200012", "2019000099999", "DEED", "06/06/2019", "100")],
        [legal("2019060601200012", 1, 1)], [party("2019060601200012", "1", "A, B")], [],
    ),
}  # fmt: skip
ACRIS_QUARANTINE = {  # key -> (field, a phrase of the reason)
    "2019060100700007": ("recordedfiled", "is not a date"),
    "2019060200800008": ("doctype", "unknown document type 'ZZZZ'"),
    "2019060300900009": ("parcels[0].borough", "not a borough of New York City"),
    "2019060401000010": ("documentid", "no such document in acris_master"),
    "2019060501100011": ("recordedfiled", "the recording date is empty"),
    "2019060601200012": ("grantees", "No grantee is given"),
}


def acris_schema(documents: dict[str, tuple] | None = None) -> Schema:
    docs = documents if documents is not None else {**ACRIS_GOOD, **ACRIS_BAD}
    rows: dict[str, list[dict[str, Any]]] = {"acris_master": [], "acris_legals": [], "acris_parties": [],
                                             "acris_references": []}  # fmt: skip
    for m, legals, parties, refs in docs.values():
        rows["acris_master"] += m
        rows["acris_legals"] += legals
        rows["acris_parties"] += parties
        rows["acris_references"] += refs
    return Schema(ACRIS_DDL, rows)


# --- the landreg multi-table export, as database tables (Bergen County) -----------------------------------
EXPORT_DDL = [
    "CREATE TABLE documents (doc_id VARCHAR(20) PRIMARY KEY, instrument_number VARCHAR(24), doc_type VARCHAR(30), "
    "book VARCHAR(6), page VARCHAR(6), recorded_at VARCHAR(24), consideration VARCHAR(20), "
    "legal_description TEXT, document_sha256 VARCHAR(64))",
    "CREATE TABLE parties (doc_id VARCHAR(20), role VARCHAR(12), seq INTEGER, name VARCHAR(120), address VARCHAR(120))",
    "CREATE TABLE parcels (doc_id VARCHAR(20), seq INTEGER, municipality_code VARCHAR(4), block VARCHAR(12), "
    "lot VARCHAR(12), qualifier VARCHAR(10))",
    "CREATE TABLE xrefs (doc_id VARCHAR(20), ref_doc_id VARCHAR(20), kind VARCHAR(12))",
    "CREATE INDEX ix_parties_doc ON parties (doc_id)",
    "CREATE INDEX ix_parcels_doc ON parcels (doc_id)",
]


def export_schema() -> Schema:
    sha = "ab" * 32
    docs = [
        {
            "doc_id": "D-1",
            "instrument_number": "2001-0000001",
            "doc_type": "Bargain and Sale Deed",
            "book": "07001",
            "page": "0012",
            "recorded_at": "2001-03-02 10:30:00",
            "consideration": "$350,000.00",
            "legal_description": "ALL that certain lot...\nsituate in Hackensack",
            "document_sha256": sha,
        },
        {
            "doc_id": "D-2",
            "instrument_number": "2001-0000002",
            "doc_type": "MTG",
            "book": "20001",
            "page": "4",
            "recorded_at": "03/02/2001 10:45",
            "consideration": "280000",
            "legal_description": "",
            "document_sha256": sha,
        },
        {
            "doc_id": "D-3",
            "instrument_number": "2001-0000003",
            "doc_type": "CORRECTIVE DEED",
            "book": "7001",
            "page": "30",
            "recorded_at": "2001-04-11",
            "consideration": "1.00",
            "legal_description": "Corrected lot",
            "document_sha256": sha,
        },
        {
            "doc_id": "D-4",
            "instrument_number": "2001-0000004",
            "doc_type": "TIMBER RIGHTS",
            "book": "7001",
            "page": "40",
            "recorded_at": "2001-04-12",
            "consideration": "",
            "legal_description": "",
            "document_sha256": sha,
        },
    ]
    parties = [
        {"doc_id": "D-1", "role": "GRANTOR", "seq": 1, "name": "SMITH, JOHN Q., JR.", "address": ""},
        {"doc_id": "D-1", "role": "GRANTEE", "seq": 2, "name": "MARÍA GARCÍA", "address": "1 MAIN ST"},
        {"doc_id": "D-1", "role": "GRANTEE", "seq": 1, "name": "GARCIA, LUIS", "address": ""},
        {"doc_id": "D-2", "role": "MORTGAGOR", "seq": 1, "name": "GARCIA, LUIS", "address": ""},
        {"doc_id": "D-2", "role": "MORTGAGEE", "seq": 1, "name": "VALLEY NATIONAL BANK", "address": ""},
        {"doc_id": "D-3", "role": "1", "seq": 1, "name": "SMITH, JOHN Q., JR.", "address": ""},
        {"doc_id": "D-3", "role": "2", "seq": 1, "name": "GARCIA, LUIS", "address": ""},
        {"doc_id": "D-4", "role": "1", "seq": 1, "name": "A", "address": ""},
        {"doc_id": "D-4", "role": "2", "seq": 1, "name": "B", "address": ""},
        {"doc_id": "D-9", "role": "GRANTOR", "seq": 1, "name": "NOBODY", "address": ""},  # orphan
    ]
    parcels = [
        {"doc_id": "D-1", "seq": 1, "municipality_code": "223", "block": "100.01", "lot": "5", "qualifier": ""},
        {"doc_id": "D-2", "seq": 1, "municipality_code": "0223", "block": "100.01", "lot": "5", "qualifier": ""},
        {"doc_id": "D-3", "seq": 1, "municipality_code": "0223", "block": "100.01", "lot": "5", "qualifier": ""},
        {"doc_id": "D-4", "seq": 1, "municipality_code": "0223", "block": "7", "lot": "1", "qualifier": ""},
    ]
    xrefs = [{"doc_id": "D-3", "ref_doc_id": "D-1", "kind": "CORRECTS"}]
    return Schema(EXPORT_DDL, {"documents": docs, "parties": parties, "parcels": parcels, "xrefs": xrefs})


EXPORT_EXPECTED = {  # instrument number -> what landreg holds
    "2001-0000001": {"doc_type": "DEED", "book": "7001", "page": "12", "grantors": ["JOHN Q. SMITH JR."],
                     "grantees": ["LUIS GARCIA", "MARÍA GARCÍA"], "parcels": ["0223_100.01_5"],
                     "consideration_cents": 35000000, "recorded_at": "2001-03-02T15:30:00Z", "corrects": None},
    "2001-0000002": {"doc_type": "MORTGAGE", "book": "20001", "page": "4", "grantors": ["LUIS GARCIA"],
                     "grantees": ["VALLEY NATIONAL BANK"], "parcels": ["0223_100.01_5"],
                     "consideration_cents": 28000000, "recorded_at": "2001-03-02T15:45:00Z", "corrects": None},
    "2001-0000003": {"doc_type": "CORRECTION", "book": "7001", "page": "30", "grantors": ["JOHN Q. SMITH JR."],
                     "grantees": ["LUIS GARCIA"], "parcels": ["0223_100.01_5"], "consideration_cents": 100,
                     "recorded_at": "2001-04-11T16:00:00Z", "corrects": "2001-0000001"},
}  # fmt: skip
EXPORT_QUARANTINE = {"D-4": ("doc_type", "unknown document type 'TIMBER RIGHTS'"),
                     "D-9": ("doc_id", "no such document in documents")}  # fmt: skip


# --- a county of its own: other table and column names, typed columns; from a layout file alone --------
RENAMED_DDL = [
    "CREATE TABLE rec_index (inst_id INTEGER PRIMARY KEY, inst_no VARCHAR(24), kind VARCHAR(8), rec_date DATE, "
    "rec_time VARCHAR(8), liber VARCHAR(6), folio VARCHAR(6), price DECIMAL(14,2), img_sha VARCHAR(64), "
    "descr TEXT)",
    "CREATE TABLE rec_names (inst_id INTEGER, side CHAR(1), ord INTEGER, full_name VARCHAR(120))",
    "CREATE TABLE rec_lots (inst_id INTEGER, twp VARCHAR(4), blk VARCHAR(12), lt VARCHAR(12), qual VARCHAR(10))",
]
RENAMED_LAYOUT = """
format = "landreg-legacy-layout/v1"
name = "county-x"
title = "County X recorder system (rec_index, rec_names, rec_lots)"
jurisdiction = "bergen"

[documents]
table = "rec_index"
key = "inst_id"

[documents.fields]
instrument_number = "inst_no"
doc_type = { column = "kind", upper = true }
recorded_at = { column = "rec_date", date_only_at = "09:00" }
book = "liber"
page = "folio"
consideration = { column = "price", zero_is_none = true }
document_digest = "img_sha"

[legal_description]
column = "descr"

[parties]
table = "rec_names"
key = "inst_id"
order_by = ["ord"]
name = { column = "full_name", order = "as-written" }
role = { column = "side", map = { G = "grantor", E = "grantee" } }

[parcels]
table = "rec_lots"
key = "inst_id"

[parcels.fields]
municipality_code = { column = "twp", pad = 4 }
block = "blk"
lot = "lt"
qualifier = "qual"

[doc_types.by_code]
WD = "DEED"
MTG = "MORTGAGE"
"""


def renamed_schema() -> Schema:
    from datetime import date

    return Schema(RENAMED_DDL, {
        "rec_index": [
            {"inst_id": 7, "inst_no": "X-2010-7", "kind": "wd", "rec_date": date(2010, 5, 3), "rec_time": "",
             "liber": "12", "folio": "345", "price": Decimal("410000.00"), "img_sha": "cd" * 32, "descr": "Lot 9"},
            {"inst_id": 8, "inst_no": "X-2010-8", "kind": "MTG", "rec_date": date(2010, 5, 3), "rec_time": "",
             "liber": "88", "folio": "1", "price": Decimal("0.00"), "img_sha": "cd" * 32, "descr": ""},
        ],
        "rec_names": [
            {"inst_id": 7, "side": "G", "ord": 2, "full_name": "DOE, JANE"},
            {"inst_id": 7, "side": "G", "ord": 1, "full_name": "DOE, JOHN"},
            {"inst_id": 7, "side": "E", "ord": 1, "full_name": "ROE, RICHARD"},
            {"inst_id": 8, "side": "G", "ord": 1, "full_name": "ROE, RICHARD"},
            {"inst_id": 8, "side": "E", "ord": 1, "full_name": "LAKELAND BANK"},
        ],
        "rec_lots": [{"inst_id": 7, "twp": "201", "blk": "12", "lt": "3", "qual": ""},
                     {"inst_id": 8, "twp": "201", "blk": "12", "lt": "3", "qual": ""}],
    })  # fmt: skip


RENAMED_EXPECTED = {
    "X-2010-7": {"doc_type": "DEED", "grantors": ["DOE, JOHN", "DOE, JANE"], "grantees": ["ROE, RICHARD"],
                 "parcels": ["0201_12_3"], "consideration_cents": 41000000, "recorded_at": "2010-05-03T13:00:00Z",
                 "book": "12", "page": "345"},
    "X-2010-8": {"doc_type": "MORTGAGE", "grantors": ["ROE, RICHARD"], "grantees": ["LAKELAND BANK"],
                 "parcels": ["0201_12_3"], "consideration_cents": None, "recorded_at": "2010-05-03T13:00:00Z",
                 "book": "88", "page": "1"},
}  # fmt: skip
