"""Legacy readers against hostile bytes: digits are ASCII digits only, a bad line is quarantined
(never fatal), and loaded + quarantined always equals the records read; the proof-bundle parser
either parses or raises ``MalformedBundle``."""

from __future__ import annotations

import ast
import copy
import csv
import functools
import itertools
import json
import re
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybrid_store.core import bundle as bundles
from hybrid_store.errors import MalformedBundle
from migration_tools.legacy import csv_export, sr1a
from migration_tools.legacy.importer import SourceRecord, import_records
from tests.conftest import NOW, REPO, make_sqlite
from tests.test_legacy_import import deeds, quarantine_rows, write_export

SHA = "ab" * 32


# --- the reported case and its relatives ------------------------------------------------------------
def test_a_latin1_superscript_in_the_sr1a_price_quarantines_its_line(db, tmp_path):
    good = [sr1a.format_line(r).encode("latin-1") for r in deeds(3)]
    bad = good[1][:40] + b"\xb2" + good[1][41:]  # '²' in the price: str.isdigit() says yes, int() says no
    path = tmp_path / "sr1a.txt"
    path.write_bytes(b"\n".join([good[0], bad, good[2]]) + b"\n")
    report = import_records(
        db, sr1a.read(path, date_order="MMDDYY", pivot=30), name="sr1a", quarantine=tmp_path / "q.csv", now=NOW
    )
    assert (report.records, report.loaded, report.quarantined) == (3, 2, 1)
    [row] = quarantine_rows(tmp_path / "q.csv")
    assert (row["where"], row["column"], row["field"]) == ("line 2", "38-46", "38-46")
    assert "reported_sales_price" in row["reason"] and "²" in row["reason"]


@pytest.mark.parametrize("price", ["0000١٢٣٤٥", "000012³45", "\xa0\xa00012345", "0001_2345", "-00012345"])
def test_sr1a_price_takes_ascii_digits_only(price):
    line = sr1a.format_line(deeds(1)[0])
    rec = sr1a.parse_line(line[:37] + price + line[46:], 1, date_order="MMDDYY", pivot=30)
    assert rec.data is None and rec.column == "38-46" and "is not a number" in rec.problem


@pytest.mark.parametrize("text", ["٠٣٠٢٢٤", "03022٤", "0302²4", "0302 4", "03_224"])
def test_sr1a_dates_take_ascii_digits_only(text):
    with pytest.raises(ValueError, match="not 6 digits"):
        sr1a.parse_date(text, "MMDDYY", 30)


def csv_export_of(folder, bad: dict[int, tuple[int, str]], bad_seq: int | None = None) -> None:
    """Documents D1..D6 with one grantor and one grantee each; ``bad`` puts a value in a column of a document."""
    documents = [[f"D{n}", f"2001-000000{n}", "DEED", "1", str(n), "2001-03-02", "100", "", SHA] for n in range(1, 7)]
    for n, (column, value) in bad.items():
        documents[n - 1][column] = value
    parties = [[f"D{n}", role, "1", f"{role}{n}", ""] for n in range(1, 7) for role in ("GRANTOR", "GRANTEE")]
    if bad_seq is not None:
        parties[2 * (bad_seq - 1)][2] = "²"
    parcels = [[f"D{n}", "1", "0223", "1", str(n), ""] for n in range(1, 7)]
    write_export(folder, documents, parties, parcels, [])


def test_csv_amounts_dates_and_seq_take_ascii_digits_only(db, tmp_path):
    csv_export_of(tmp_path / "export", {2: (6, "١٠٠"), 3: (5, "٢٠٠١-03-02"), 4: (6, "1_000")}, bad_seq=5)
    report = import_records(
        db, csv_export.read(tmp_path / "export"), name="csv", quarantine=tmp_path / "q.csv", now=NOW
    )
    assert (report.records, report.loaded, report.quarantined) == (6, 3, 3)  # '²' as seq only orders the parties
    rows = {r["where"]: r for r in quarantine_rows(tmp_path / "q.csv")}
    assert rows["documents.csv row 3 (doc_id D2)"]["column"] == "consideration"
    assert rows["documents.csv row 4 (doc_id D3)"]["column"] == "recorded_at"
    assert rows["documents.csv row 5 (doc_id D4)"]["column"] == "consideration"


