"""The title abstract (docs/title-abstract.md): a parcel's whole history with its proofs and the
proof that its newest record is the parcel's head in an anchored title state. Verified against the
chain and the trust root only, it is COMPLETE, COMPLETE AS OF BATCH M, STALE, PENDING or INVALID,
and it derives the owners of record and the open encumbrances, which must equal the database's.

Every attack of issue 23 is here as a forged abstract that must not verify COMPLETE: an omitted
record (middle, newest), a reordering, a spliced record of another parcel, an old abstract after a
new deed, a head proven against another contract's or another chain's state, a hidden mortgage, a
head forged for a parcel never recorded, a database-only edit of the stored title state.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import text

from hybrid_store import title_abstract
from hybrid_store.anchoring import Anchorer
from hybrid_store.core import abstract as core
from hybrid_store.core import merkle
from hybrid_store.core import title_state as ts
from hybrid_store.filing import record_instruments
from hybrid_store.intake import validate
from hybrid_store.title_states import TitleStoreError
from hybrid_store.verifier import abstracts
from tests.conftest import NOW, bypass_append_only, deed, trust_of

LOT = {"municipality_code": "0223", "block": "100.01", "lot": "5"}
KEY = "0223_100.01_5"
OTHER = {"municipality_code": "0223", "block": "100.01", "lot": "6"}


def file(db, *docs, minutes: int = 0):
    items = [validate(d, now=NOW + timedelta(minutes=minutes)) for d in docs]
    with db.write() as s:
        return [r.instrument_number for r in record_instruments(s, items, now=NOW + timedelta(minutes=minutes))]


def doc(doc_type: str, grantors: list[str], grantees: list[str], parcel=LOT, refs=(), **kw) -> dict:
    body = deed(doc_type=doc_type, grantors=grantors, grantees=grantees, parcels=[parcel], **kw)
    if refs:
        body["references"] = [dict(r) for r in refs]
    if doc_type != "DEED":
        body.pop("grantee_mailing_address", None)
    return body


@dataclass
class Book:
    deed1: str
    mortgage1: str
    deed2: str
    satisfaction: str
    mortgage2: str
    lien: str
    easement: str


def record_book(db) -> Book:
    """A parcel's history: two deeds, a satisfied mortgage and an open one, a lien, an easement;
    and a record of the next lot between them."""
    [deed1] = file(db, doc("DEED", ["ALICE ADAMS"], ["BOB BROWN"]), minutes=1)
    [m1] = file(db, doc("MORTGAGE", ["BOB BROWN"], ["FIRST BANK"]), minutes=2)
    file(db, doc("DEED", ["ZED ZIMMER"], ["YVES YOUNG"], parcel=OTHER), minutes=3)
    [deed2] = file(db, doc("DEED", ["BOB BROWN"], ["CAROL CHEN"]), minutes=4)
    [sat] = file(db, doc("SATISFACTION", ["FIRST BANK"], ["BOB BROWN"],
                         refs=[{"kind": "acts_on_mortgage", "instrument_number": m1}]), minutes=5)  # fmt: skip
    [m2] = file(db, doc("MORTGAGE", ["CAROL CHEN"], ["SECOND BANK"]), minutes=6)
    [lien] = file(db, doc("LIEN", ["CAROL CHEN"], ["ACME BUILDERS"]), minutes=7)
    [easement] = file(db, doc("EASEMENT", ["CAROL CHEN"], ["PSE&G"]), minutes=8)
    return Book(deed1, m1, deed2, sat, m2, lien, easement)


@pytest.fixture
def book(deployed):
    db, chain, dep = deployed
    made = record_book(db)
    Anchorer(db, chain, dep, batch_max_records=3).drain()
    return db, chain, dep, made


def abstract_of(db, key: str = KEY, **kw) -> dict:
    with db.read() as s:
        return title_abstract.build(s, key, **kw).to_json()


def head_of(db, key: str = KEY) -> dict:
    with db.read() as s:
        return title_abstract.head_document(s, key).to_json()


def verdict(db, chain, document, **kw) -> abstracts.AbstractVerdict:
    return abstracts.verify_document(document, chain=chain, trust=trust_of(db), **kw)


def test_a_complete_abstract_shows_the_owners_and_what_is_open(book):
    db, chain, _, made = book
    document = abstract_of(db)
    assert [r["record"]["fields"]["instrument_number"]["value"] for r in document["records"]] == [
        made.deed1,
        made.mortgage1,
        made.deed2,
        made.satisfaction,
        made.mortgage2,
        made.lien,
        made.easement,
    ]
    v = verdict(db, chain, document)
    assert v.status == abstracts.COMPLETE, v.reason
    assert v.title is not None
    assert v.title.owners.names == ("CAROL CHEN",) and v.title.owners.number == made.deed2
    states = {(e.kind, e.number): (e.state, e.closed_by) for e in v.title.encumbrances}
    assert states == {
        ("mortgage", made.mortgage1): ("closed", made.satisfaction),
        ("mortgage", made.mortgage2): ("open", None),
        ("lien", made.lien): ("open", None),
        ("easement", made.easement): ("open", None),
    }
    # the database's own answer, from the index tables, is the same
    with db.read() as s:
        recorded = title_abstract.recorded_title(s, KEY)
    assert recorded.owner_number == made.deed2 and recorded.owners == ("CAROL CHEN",)
    assert {(k, n): (st, by) for k, n, st, by in recorded.encumbrances} == states


def test_without_a_chain_the_abstract_is_unchecked_never_complete(book):
    db, _, _, _ = book
    v = abstracts.verify_document(abstract_of(db), trust=trust_of(db))
    assert v.status == abstracts.UNCHECKED


def records_of(document: dict) -> list[dict]:
    return document["records"]


def forged_state(document: dict) -> tuple[dict, bytes]:
    """The abstract less its newest record, with a title state of the forger's own in which the
    record before the newest is the parcel's head; and that state's marker leaf (a one-leaf batch)."""
    forged = copy.deepcopy(document)
    del forged["records"][-1]
    last = forged["records"][-1]["record"]["commitment"]
    store = ts.MemoryNodeStore()
    _, root = ts.apply(store, None, [ts.Head(KEY, bytes.fromhex(last[2:]), len(forged["records"]))], version=1)
    marker_leaf = merkle.commitment_leaf(ts.state_marker(root))
    forged["head"].update(stateRoot="0x" + root.hex(), headProof=ts.prove(store, 1, KEY).to_json(), markerProof=[],
                          batchRoot="0x" + marker_leaf.hex())  # fmt: skip
    return forged, marker_leaf


def lookalike_head(db, chain, document: dict, tmp_path) -> dict:
    """``forged_state``, anchored for real as batch 0 of a second DeedRegistry deployed on the very
    chain the registry uses, by the same registrar key: only the trust root tells the two apart."""
    from hybrid_store.chain.client import RegistryChain

    lookalike = RegistryChain(chain.w3, chain.account, None, role_addresses=chain.role_addresses)
    lookalike.deploy()
    assert lookalike.address != chain.address
    forged, marker_leaf = forged_state(document)
    receipt = lookalike.wait(lookalike.broadcast(lookalike.sign_anchor(0, marker_leaf, 1, None, 0,
                                                                       nonce=lookalike.pending_nonce())))  # fmt: skip
    assert lookalike.get_batch(0).root == marker_leaf  # the forged state is on chain, in the look-alike
    forged["head"]["anchor"] = {"chainId": chain.chain_id, "contract": lookalike.address, "batchId": 0,
                                "txHash": receipt.tx_hash, "blockNumber": receipt.block_number}  # fmt: skip
    return forged


CHANNELS = ["verifier", "cli", "api", "desk"]


def status_via(channel: str, db, chain, document: dict, tmp_path, monkeypatch, service=None) -> tuple[str, str]:
    """(status, reason) of ``document`` as an auditor gets it: from the verifier itself, from
    `landreg verify` (exit status), from `POST /api/v1/proofs/verify`, or from the desk's upload."""
    import json

    tmp_path.mkdir(parents=True, exist_ok=True)
    if channel == "verifier":
        v = verdict(db, chain, document)
        return v.status, v.reason
    if channel == "cli":
        from typer.testing import CliRunner

        from registry_service.cli import main as cli
        from tests.conftest import _trust_homes

        monkeypatch.setattr(abstracts, "node_at", lambda url: chain)
        trust_of(db)
        path = tmp_path / "abstract.json"
        path.write_text(json.dumps(document))
        root = str(_trust_homes[str(db.engine.url)] / "trust" / "root.json")
        result = CliRunner().invoke(cli.app, ["verify", str(path), "--trust", root, "--rpc", "http://node"])
        by_code = {code: status for status, code in abstracts.EXIT.items()}
        return by_code[result.exit_code], result.output
    assert service is not None
    if channel == "api":
        v = service.client.post("/api/v1/proofs/verify", json=document).json()
        return v["status"], v["reason"]
    from tests.test_desk_limits import sign_in

    csrf = sign_in(service, "auditor")
    raw = json.dumps(document).encode()
    r = service.client.post("/desk/audit/verify", files=[("csrf", (None, csrf)),
                                                          ("bundle_file", ("a.json", raw, "application/json"))])  # fmt: skip
    heading = {"Complete and current": "complete", "Complete as of batch": "complete_as_of", "Stale:": "stale",
               "Pending:": "pending", "Not verified": "invalid"}  # fmt: skip
    found = [status for words, status in heading.items() if words in r.text]
    return (found[0] if found else "?"), r.text


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("attack", ["omit_middle", "omit_newest", "reorder", "splice_other_parcel", "omit_first",
                                    "hide_reference", "foreign_head", "never_recorded"])  # fmt: skip
