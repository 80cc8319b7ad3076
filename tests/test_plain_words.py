"""Plain words everywhere (issue 24, item 3): every rule of a filing, broken every way a clerk or a
program can break it, is explained in the clerk's words, on the desk and in the API; never in the
validation library's or the JSON parser's. The walk fails on any message that carries their wording."""

from __future__ import annotations

import hashlib
import json
import re
from decimal import Decimal
from html import unescape

import pytest

from hybrid_store.errors import InvalidInstrument
from hybrid_store.intake import models, validate
from hybrid_store.jurisdictions import get_profile
from hybrid_store.plain_errors import BY_TYPE, FALLBACK, plain_message
from tests.conftest import deed, desk_attestations, filing
from tests.test_api import instruments, make_service
from tests.test_desk_limits import csrf_of, sign_in

#: the validation library's and the JSON parser's wording: none of it reaches a person
LIBRARY_WORDING = (
    "should be", "should have", "validation", "Input should", "Expecting value", "Expecting", "char 0",
    "line 1 column", "type=", "pydantic", "Field required", "String should", "List should", "Value error",
    "Assertion failed", "valid decimal", "valid integer", "Extra inputs", "JSON decode error", "Decimal input",
    "errors.pydantic.dev", "after validation", "Unexpected",
)  # fmt: skip

#: every way a value can be wrong: absent, empty, another type, too long, a control character, a
#: broken encoding, a number of another script, an impossible date, lists of the wrong things
BAD_VALUES = [
    None, "", "   ", 0, -1, 1.5, 1e3, True, {}, [], "x", "X" * 200_000, "A\x00B", "\ud800", "a\ufffdb", ["x"], [""],
    ["   "], [None], [{}], [1], ["N" * 5_000], ["A"] * 600, "2026-02-30", "١٠٠٠", "-5", "99999999999999.99", "12.345",
    "612,500 dollars", "1_000", " 12", [{"kind": "nope"}], [{"kind": "corrects", "book": "1"}],
    "2026-03-02T10:15:00", "1989-01-01T00:00:00Z", "2999-01-01T00:00:00Z",
]  # fmt: skip

PARCELS = {"bergen": {"municipality_code": "0223", "block": "100.01", "lot": "5"},
           "nyc": {"borough": "1", "block": "123", "lot": "45"}}  # fmt: skip


def assert_plain(message: str, where: object) -> None:
    assert message.strip(), where
    for words in LIBRARY_WORDING:
        assert words.lower() not in message.lower(), (words, message, where)


def errors_of(data: dict, jurisdiction: str) -> list:
    try:
        validate(data, profile=get_profile(jurisdiction))
    except InvalidInstrument as exc:
        return exc.errors
    return []


def base_of(jurisdiction: str) -> dict:
    return deed(parcels=[PARCELS[jurisdiction]])