def test_csv_a_byte_that_is_not_utf8_quarantines_its_document(db, tmp_path):
    csv_export_of(tmp_path / "export", {})
    path = tmp_path / "export" / "parties.csv"
    path.write_bytes(path.read_bytes().replace(b"GRANTEE5", b"GRANT\xc9E5"))  # latin-1 \xc9, not UTF-8
    report = import_records(
        db, csv_export.read(tmp_path / "export"), name="csv", quarantine=tmp_path / "q.csv", now=NOW
    )
    assert (report.records, report.loaded, report.quarantined) == (6, 5, 1)
    [row] = quarantine_rows(tmp_path / "q.csv")
    assert (row["where"], row["field"]) == ("documents.csv row 6 (doc_id D5)", "grantees[0]")
    assert "U+FFFD" in row["reason"]


def test_a_lone_surrogate_in_a_records_raw_text_does_not_abort_the_load(db, tmp_path):
    source = [SourceRecord("record 1", "GARC\udccdA", problem="not UTF-8", column="name")]
    report = import_records(db, source, name="x", quarantine=tmp_path / "q.csv", now=NOW)
    assert (report.records, report.quarantined) == (1, 1)
    assert quarantine_rows(tmp_path / "q.csv")[0]["raw"] == "GARC\\udccdA"


# --- fuzzing the readers ----------------------------------------------------------------------------
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# bytes that break naive readers: latin-1 digits that isdigit() accepts (and int() refuses), the UTF-8
# of other scripts' digits; NBSP, NEL, NUL, form feed, line ends, what int()/Decimal() also accept,
# quotes and commas, a byte-order mark, bytes that are never UTF-8 and a truncated UTF-8 sequence
LATIN1_DIGITS = [b"\xb2", b"\xb3", b"\xb9", b"\xbc"]  # ² ³ ¹ ¼
OTHER = ["٣".encode(), "²".encode(), "١٢".encode(), b"\xa0", b"\x85", b"\x00", b"\x0c", b"\r", b"\n", b"\r\n", b" ",
         b"_", b"-", b"+", b".", b"e", b'"', b",", b"\xef\xbb\xbf", b"\xff", b"\xc3"]  # fmt: skip
PIECES = st.sampled_from(LATIN1_DIGITS) | st.sampled_from(OTHER) | st.binary(min_size=1, max_size=3)
# 0-based [start, end) of the SR1A fields the reader parses: county/district, price, book/page/dates, block/lot
SR1A_HOT = [(0, 4), (37, 46), (328, 350), (350, 368), (369, 392), (619, 624)]


@st.composite
def mutated(draw, data: bytes, hot: list[tuple[int, int]]) -> bytes:
    """``data`` with up to three bytes-level edits, most of them inside the ``hot`` spans."""
    for _ in range(draw(st.integers(0, 3))):
        lo, hi = draw(st.sampled_from(hot)) if draw(st.integers(0, 3)) else (0, len(data))
        at = draw(st.integers(min(lo, len(data)), min(hi, len(data))))
        piece = draw(PIECES)
        op = draw(st.sampled_from(["replace", "replace", "replace", "insert", "delete", "truncate"]))
        if op == "replace":  # keeps the length, so a record of the right width reaches its fields
            data = data[:at] + piece + data[at + len(piece) :]
        elif op == "insert":
            data = data[:at] + piece + data[at:]
        elif op == "delete":
            data = data[:at] + data[at + len(piece) :]
        else:
            data = data[:at]
    return data


@functools.cache
def sr1a_lines() -> list[bytes]:
    widths = itertools.cycle(sr1a.WIDTHS)
    return [sr1a.format_line(r, width=next(widths)).encode("latin-1") for r in deeds(8)]