def test_every_forged_abstract_is_invalid_through_every_door(book, attack, channel, tmp_path, monkeypatch):
    db, chain, _, made = book
    document = abstract_of(db)
    records = records_of(document)
    if attack == "omit_middle":
        del records[4]  # the open mortgage
    elif attack == "omit_newest":
        del records[-1]
    elif attack == "omit_first":
        del records[0]
    elif attack == "reorder":
        records[2], records[3] = records[3], records[2]
    elif attack == "splice_other_parcel":
        records.insert(2, records_of(abstract_of(db, "0223_100.01_6"))[0])
    elif attack == "hide_reference":  # the satisfaction's target withheld: read as closing nothing? refused
        from hybrid_store.core.commitment import field_hash

        record = records[3]["record"]
        field = record["fields"].pop("references")
        record["redacted"]["references"] = "0x" + field_hash("references", bytes.fromhex(field["salt"][2:]),
                                                               field["value"], record["scheme"]).hex()  # fmt: skip
    elif attack == "foreign_head":  # a look-alike registry on the same chain anchors a state hiding the newest deed
        document = lookalike_head(db, chain, document, tmp_path)
    elif attack == "never_recorded":
        document["parcelKey"] = document["head"]["parcelKey"] = "0223_999_1"
    from contextlib import nullcontext

    from tests.test_api import make_service

    service = make_service(tmp_path / "svc", db, chain) if channel in ("api", "desk") else None
    with service.client if service is not None else nullcontext():
        status, reason = status_via(channel, db, chain, document, tmp_path, monkeypatch, service)
        assert status == abstracts.INVALID, reason
        honest = status_via(channel, db, chain, abstract_of(db), tmp_path / "again", monkeypatch, service)
        assert honest[0] == abstracts.COMPLETE, honest[1]  # the same door says COMPLETE of the honest abstract