@pytest.mark.parametrize("jurisdiction", ["bergen", "nyc"])
def test_every_rule_of_a_filing_broken_every_way_is_said_in_plain_words(jurisdiction):
    profile = get_profile(jurisdiction)
    _content, instrument = models(profile)
    parcel_fields = list(profile.parcel_model.model_fields)
    reference_fields = ["kind", "instrument_number", "book", "page"]
    base = base_of(jurisdiction)
    assert errors_of(base, jurisdiction) == []  # the walk starts from a filing that holds
    broken: list[tuple[str, object]] = []
    for field in instrument.model_fields:  # the instrument's own fields, the content's, the recorded facts
        broken += [({**base, field: value}, (field, value)) for value in BAD_VALUES]
        broken.append(({k: v for k, v in base.items() if k != field}, (field, "left out")))
    for field in parcel_fields:
        for value in BAD_VALUES:
            broken.append(({**base, "parcels": [{**PARCELS[jurisdiction], field: value}]}, (f"parcels.{field}", value)))
        left_out = {k: v for k, v in PARCELS[jurisdiction].items() if k != field}
        broken.append(({**base, "parcels": [left_out]}, (f"parcels.{field}", "left out")))
    reference = {"kind": "acts_on_mortgage", "instrument_number": "2026-0000001"}
    for field in reference_fields:
        for value in BAD_VALUES:
            broken.append(({**base, "references": [{**reference, field: value}]}, (f"references.{field}", value)))
    broken += [
        ({**base, "unknown_member": 1}, "an unknown member"),
        ({**base, "parcels": [PARCELS[jurisdiction], PARCELS[jurisdiction]]}, "a parcel twice"),
        ({**base, "corrects": "2026-0000001", "instrument_number": "2026-0000001"}, "corrects itself"),
        ({**base, "corrects": "2026-0000001", "references": [{"kind": "corrects", "instrument_number": "2026-0000002"}]},
         "two corrections"),
        ({**base, "parcels": [{**PARCELS[jurisdiction], "extra": "1"}]}, "an unknown parcel member"),
    ]  # fmt: skip
    rules: set[str] = set()
    messages = 0
    for data, where in broken:
        for error in errors_of(data, jurisdiction):
            assert_plain(error.message, (where, error))
            rules.add(error.rule)
            messages += 1
        try:
            validate([data], profile=profile)  # not an object at all
        except InvalidInstrument as exc:
            for error in exc.errors:
                assert_plain(error.message, ("a list", error))
    # the walk reached the library's rules and ours, not just one kind of mistake
    assert messages > 500, messages
    library = {"missing", "string_too_long", "too_short", "too_long", "list_type", "string_type", "extra_forbidden",
               "enum", "less_than_equal", "decimal_max_places", "model_type", "datetime_from_date_parsing"}  # fmt: skip
    assert library <= rules, library - rules
    assert {"amount_format", "blank", "control_character", "reference_target", "duplicate_parcel"} <= rules


def test_the_messages_a_clerk_meets_most_say_what_is_wrong_and_what_to_do():
    def said(**overrides) -> dict[str, str]:
        return {e.field: e.message for e in errors_of(deed(**overrides), "bergen")}

    assert said(grantees=[])["grantees"] == "No grantee is given: name at least one grantee, the party receiving."
    assert said(consideration="612,500 dollars")["consideration"] == (
        "'612,500 dollars' is not an amount in dollars: type digits 0-9 with up to two decimals, e.g. 350000.00"
    )
    no_place = said(parcels=[{"municipality_code": "", "block": "1", "lot": "2"}])["parcels[0].municipality_code"]
    assert no_place == "No municipality is chosen for this parcel: choose it from the list."
    assert said(document_digest="")["document_digest"].startswith("No scanned document is attached: attach the scan")
    assert said(document_digest="abc")["document_digest"].startswith("This is not a SHA-256 of a scan")
    too_much = said(consideration="100000000000.00")["consideration"]
    assert too_much.startswith("The consideration is more than $99,999,999,999.99, the most the registry records")
    # a rule of ours that reads as a fragment gains its field's name in front
    assert said(parcels=[{"municipality_code": "0223", "block": "X", "lot": "2"}])["parcels[0].block"].startswith(
        "The block must be a tax-map number"
    )


def test_an_error_nobody_foresaw_is_said_plainly_and_never_echoes_the_library():
    unforeseen = {"type": "some_future_type", "loc": ("grantees", 0), "msg": "Input should be a unicorn",
                  "input": "x", "ctx": {}}  # fmt: skip
    # a type pydantic may add tomorrow is taken as ours only when it is not one of the library's: a
    # message under one of the library's known types never shows
    assert plain_message({**unforeseen, "type": "assertion_error"}) == FALLBACK.format(What="The grantee's name")
    # a ValueError of one of our validators keeps its words, without the library's label
    assert (
        plain_message({**unforeseen, "type": "value_error", "msg": "Value error, two entries take effect the same day"})
        == "two entries take effect the same day"
    )
    for kind in BY_TYPE:  # each library type, with figures missing from its context: still plain words
        assert_plain(plain_message({**unforeseen, "type": kind, "ctx": {}}), kind)