@st.composite
def sr1a_files(draw) -> bytes:
    line = st.sampled_from(sr1a_lines()).flatmap(lambda line: mutated(line, SR1A_HOT))
    lines = draw(st.lists(line | st.sampled_from([b"", b"   ", b"\x0c"]), max_size=8))
    ends = [draw(st.sampled_from([b"\n", b"\r\n", b"\r"])) for _ in lines]
    body = b"".join(line + end for line, end in zip(lines, ends, strict=True))
    return body[:-1] if body and draw(st.booleans()) else body  # with or without a final line end


def sr1a_records(data: bytes) -> int:
    """Records of an SR1A file, counted independently: lines (CR, LF or CRLF) that are not blank."""
    return sum(1 for line in re.split(r"\r\n|\r|\n", data.decode("latin-1")) if line.strip())


def csv_records(path: Path) -> int:
    """Data rows of a CSV file as the csv module sees them (a quoted field may span lines)."""
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
        return sum(1 for row in list(csv.reader(f))[1:] if row)


@pytest.fixture(scope="module")
def load(tmp_path_factory):
    """Run one source through the importer into one SQLite database; the report and the quarantine.

    Examples share the database, so a record seen before is quarantined as already recorded:
    the counts still have to add up."""
    folder = tmp_path_factory.mktemp("fuzz")
    db = make_sqlite(folder)
    runs = itertools.count()

    def run(records: list[SourceRecord]):
        quarantine = folder / f"q{next(runs)}.csv"
        report = import_records(db, records, name="fuzz", quarantine=quarantine, now=NOW)
        rows = quarantine_rows(quarantine) if quarantine.exists() else []
        assert report.loaded + report.quarantined == report.records == len(records)
        assert len(rows) == report.quarantined and all(r["where"] and r["field"] and r["reason"] for r in rows)
        return rows

    yield run, folder
    db.dispose()


@FUZZ
@given(data=sr1a_files())
def test_sr1a_fuzz_every_line_is_loaded_or_quarantined(load, data):
    run, folder = load
    path = folder / "fuzz.sr1a"
    path.write_bytes(data)
    records = list(sr1a.read(path, date_order="MMDDYY", pivot=30))
    assert len(records) == sr1a_records(data)
    for rec in records:
        if rec.data is not None:  # read as a deed: its digits were ASCII digits
            assert re.fullmatch(r"[0-9]*", sr1a.field(rec.raw, "reported_sales_price").strip(" "))
            assert re.fullmatch(r"[0-9]{6}", sr1a.field(rec.raw, "date_recorded"))
            assert re.fullmatch(r"[0-9]{6}", sr1a.field(rec.raw, "deed_date"))
    rows = run(records)
    assert all(r["where"].startswith("line ") for r in rows)


EXPORTS = itertools.count()
NASTY_VALUES = ["١٠٠", "1_000", " 5", "²", "5²", "٢٠٠١-03-02", "2001-03-0٢", "", "$1,250,000.00", "1e3", "-5", "0x10",
                "\u00a0", "GRANTEE", "MTG", "9", "D1", "D9", '"', "\r\n"]  # fmt: skip
CELLS = st.sampled_from(NASTY_VALUES) | st.text(
    st.sampled_from("0123456789٣²¹¼١٢ _-+.$,/:T\u00a0\ufffdAZ"), max_size=12
)


def csv_tables(items: list[dict]) -> tuple[list, list, list, list]:
    documents, parties, parcels = [], [], []
    for n, item in enumerate(items, 1):
        at = item["recorded_at"].astimezone(csv_export.EASTERN).strftime("%Y-%m-%d %H:%M:%S")
        documents.append([f"D{n}", item["instrument_number"], item["doc_type"], item["book"], item["page"], at,
                          f"${item['consideration']:,}", item["legal_description"], item["document_digest"]])  # fmt: skip
        for role in ("grantors", "grantees"):
            for seq, name in enumerate(item[role], 1):
                parties.append([f"D{n}", role[:-1].upper(), str(seq), name, ""])
        for seq, p in enumerate(item["parcels"], 1):
            parcels.append(
                [f"D{n}", str(seq), p["municipality_code"].lstrip("0"), p["block"], p["lot"], p["qualifier"]]
            )
    return documents, parties, parcels, [["D2", "D1", "CORRECTS"]]