def test_an_old_abstract_after_a_new_deed_is_stale_with_the_newest_head_and_never_complete(book):
    db, chain, dep, made = book
    old = abstract_of(db)
    file(db, doc("DEED", ["CAROL CHEN"], ["DAN DIAZ"]), minutes=20)
    Anchorer(db, chain, dep).drain()
    v = verdict(db, chain, old)
    assert v.status == abstracts.COMPLETE_AS_OF, v.reason
    v = verdict(db, chain, old, newest=head_of(db))
    assert v.status == abstracts.STALE, v.reason
    assert "moved" in v.reason
    fresh = abstract_of(db)
    assert verdict(db, chain, fresh).status == abstracts.COMPLETE
    # an old head given as the newest proves nothing
    v = verdict(db, chain, old, newest=old["head"])
    assert v.status == abstracts.COMPLETE_AS_OF and v.warnings


def test_a_batch_that_moves_other_parcels_only_keeps_the_abstract_complete(book):
    db, chain, dep, _ = book
    old = abstract_of(db)
    file(db, doc("DEED", ["YVES YOUNG"], ["XAVIER XU"], parcel=OTHER), minutes=20)
    Anchorer(db, chain, dep).drain()
    assert verdict(db, chain, old).status == abstracts.COMPLETE_AS_OF
    assert verdict(db, chain, old, newest=head_of(db)).status == abstracts.COMPLETE