# --- the API ---------------------------------------------------------------------------------------
@pytest.fixture
def svc(tmp_path, db, chain):
    service = make_service(tmp_path, db, chain)
    with service.client:
        yield service


def assert_plain_body(r, where) -> None:
    assert r.status_code in (400, 404, 409, 413, 422), (where, r.status_code, r.text)
    error = r.json()["error"]
    assert_plain(error["message"], where)
    for field in error.get("fields") or []:
        assert_plain(field["message"], (where, field))


def test_the_api_says_every_refusal_of_a_filing_in_plain_words(svc):
    clerk = svc.as_("clerk")
    bodies = [
        filing(grantees=[]), filing(consideration="612,500 dollars"), filing(document_digest=""),
        filing(parcels=[{"municipality_code": "", "block": "1", "lot": "2"}]), filing(page_count=2.5),
        filing(document_date=20260302), filing(references=[{"kind": "corrects"}]), filing(grantors="JOHN SMITH"),
        {"doc_type": "DEED"}, [], "a string", {**filing(), "attestations": ["nonsense"]},
        {**filing(), "confirm": ["nonsense"]}, {**filing(), "confirm_reason": 5},
    ]  # fmt: skip
    for body in bodies:
        for path in ("/api/v1/instruments", "/api/v1/fees/quote"):
            assert_plain_body(svc.client.post(path, json=body, headers=clerk), (path, body))
    for raw in (b"", b"hello", b'{"doc_type": "DEED",', b'{"a": 1, "a": 2}', b"NaN", b"\xff\xfe"):
        r = svc.client.post("/api/v1/instruments", content=raw,
                            headers={**clerk, "Content-Type": "application/json"})  # fmt: skip
        assert_plain_body(r, raw)
        assert r.json()["error"]["message"].startswith("(body): The request body is not "), r.text
    assert instruments(svc.db) == 0


def test_the_api_says_every_refusal_of_a_request_in_plain_words(svc):
    clerk, auditor = svc.as_("clerk"), svc.as_("auditor")
    for url in ("/api/v1/instruments?limit=abc", "/api/v1/instruments?limit=0", "/api/v1/instruments?limit=1_0",
                "/api/v1/instruments?partyy=SMITH", "/api/v1/instruments?party=A&party=B",
                "/api/v1/submissions?state=nonsense", "/api/v1/submissions?limit=9999",
                "/api/v1/instruments?from=2026-13-01", "/api/v1/fees/report?day=yesterday"):  # fmt: skip
        assert_plain_body(svc.client.get(url, headers=clerk), url)
    for body in ({}, {"reason": ""}, {"reason": 5}, {"reason": "x" * 3000}, {"reason": "ok", "more": 1}, []):
        for verb in ("confirm", "reject"):
            r = svc.client.post(f"/api/v1/submissions/1/{verb}", json=body, headers=clerk)
            assert_plain_body(r, (verb, body))
    for raw in (b"", b"not json", b"[1,"):
        r = svc.client.post("/api/v1/proofs/verify", content=raw,
                            headers={**auditor, "Content-Type": "application/json"})  # fmt: skip
        assert_plain_body(r, raw)
    for document in ({}, {"format": 1}, {"format": "landreg-bundle/v2"}, {"format": "landreg-title-abstract/v1"}):
        r = svc.client.post("/api/v1/proofs/verify", json=document, headers=auditor)
        if r.status_code == 200:  # a verdict: its reason is read by a person too
            assert_plain(r.json()["reason"], document)
        else:
            assert_plain_body(r, document)
    for check in ({"receipt": {}, "bundle": {}}, {"receipt": {"format": "landreg-receipt/v2"}, "bundle": []}):
        r = svc.client.post("/api/v1/receipts/verify", json=check, headers=auditor)
        assert_plain(r.json()["reason"] if r.status_code == 200 else r.json()["error"]["message"], check)
    r = svc.client.post("/api/v1/receipts/verify", json={"receipt": 1}, headers=auditor)
    assert_plain_body(r, "a receipt check without its bundle")
    missing = svc.client.post("/api/v1/submissions/1/confirm", json={}, headers=clerk).json()["error"]
    assert missing["fields"][0]["message"].startswith("No reason is given: say why"), missing