@st.composite
def csv_exports(draw) -> tuple[tuple, dict[str, list[tuple]]]:
    tables = csv_tables(deeds(4))
    for table in tables[:3]:  # a few cells replaced by nasty values
        for _ in range(draw(st.integers(0, 3))):
            row = draw(st.sampled_from(table))
            row[draw(st.integers(0, len(row) - 1))] = draw(CELLS)
    edit = st.tuples(st.integers(0, 10_000), PIECES, st.sampled_from(["replace", "insert", "delete"]))
    edits = {name: draw(st.lists(edit, max_size=2)) for name in csv_export.FILES}
    return tables, edits


@FUZZ
@given(export=csv_exports())
def test_csv_fuzz_every_document_is_loaded_or_quarantined(load, export):
    run, folder = load
    tables, edits = export
    target = folder / f"export-{next(EXPORTS)}"
    write_export(target, *tables)
    for name, changes in edits.items():  # bytes-level edits after encoding: bad UTF-8, stray quotes, CR/LF
        data = (target / name).read_bytes()
        for at, piece, op in changes:
            at %= len(data) + 1
            cut = at + len(piece) if op != "insert" else at
            data = data[:at] + (b"" if op == "delete" else piece) + data[cut:]
        (target / name).write_bytes(data)
    records = list(csv_export.read(target))
    for rec in records:
        if rec.data is not None:  # read as an instrument: its amount and recording time were ASCII
            row = ast.literal_eval(rec.raw)
            assert csv_export.clean(row.get("recorded_at")).isascii()
            assert rec.data["consideration"] is None or re.fullmatch(r"[0-9]+(\.[0-9]+)?", rec.data["consideration"])
    rows = run(records)
    side = sum(1 for r in rows if r["where"].startswith(("parties.csv", "parcels.csv")))
    assert len(records) == csv_records(target / "documents.csv") + side


# --- fuzzing the proof-bundle parser ------------------------------------------------------------------
VECTORS = REPO / "tests" / "vectors" / "bundle"
VALID = [json.loads(p.read_text("utf-8"))["bundle"] for p in sorted(VECTORS.glob("valid-*.json"))]


def paths(node, prefix: tuple = ()):
    yield prefix
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        yield from paths(child, (*prefix, key))


KEYS = sorted({p[-1] for v in VALID for p in paths(v) if p and isinstance(p[-1], str)})
LEAVES = [v for b in VALID for p in paths(b) for v in [functools.reduce(lambda n, k: n[k], p, b)]
          if not isinstance(v, dict | list)]  # fmt: skip
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12) | st.sampled_from(LEAVES)
    | st.from_regex(r"0x[0-9a-fA-F]{63,65}", fullmatch=True),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner,
                                                                max_size=5),
    max_leaves=20,
)  # fmt: skip


def near(value) -> st.SearchStrategy:
    """Values close to ``value``: the spellings a strict parser must tell apart."""
    if isinstance(value, str):
        return st.sampled_from([value.upper(), value + "0", value[:-1], " " + value, unicodedata.normalize("NFD", value),
                                value.replace("0x", "0X"), value.encode("utf-8", "replace").decode("latin-1")])  # fmt: skip
    if isinstance(value, bool | int):
        return st.sampled_from([-1, value + 1, 2**53 + 1, 2**64, True, float(value), str(value)])
    if isinstance(value, list):
        return st.sampled_from([[], value[::-1], value + value[:1], [value]])
    return st.just(value)