def test_a_head_for_a_parcel_never_recorded_cannot_be_forged(book):
    db, chain, _, _ = book
    never = abstract_of(db, "0223_999_1")
    assert never["records"] == [] and verdict(db, chain, never).status == abstracts.COMPLETE  # provably no record
    document = abstract_of(db)
    document["parcelKey"] = document["head"]["parcelKey"] = "0223_999_1"
    v = verdict(db, chain, document)
    assert v.status == abstracts.INVALID, v.reason
    # nor can the registry hide a recorded parcel's history behind another parcel's absence proof
    hidden = abstract_of(db, "0223_999_1")
    hidden["parcelKey"] = hidden["head"]["parcelKey"] = KEY
    assert verdict(db, chain, hidden).status == abstracts.INVALID


def test_withholding_a_satisfaction_s_cross_reference_is_refused_not_read_as_closing(book):
    db, chain, _, made = book
    document = abstract_of(db, redact=["references"])  # the builder never withholds it ...
    assert verdict(db, chain, document).status == abstracts.COMPLETE
    forged = copy.deepcopy(document)  # ... a forger who does gets a refusal, not a guess
    record = forged["records"][3]["record"]
    field = record["fields"].pop("references")
    from hybrid_store.core.commitment import field_hash

    record["redacted"]["references"] = (
        "0x" + field_hash("references", bytes.fromhex(field["salt"][2:]), field["value"], record["scheme"]).hex()
    )
    v = verdict(db, chain, forged)
    assert v.status == abstracts.INVALID and "references" in v.reason


def test_a_database_only_edit_of_the_title_state_never_yields_a_complete_abstract(book):
    db, chain, dep, made = book
    honest = abstract_of(db)
    with db.write() as s:
        bypass_append_only(s)
        s.execute(text("UPDATE title_versions SET root = :r WHERE batch_id = (SELECT max(batch_id) FROM title_versions)"),
                  {"r": b"\x11" * 32})  # fmt: skip
    with pytest.raises(TitleStoreError, match="edited in the database"):
        abstract_of(db)  # the registry's own tools refuse to hand out what they cannot prove
    # the strongest database-only attacker writes a whole title state of their own, in which the
    # parcel's head is the record before the newest, and its batch: no chain anchored that root
    forged, _ = forged_state(honest)
    assert abstracts.verify_offline(abstracts.parse(forged))  # the math alone holds ...
    v = verdict(db, chain, forged)
    assert v.status == abstracts.INVALID and "root" in v.reason, v.reason  # ... the chain does not


def test_entries_problem_names_a_withheld_index_field():
    assert "prev" in core.entry_problem("landreg-commitment/v2", {"instrument_number": "1"}, {"prev"})


# --- the same verdicts through the API, the desk and the CLI -------------------------------------------


def api_book(svc) -> dict[str, str]:
    """The book filed through the API by a clerk (examination confirmed up front)."""
    from tests.conftest import filing

    def post(doc_type, grantors, grantees, parcel=LOT, refs=()):
        body = filing(doc_type=doc_type, grantors=grantors, grantees=grantees, parcels=[parcel])
        if refs:
            body["references"] = list(refs)
        if doc_type != "DEED":
            body.pop("grantee_mailing_address", None)
        return svc.file(body)["receipt"]["instrumentNumber"]

    made = {"deed1": post("DEED", ["ALICE ADAMS"], ["BOB BROWN"])}
    made["mortgage"] = post("MORTGAGE", ["BOB BROWN"], ["FIRST BANK"])
    made["satisfaction"] = post("SATISFACTION", ["FIRST BANK"], ["BOB BROWN"],
                                refs=[{"kind": "acts_on_mortgage", "instrument_number": made["mortgage"]}])  # fmt: skip
    made["mortgage2"] = post("MORTGAGE", ["BOB BROWN"], ["SECOND BANK"])
    svc.anchor()
    return made


@pytest.fixture
def svc(tmp_path, db, chain):
    from tests.test_api import make_service

    service = make_service(tmp_path, db, chain)
    with service.client:
        yield service