# --- the desk --------------------------------------------------------------------------------------
def page_text(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


FORM = {"doc_type": "DEED", "grantors": "ANNA ADAMS", "grantees": "BEN BAKER", "municipality_0": "0223",
        "block_0": "100.01", "lot_0": "5", "consideration": "412500.00", "preparer": "ANNA LEE, ESQ.",
        "grantee_mailing_address": "12 MAIN STREET, HACKENSACK NJ 07601", **desk_attestations()}  # fmt: skip


def test_the_filing_form_says_each_mistake_beside_its_box_and_focuses_the_first(svc):
    csrf = sign_in(svc, "clerk")
    form = {**FORM, "csrf": csrf, "grantees": "", "consideration": "612,500 dollars", "municipality_1": "0223",
            "block_1": "7"}  # fmt: skip
    r = svc.client.post("/desk/file", data=form)
    assert r.status_code == 422, r.text[:2000]
    text = page_text(r.text)
    assert_plain(text, "the filing form")
    assert "No grantee is given" in text and "No scanned document is attached" in text
    assert "'612,500 dollars' is not an amount in dollars" in text and "No lot is given for this parcel" in text
    # the first wrong box has the focus; each wrong box says so to a screen reader and names its message
    assert re.search(r'<textarea name="grantees" rows="3" required aria-invalid="true" '
                     r'aria-describedby="err-grantees" autofocus>', r.text), r.text  # fmt: skip
    assert 'name="consideration" value="612,500 dollars" inputmode="decimal" placeholder="350000.00" ' \
           'aria-invalid="true" aria-describedby="err-consideration">' in r.text  # fmt: skip
    assert r.text.count("autofocus") == 1
    for described in re.findall(r'aria-describedby="([^"]+)"', r.text):
        assert f'id="{described}"' in r.text, described  # every message a box points at is on the page
    assert instruments(svc.db) == 0
    # a fresh form: the first box of the form takes the focus
    fresh = svc.client.get("/desk/file").text
    assert '<select name="doc_type" required autofocus>' in fresh and "aria-invalid" not in fresh


def test_an_attached_scan_is_kept_across_an_error_and_need_not_be_sent_again(svc):
    csrf = sign_in(svc, "clerk")
    scan = b"%PDF-1.4 the deed of ANNA ADAMS to BEN BAKER"
    digest = hashlib.sha256(scan).hexdigest()
    fields = {**FORM, "csrf": csrf, "grantees": ""}
    r = svc.client.post("/desk/file", data=fields, files={"document": ("deed-0223.pdf", scan, "application/pdf")})
    assert r.status_code == 422
    assert "attached: deed-0223.pdf" in page_text(r.text) and f'name="document_digest" value="{digest}"' in r.text
    kept = dict(re.findall(r'<input type="hidden" name="(attached_\w+|form_token)" value="([^"]*)"', r.text))
    assert kept["attached_name"] == "deed-0223.pdf" and kept["attached_digest"] == digest
    # the clerk fixes the grantee and sends the form again without choosing the file
    again = {**FORM, "csrf": csrf, **kept, "document_digest": digest}
    done = svc.client.post("/desk/file", data=again, follow_redirects=False)
    assert done.status_code == 303, done.text[:3000]
    assert instruments(svc.db) == 1
    receipt_of = svc.client.get(done.headers["location"]).text
    assert "Recorded as instrument" in receipt_of
    recorded = svc.client.get("/api/v1/instruments", params={"parcel": "0223_100.01_5"}, headers=svc.as_("clerk"))
    number = recorded.json()["data"][0]["instrument_number"]
    inst = svc.client.get(f"/api/v1/instruments/{number}", headers=svc.as_("clerk")).json()
    assert inst["document_digest"] == digest
    # amounts print one way: thousands separators and cents, like the fee amounts beside them
    assert "<dd>$412,500.00</dd>" in svc.client.get(f"/desk/instruments/{number}").text


def test_a_typed_digest_that_differs_drops_the_attached_name(svc):
    csrf = sign_in(svc, "clerk")
    form = {**FORM, "csrf": csrf, "grantees": "", "attached_name": "old.pdf", "attached_digest": "a" * 64,
            "document_digest": "b" * 64}  # fmt: skip
    r = svc.client.post("/desk/file", data=form)
    assert r.status_code == 422 and "attached: old.pdf" not in page_text(r.text)


@pytest.mark.parametrize("raw", [b"", b"hello", b'{"format": "landreg-bundle/v2",', b"\xff\xfe"])
def test_an_upload_that_is_not_json_is_said_plainly_on_the_audit_page(svc, raw):
    csrf = sign_in(svc, "auditor")
    r = svc.client.post("/desk/audit/verify", data={"csrf": csrf},
                        files={"bundle_file": ("bundle.json", raw, "application/json")})  # fmt: skip
    assert r.status_code == 422
    text = page_text(r.text)
    assert_plain(text, raw)
    assert "bundle.json is not the proof bundle or title abstract the form asks for" in text, text
    assert 'aria-invalid="true" aria-describedby="upload-error"' in r.text
    receipt = svc.client.post("/desk/audit/receipt", data={"csrf": csrf},
                              files={"receipt_file": ("receipt.json", raw, "application/json"),
                                     "bundle_file": ("bundle.json", b"{}", "application/json")})  # fmt: skip
    assert receipt.status_code == 422 and "receipt.json is not the receipt the form asks for" in page_text(receipt.text)


def test_money_and_counts_print_one_way():
    from registry_service.web.desk import count, money

    assert (
        money("612500.00") == "$612,500.00" and money(Decimal("0.5")) == "$0.50" and money("1234567") == "$1,234,567.00"
    )
    assert count(2500) == "2,500"
    assert json.dumps(money("1.05")) == '"$1.05"'


def test_every_other_desk_form_says_its_refusals_plainly(svc):
    csrf = sign_in(svc, "clerk")
    pages = [
        svc.client.post("/desk/submissions/1/confirm", data={"csrf": csrf, "reason": ""}),
        svc.client.post("/desk/submissions/1/reject", data={"csrf": csrf, "reason": "x" * 3000}),
        svc.client.post("/desk/submissions/abc/confirm", data={"csrf": csrf, "reason": "ok"}),
        svc.client.post("/desk/mirror-flags/abc/ack", data={"csrf": csrf, "reason": "ok"}),
        svc.client.post("/desk/mirror-flags/1/ack", data={"csrf": csrf, "reason": ""}),
        svc.client.get("/desk/fees?day=yesterday"),
        svc.client.get("/desk/fees?day=2026-02-30"),
        svc.client.get("/desk/instruments/nonsense"),
        svc.client.get("/desk/file?corrects=1990-9999999"),
        svc.client.post("/desk/file", data={"csrf": csrf}),
        svc.client.post("/desk/file", data={**FORM, "csrf": csrf, "action": "quote", "page_count": "three"}),
    ]
    for page in pages:
        assert page.headers["content-type"].startswith("text/html"), page.text[:300]
        assert_plain(page_text(page.text), (page.url, page.status_code))
    svc.client.post("/desk/logout", data={"csrf": csrf})
    refused = svc.client.post("/desk/login", data={"csrf": csrf_of(svc.client.get("/desk/login").text),
                                                   "api_key": "lr_nonsense"})  # fmt: skip
    assert refused.status_code == 401
    assert_plain(page_text(refused.text), "a wrong key")
    assert 'aria-invalid="true" aria-describedby="login-error"' in refused.text