def must_parse_or_say_why(obj) -> None:
    try:
        parsed = bundles.parse(obj)
    except MalformedBundle:
        return
    assert isinstance(parsed, bundles.ProofBundle)


@FUZZ
@given(obj=JSON)
def test_bundle_parse_of_any_json_value_parses_or_raises_malformed_bundle(obj):
    must_parse_or_say_why(obj)
    must_parse_or_say_why({"format": bundles.FORMAT, "record": obj, "tree": None, "anchor": None})


@FUZZ
@given(data=st.data())
def test_bundle_parse_of_a_mutated_valid_vector_parses_or_raises_malformed_bundle(data):
    bundle = {"root": copy.deepcopy(data.draw(st.sampled_from(VALID)))}
    for _ in range(data.draw(st.integers(1, 3))):
        if "root" not in bundle:
            break
        *parent_path, key = data.draw(st.sampled_from([p for p in paths(bundle) if p]))
        parent = functools.reduce(lambda n, k: n[k], parent_path, bundle)
        op = data.draw(st.sampled_from(["near", "replace", "delete", "add"]))
        if op == "near":
            parent[key] = data.draw(near(parent[key]))
        elif op == "replace":
            parent[key] = data.draw(JSON)
        elif op == "delete":
            del parent[key]
        elif isinstance(parent[key], dict):
            parent[key][data.draw(st.sampled_from(KEYS) | st.text(max_size=6))] = data.draw(JSON)
        elif isinstance(parent[key], list):
            parent[key].append(data.draw(JSON))
    must_parse_or_say_why(bundle.get("root"))


def test_the_valid_vectors_parse():
    assert len(VALID) == 2 and all(isinstance(bundles.parse(v), bundles.ProofBundle) for v in VALID)


# --- a record too long to read (issue 20, item 5) ------------------------------------------------------
def test_an_sr1a_line_over_the_bound_is_quarantined_unread(db, tmp_path):
    good = [sr1a.format_line(r).encode("latin-1") for r in deeds(3)]
    path = tmp_path / "sr1a.txt"
    path.write_bytes(b"\n".join([good[0], b"7" * 5_000_000, good[1], b"8" * 4_097 + b"\r\n" + good[2]]) + b"\n")
    report = import_records(
        db, sr1a.read(path, date_order="MMDDYY", pivot=30), name="sr1a", quarantine=tmp_path / "q.csv", now=NOW
    )
    assert (report.records, report.loaded, report.quarantined) == (5, 3, 2)
    rows = quarantine_rows(tmp_path / "q.csv")
    assert [r["where"] for r in rows] == ["line 2", "line 4"]
    for row in rows:
        assert "longer than 4,096 characters" in row["reason"]
        assert len(row["raw"]) < 300  # how it starts, not five megabytes of it


def test_a_csv_record_over_the_bound_is_quarantined_and_the_rest_loads(db, tmp_path):
    """A field over csv's own limit (131,072 characters) raised csv.Error out of the import."""
    csv_export_of(tmp_path / "export", {2: (7, "Lot 5 " * 40_000)})  # a 240,000-character legal description
    path = tmp_path / "export" / "parties.csv"
    with open(path, "a", encoding="utf-8", newline="") as f:  # a quoted field that runs on over lines
        f.write('D9,GRANTOR,1,"' + ("TAYLOR\n" * 20_000) + '",\n')
    report = import_records(
        db, csv_export.read(tmp_path / "export"), name="csv", quarantine=tmp_path / "q.csv", now=NOW
    )
    rows = {r["where"]: r for r in quarantine_rows(tmp_path / "q.csv")}
    assert "a record longer than 65,536 characters" in rows["documents.csv row 3"]["reason"]
    assert "a record longer than 65,536 characters" in rows["parties.csv row 14"]["reason"]
    assert all(len(r["raw"]) < 300 for r in rows.values())
    # D2's parties and parcel are orphans now; the rest of D9's quoted field is skipped, not read as rows
    assert (report.records, report.loaded, report.quarantined) == (10, 5, 5), sorted(rows)