def test_the_api_serves_the_abstract_and_the_head_and_verifies_both_ways(svc):
    made = api_book(svc)
    r = svc.client.get(f"/api/v1/parcels/{KEY}/abstract", headers=svc.as_("auditor"))
    assert r.status_code == 200, r.text
    document = r.json()
    assert len(document["records"]) == 4
    v = svc.client.post("/api/v1/proofs/verify", json=document).json()
    assert v["status"] == "complete", v
    assert v["abstract"]["title"]["owners"]["names"] == ["BOB BROWN"]
    states = {e["openedBy"]: e["state"] for e in v["abstract"]["title"]["encumbrances"]}
    assert states == {made["mortgage"]: "closed", made["mortgage2"]: "open"}
    # anonymous: index fields always, names withheld; the owners cannot be derived, the history can
    anonymous = svc.client.get(f"/api/v1/parcels/{KEY}/abstract").json()
    assert "grantees" not in anonymous["records"][0]["record"]["fields"]
    v = svc.client.post("/api/v1/proofs/verify", json=anonymous).json()
    assert v["status"] == "complete" and v["abstract"]["title"]["owners"]["provable"] is False
    # a new deed: the old abstract is STALE through the API (the registry's newest head is checked on chain)
    svc.file(__import__("tests.conftest", fromlist=["filing"]).filing(
        grantors=["BOB BROWN"], grantees=["CAROL CHEN"], parcels=[LOT]))  # fmt: skip
    svc.anchor()
    v = svc.client.post("/api/v1/proofs/verify", json=document).json()
    assert v["status"] == "stale", v
    # forged: the newest record left out
    forged = svc.client.get(f"/api/v1/parcels/{KEY}/abstract", headers=svc.as_("auditor")).json()
    del forged["records"][-1]
    v = svc.client.post("/api/v1/proofs/verify", json=forged).json()
    assert v["status"] == "invalid" and "left out" in v["reason"], v
    head = svc.client.get(f"/api/v1/parcels/{KEY}/head")
    assert head.status_code == 200 and head.json()["format"] == abstracts.HEAD_FORMAT


def test_the_desk_upload_shows_the_abstract_s_verdict_owners_and_encumbrances(svc):
    from tests.test_desk_limits import sign_in

    made = api_book(svc)
    document = svc.client.get(f"/api/v1/parcels/{KEY}/abstract", headers=svc.as_("auditor")).json()
    csrf = sign_in(svc, "auditor")
    import json as _json

    def upload(doc: dict):
        raw = _json.dumps(doc).encode()
        return svc.client.post("/desk/audit/verify", files=[("csrf", (None, csrf)),
                                                             ("bundle_file", ("abstract.json", raw, "application/json"))])  # fmt: skip

    r = upload(document)
    assert r.status_code == 200, r.text
    assert "Complete and current" in r.text and "BOB BROWN" in r.text
    assert f"closed by {made['satisfaction']}" in r.text
    forged = copy.deepcopy(document)
    forged["records"][1], forged["records"][2] = forged["records"][2], forged["records"][1]
    r = upload(forged)
    assert r.status_code == 422 and "Not verified" in r.text and "out of order" in r.text


