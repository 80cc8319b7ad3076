"""The desk answers its own limits as the desk: too many files or fields, a field or a whole upload
too large, on every desk form, is a page in the desk's style that says what happened and shows the
form again with what was typed (a file cannot be kept, and the page says so). Nothing is recorded."""

from __future__ import annotations

import re

import pytest

from tests.test_api import instruments, make_service

TYPED = {
    "doc_type": "DEED", "grantors": "ANNA ADAMS", "grantees": "BEN BAKER\nCARLA BAKER", "municipality_0": "0223",
    "block_0": "100.01", "lot_0": "5", "consideration": "412500.00", "legal_description": "ALL that lot in Hackensack.",
}  # fmt: skip


@pytest.fixture
def desk(tmp_path, db, chain):
    svc = make_service(tmp_path, db, chain)
    with svc.client:
        yield svc


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def sign_in(svc, role: str) -> str:
    token = csrf_of(svc.client.get("/desk/login").text)
    r = svc.client.post("/desk/login", data={"api_key": svc.keys[role], "csrf": token}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return csrf_of(svc.client.get("/desk/").text)


def assert_desk_page(r, status: int, *said: str) -> None:
    assert r.status_code == status, r.text[:500]
    assert r.headers["content-type"].startswith("text/html"), r.headers["content-type"]
    assert '<link rel="stylesheet" href="/static/desk.css">' in r.text  # the desk's own page, not a bare one
    for words in said:
        assert words in r.text, (words, r.text[:3000])


def assert_kept(html: str) -> None:
    """The filing form again, holding what the clerk typed."""
    assert '<form method="post" action="/desk/file"' in html
    assert ">ANNA ADAMS</textarea>" in html and ">BEN BAKER\nCARLA BAKER</textarea>" in html
    assert 'name="block_0" value="100.01"' in html and 'name="consideration" value="412500.00"' in html
    assert '<option value="0223" selected>' in html
    assert "attach the scanned document again (a page cannot keep a file)" in html


def filing_parts(csrf: str, *documents: tuple[str, bytes]) -> list[tuple[str, tuple]]:
    fields = [(name, (None, value)) for name, value in {"csrf": csrf, **TYPED}.items()]
    return fields + [("document", (name, content, "application/pdf")) for name, content in documents]


def test_two_scanned_documents_give_the_form_back(desk):
    csrf = sign_in(desk, "clerk")
    r = desk.client.post("/desk/file", files=filing_parts(csrf, ("a.pdf", b"%PDF one"), ("b.pdf", b"%PDF two")))
    assert_desk_page(r, 400, "The form carried 2 files where it takes one scanned document")
    assert_kept(r.text)
    assert instruments(desk.db) == 0


def test_too_many_fields_on_the_filing_form_give_the_form_back(desk):
    csrf = sign_in(desk, "clerk")
    extra = [(f"x{n}", (None, "1")) for n in range(100)]
    r = desk.client.post("/desk/file", files=filing_parts(csrf, ("a.pdf", b"%PDF")) + extra)
    assert_desk_page(r, 400, "The form carried more than 60 fields")
    assert_kept(r.text)
    assert instruments(desk.db) == 0


def test_a_field_over_a_megabyte_gives_the_form_back(desk):
    csrf = sign_in(desk, "clerk")
    parts = filing_parts(csrf, ("a.pdf", b"%PDF")) + [("document_digest", (None, "a" * 1_100_000))]
    r = desk.client.post("/desk/file", files=parts)
    assert_desk_page(r, 413, "The document_digest field is longer than 1 MB")
    assert_kept(r.text)
    assert instruments(desk.db) == 0


def test_an_upload_over_the_limit_gives_the_form_back_and_the_form_states_the_limit(desk):
    csrf = sign_in(desk, "clerk")
    assert "Scanned document: PDF or image, up to 50 MB" in desk.client.get("/desk/file").text  # before trying
    r = desk.client.post("/desk/file", files=filing_parts(csrf, ("scan.pdf", b"x" * 54_000_000)))
    assert_desk_page(r, 413, "The scanned document is larger than 50 MB, the most the desk takes", "Nothing was saved")
    assert_kept(r.text)
    assert instruments(desk.db) == 0


def test_ten_thousand_fields_on_the_sign_in_form_give_the_sign_in_page(desk):
    token = csrf_of(desk.client.get("/desk/login").text)
    fields = {"csrf": token, "next": "/desk/status", **{f"f{n}": "1" for n in range(10_000)}}
    r = desk.client.post("/desk/login", data=fields, follow_redirects=False)
    assert_desk_page(r, 400, "The form carried more than 10 fields", "Enter your key again")
    assert 'name="next" value="/desk/status"' in r.text and 'id="api_key"' in r.text  # where they were going
    multipart = [("csrf", (None, token))] + [(f"f{n}", (None, "1")) for n in range(10_000)]
    r = desk.client.post("/desk/login", files=multipart, follow_redirects=False)
    assert_desk_page(r, 400, "The form carried more than 10 fields")
    r = desk.client.post("/desk/login", files=[("csrf", (None, token)), ("f", ("key.txt", b"lr_", "text/plain"))],
                         follow_redirects=False)  # fmt: skip
    assert_desk_page(r, 400, "The form carried a file, and it takes none")
    r = desk.client.post("/desk/login", data={"csrf": token, "api_key": "x" * 2_000_000}, follow_redirects=False)
    assert_desk_page(r, 413, "The form was larger than 1 MB")


def test_the_audit_forms_answer_their_limits_with_the_audit_page(desk):
    csrf = sign_in(desk, "auditor")
    bundle = ("bundle.json", b"{}", "application/json")
    r = desk.client.post("/desk/audit/verify", files=[("csrf", (None, csrf)), ("bundle_file", bundle),
                                                       ("bundle_file", bundle)])  # fmt: skip
    assert_desk_page(r, 400, "The form carried 2 files where it takes one JSON file", "Choose the file again")
    assert 'action="/desk/audit/verify"' in r.text
    r = desk.client.post("/desk/audit/receipt", files=[("csrf", (None, csrf)), ("receipt_file", bundle),
                                                        ("bundle_file", ("b.json", b"x" * 1_100_000, "application/json"))])  # fmt: skip
    assert_desk_page(r, 413, "The form was larger than 1 MB", "Choose the files again")
    r = desk.client.post("/desk/audit/receipt", files=[("csrf", (None, csrf)), ("receipt_file", bundle)])
    assert_desk_page(r, 422, "Choose the JSON file for each box")


def test_the_flag_and_sign_out_forms_answer_their_limits_with_a_desk_page(desk):
    csrf = sign_in(desk, "operator")
    fields = {"csrf": csrf, "reason": "the county re-keyed it", **{f"f{n}": "1" for n in range(50)}}
    r = desk.client.post("/desk/mirror-flags/1/ack", data=fields)
    assert_desk_page(r, 400, "The form carried more than 10 fields", "the county re-keyed it")
    r = desk.client.post("/desk/logout", data={"csrf": csrf, **{f"f{n}": "1" for n in range(50)}})
    assert_desk_page(r, 400, "The form carried more than 10 fields")


def test_the_api_still_answers_its_limits_in_json(desk):
    r = desk.client.post("/api/v1/instruments", content=b"x" * 2_000_000,
                         headers={**desk.as_("clerk"), "Content-Type": "application/json"})  # fmt: skip
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