def test_the_cli_verifies_an_abstract_with_its_own_exit_statuses(book, tmp_path, monkeypatch):
    """``landreg verify`` in process (typer's runner) against the in-process chain, reached as a node
    by URL would be: each verdict its own exit status."""
    import json

    from typer.testing import CliRunner

    from registry_service.cli import main as cli
    from tests.conftest import _trust_homes

    db, chain, dep, made = book
    monkeypatch.setattr(abstracts, "node_at", lambda url: chain)
    trust_of(db)
    trust = str(_trust_homes[str(db.engine.url)] / "trust" / "root.json")
    runner = CliRunner()

    def run(document: dict, *extra: str) -> tuple[int, str]:
        path = tmp_path / "abstract.json"
        path.write_text(json.dumps(document))
        result = runner.invoke(cli.app, ["verify", str(path), *extra])
        return result.exit_code, result.output

    old = abstract_of(db)
    code, out = run(old)
    assert code == 3 and "UNCHECKED" in out, out  # no trust root, no node: the math only
    code, out = run(old, "--trust", trust, "--rpc", "http://node")
    assert code == 0 and "COMPLETE" in out and "owners of record: CAROL CHEN" in out, out
    assert f"mortgage {made.mortgage2}: OPEN" in out and f"closed by {made.satisfaction}" in out
    forged = copy.deepcopy(old)
    del forged["records"][2]
    code, out = run(forged, "--trust", trust, "--rpc", "http://node")
    assert code == 1 and "INVALID" in out and "missing" in out, out
    file(db, doc("DEED", ["CAROL CHEN"], ["DAN DIAZ"]), minutes=20)
    Anchorer(db, chain, dep).drain()
    code, out = run(old, "--trust", trust, "--rpc", "http://node")
    assert code == 7 and "COMPLETE AS OF BATCH" in out, out
    newest = tmp_path / "head.json"
    newest.write_text(json.dumps(head_of(db)))
    code, out = run(old, "--trust", trust, "--rpc", "http://node", "--head", str(newest))
    assert code == 6 and "STALE" in out, out
    # `landreg title` writes what `landreg verify` takes; `--head` the newest head alone
    monkeypatch.setenv("LANDREG_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LANDREG_DATABASE_URL", str(db.engine.url))
    fresh = tmp_path / "fresh.json"
    result = runner.invoke(cli.app, ["title", KEY, "--out", str(fresh)])
    assert result.exit_code == 0 and "(8 records)" in result.output, result.output
    code, out = run(json.loads(fresh.read_text()), "--trust", trust, "--rpc", "http://node")
    assert code == 0 and "owners of record: DAN DIAZ" in out, out
    result = runner.invoke(cli.app, ["title", KEY, "--head", "--out", str(newest)])
    assert result.exit_code == 0 and json.loads(newest.read_text())["format"] == abstracts.HEAD_FORMAT
    result = runner.invoke(cli.app, ["title", KEY, "--redact", "nonsense"])
    assert result.exit_code == 1 and "'nonsense' is not a record field" in result.output, result.output


def test_a_batch_short_of_the_depth_asked_for_is_pending_never_invalid(book):
    db, chain, _, _ = book
    v = verdict(db, chain, abstract_of(db), depth=1_000)
    assert v.status == abstracts.PENDING, v.reason


# --- property tests -----------------------------------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def chain_of(n: int, key: str = KEY) -> list[core.Entry]:
    """``n`` records of one parcel, linked as the registry links them (commitments are arbitrary)."""
    entries: list[core.Entry] = []
    for i in range(n):
        commitment = bytes([i % 256, i // 256]) + bytes(30)
        prev = "0x" + entries[-1].commitment.hex() if entries else None
        entries.append(core.Entry(f"2026-{i:07d}", "DEED", "2026-01-01T00:00:00Z", "landreg-commitment/v2",
                                  commitment, (key,), ((key, prev),), None, (), None, ("A",), ("A",)))  # fmt: skip
    return entries


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 40), data=st.data())
def test_any_omission_insertion_or_reordering_of_a_history_is_detected(n, data):
    entries = chain_of(n)
    head = core.HeadFacts(entries[-1].commitment, n)
    assert core.history_problem(KEY, entries, head, "batch 1") == ""
    edit = data.draw(st.sampled_from(["omit", "insert", "swap", "shuffle"]))
    changed = list(entries)
    if edit == "omit":
        del changed[data.draw(st.integers(0, n - 1))]
    elif edit == "insert":
        stranger = chain_of(n + 1, KEY)[-1]  # a record of this parcel from another history
        stranger = core.Entry(**{**stranger.__dict__, "commitment": b"\xff" * 32})
        changed.insert(data.draw(st.integers(0, n)), stranger)
    elif edit == "swap" and n > 1:
        i = data.draw(st.integers(0, n - 2))
        changed[i], changed[i + 1] = changed[i + 1], changed[i]
    else:
        changed = data.draw(st.permutations(entries))
    if changed == entries:
        return
    assert core.history_problem(KEY, changed, head, "batch 1") != ""


OPS = st.lists(st.sampled_from(["deed", "stranger_deed", "mortgage", "satisfy", "lien", "discharge", "easement",
                                "lis_pendens", "correct_deed"]), min_size=1, max_size=8)  # fmt: skip


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS, lot=st.integers(1, 99_999))
def test_the_verifier_derives_the_owners_and_encumbrances_the_database_holds(deployed, ops, lot):
    db, chain, dep = deployed
    parcel = {"municipality_code": "0223", "block": "777", "lot": str(lot)}
    key = f"0223_777_{lot}"
    with db.read() as s:
        from hybrid_store.db.models import Parcel

        if s.query(Parcel).filter_by(parcel_key=key).first() is not None:
            return  # hypothesis drew this lot before in this database
    owners, people = ["ANN ONE"], iter(f"PERSON {i}" for i in range(100))
    mortgages: list[str] = []
    liens: list[str] = []
    deeds: list[str] = []
    for minute, op in enumerate(["deed", *ops], start=1):
        if op in ("deed", "stranger_deed"):
            grantors = owners if op == "deed" else ["SOMEONE ELSE"]
            grantees = [next(people)]
            [n] = file(db, doc("DEED", grantors, grantees, parcel=parcel), minutes=minute)
            deeds.append(n)
            owners = grantees if op == "deed" else owners
        elif op == "mortgage":
            mortgages += file(db, doc("MORTGAGE", owners, ["BANK"], parcel=parcel), minutes=minute)
        elif op == "satisfy" and mortgages:
            file(db, doc("SATISFACTION", ["BANK"], owners, parcel=parcel,
                         refs=[{"kind": "acts_on_mortgage", "instrument_number": mortgages.pop(0)}]), minutes=minute)  # fmt: skip
        elif op in ("lien", "lis_pendens"):
            liens += file(db, doc("LIEN" if op == "lien" else "LIS_PENDENS", owners, ["HOLDER"], parcel=parcel),
                          minutes=minute)  # fmt: skip
        elif op == "discharge" and liens:
            file(db, doc("DISCHARGE_OF_LIEN", ["HOLDER"], owners, parcel=parcel,
                         refs=[{"kind": "discharges_lien", "instrument_number": liens.pop()}]), minutes=minute)  # fmt: skip
        elif op == "easement":
            file(db, doc("EASEMENT", owners, ["UTILITY"], parcel=parcel), minutes=minute)
        elif op == "correct_deed" and deeds:
            file(db, doc("CORRECTION", owners, [next(people)], parcel=parcel, corrects=deeds[-1],
                         refs=[{"kind": "corrects", "instrument_number": deeds[-1]}]), minutes=minute)  # fmt: skip
    Anchorer(db, chain, dep).drain()
    v = verdict(db, chain, abstract_of(db, key))
    assert v.status == abstracts.COMPLETE, v.reason
    assert v.title is not None
    with db.read() as s:
        recorded = title_abstract.recorded_title(s, key)
    assert (v.title.owners.number, v.title.owners.names or ()) == (recorded.owner_number, recorded.owners)
    derived = tuple((e.kind, e.number, e.state, e.closed_by) for e in v.title.encumbrances)
    assert derived == recorded.encumbrances


def test_a_mortgage_committed_under_the_first_scheme_is_neither_open_nor_closed_unless_a_later_record_names_it():
    v1, v2 = "landreg-commitment/v1", "landreg-commitment/v2"

    def entry(i, doc_type, scheme, refs=None, grantors=("A",), grantees=("B",)):
        return core.Entry(f"1990-{i:07d}", doc_type, "1990-01-01T00:00:00Z", scheme, bytes([i]) * 32, (KEY,),
                          ((KEY, None),), None, refs if scheme == v2 else None, None, grantors, grantees)  # fmt: skip

    history = [entry(1, "DEED", v1), entry(2, "MORTGAGE", v1), entry(3, "MORTGAGE", v1), entry(4, "SATISFACTION", v1),
               entry(5, "MORTGAGE", v2, ()), entry(6, "LIEN", v1),
               entry(7, "SATISFACTION", v2, (("acts_on_mortgage", "1990-0000003", None, None),))]  # fmt: skip
    got = {e.number: (e.state, e.closed_by) for e in core.derive(KEY, history).encumbrances}
    assert got == {
        "1990-0000002": (core.UNKNOWN, None),  # v1: nothing provable either way
        "1990-0000003": (core.CLOSED, "1990-0000007"),  # a v2 satisfaction names it: provably closed
        "1990-0000005": (core.OPEN, None),  # v2, after every v1 satisfaction: provably open
        "1990-0000006": (core.UNKNOWN, None),
    }
    assert core.derive(KEY, history).owners.names == ("B",)
