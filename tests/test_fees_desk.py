"""Fees on the desk and the command line: the filing form's fee inputs and its "Work out the fees"
button (the statement shown on the form, every field kept, nothing filed), the submission page's
statement, the day's fee report (page, CSV) and `landreg fees report`."""

from __future__ import annotations

import csv
import io
import re

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from hybrid_store.db.models import Submission
from registry_service.cli.main import app as cli
from tests.conftest import ALL_CONFIRMATIONS, desk_attestations, recorded_on_desk
from tests.test_api import make_service


@pytest.fixture
def svc(tmp_path, db, chain):
    service = make_service(tmp_path, db, chain)
    with service.client:
        yield service


def _login(svc, role: str = "clerk") -> str:
    client = svc.client
    client.cookies.clear()
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/desk/login").text).group(1)
    client.post("/desk/login", data={"api_key": svc.keys[role], "csrf": csrf}, follow_redirects=False)
    return re.search(r'name="csrf" value="([^"]+)"', client.get("/desk/file").text).group(1)


def _form(csrf: str, **overrides: str) -> dict[str, str]:
    # a deed of 3 pages at $1,250,000, class 2, received after 2025-07-10. By hand: recording $30 + 2 x
    # $10 = $50.00, abstract $10.00, surcharge $5.00, RTF $12,600.00, graduated 1 % = $12,500.00 (the
    # grantor's): $25,165.00
    return {
        "csrf": csrf, "doc_type": "DEED", "grantors": "JOHN Q. SMITH", "grantees": "ANA LIMA",
        "municipality_0": "0223", "block_0": "31", "lot_0": "4", "consideration": "1,250,000.00",
        "document_digest": "cd" * 32, "page_count": "3", "preparer": "ANNA LEE, ESQ.",
        "grantee_mailing_address": "1 MAIN ST, TEANECK NJ", "property_class": "2", "exemption_claimed": "",
        **desk_attestations(), **overrides,
    }  # fmt: skip


def _post(svc, form: dict[str, str]):
    return svc.client.post("/desk/file", data=form, files={"document": ("", b"", "application/octet-stream")},
                           follow_redirects=False)  # fmt: skip


def test_the_form_works_out_the_fees_keeping_every_field_and_filing_nothing(svc):
    csrf = _login(svc)
    blank = svc.client.get("/desk/file").text
    assert 'name="property_class"' in blank and 'name="exemption_claimed"' in blank and 'id="quote-fees"' in blank
    assert "N.J.S.A. 46:15-10(d): which confirms or corrects a deed previously recorded" in blank
    r = _post(svc, _form(csrf, action="quote"))
    assert r.status_code == 200, r.text[:500]
    page = r.text
    assert 'id="fee-total">$25,165.00<' in page and "$12,500.00" in page and "paid by the grantor" in page
    assert 'id="tendered-amount">($25,165.00' in page  # the fees_tendered attestation names the amount shown
    # every field kept, the selects as chosen, and nothing filed
    assert 'value="1,250,000.00"' in page and 'value="2" selected' in page and "JOHN Q. SMITH" in page
    assert 'name="attest_fees_tendered" value="1" checked' in page
    with svc.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Submission)) == 0
    # a fee input the schedule does not know is shown on the form, as any other error
    refused = _post(svc, _form(csrf, action="quote", exemption_claimed="zz"))
    assert refused.status_code == 422 and 'id="err-exemption_claimed"' in refused.text
    # the same form, recorded: the submission page shows the statement stored with it
    filed = _post(svc, _form(csrf, confirm="new_parcel"))
    assert filed.status_code == 303
    _, submission_page = recorded_on_desk(svc, filed.headers["location"])
    assert 'id="fees"' in submission_page and 'id="fee-total">$25,165.00<' in submission_page


def test_a_deed_with_an_exemption_claimed_on_the_desk(svc):
    csrf = _login(svc)
    # a correction deed claiming (d), 1 page: $30.00 + $5.00, no abstract on a correction, no RTF
    r = _post(svc, _form(csrf, action="quote", doc_type="CORRECTION", page_count="1", exemption_claimed="d"))
    assert 'id="fee-total">$35.00<' in r.text and "exempt under N.J.S.A. 46:15-10(d)" in r.text
    # without the claim, the statement says (d) may be claimed, and charges the fee
    r = _post(svc, _form(csrf, action="quote", doc_type="CORRECTION", page_count="1", consideration="1000.00"))
    assert 'id="fee-notes"' in r.text and "may claim exemption (d)" in r.text


def test_the_days_fee_report_page_csv_and_command_line(svc, monkeypatch, tmp_path):
    bodies = []
    for i, pages in enumerate((2, 17)):
        r = svc.client.post("/api/v1/instruments", headers=svc.as_("clerk"), json={
            "doc_type": "MORTGAGE", "grantors": ["ANA LIMA"], "grantees": ["FIRST BANK"], "document_digest": f"{i}e" * 32,
            "parcels": [{"municipality_code": "0223", "block": "100.01", "lot": "5"}], "page_count": pages,
            "confirm": ALL_CONFIRMATIONS, "confirm_reason": "a parcel new to this test's book"})  # fmt: skip
        assert r.status_code == 201, r.text
        bodies.append(r.json())
    day = bodies[0]["fees"]["dayOfReceipt"]
    # by hand: mortgages pay recording and the surcharge: 2 pages $40.00 + $5.00; 17 pages $190.00 + $5.00
    _login(svc)
    page = svc.client.get(f"/desk/fees?day={day}").text
    assert 'id="fee-day-total">$240.00<' in page and bodies[1]["receipt"]["instrumentNumber"] in page
    assert re.search(r"<td>recording</td><td class=\"num\">\$230\.00</td>", page)
    assert svc.client.get("/desk/fees?day=yesterday").status_code == 422
    rows = list(csv.reader(io.StringIO(svc.client.get(f"/desk/fees.csv?day={day}").text)))
    assert rows[0][:5] == ["instrument_number", "recorded_at", "doc_type", "pages", "fee"]
    assert ["total", "", "", "", "", "", "240.00"] in rows and ["total", "", "", "", "surcharge", "", "10.00"] in rows
    _login(svc, "auditor")
    assert svc.client.get(f"/desk/fees?day={day}").status_code == 403
    # the command line, on the same database
    monkeypatch.setenv("DATABASE_URL", svc.db.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("LANDREG_HOME", str(tmp_path / "cli-home"))
    out = tmp_path / "fees.csv"
    run = CliRunner().invoke(cli, ["fees", "report", "--day", day, "--csv", str(out)])
    assert run.exit_code == 0, run.output
    assert "2 instruments, total $240.00" in run.output
    assert list(csv.reader(io.StringIO(out.read_text(encoding="utf-8")))) == rows
    bad = CliRunner().invoke(cli, ["fees", "report", "--day", "03/02/2026"])
    assert bad.exit_code == 1 and "YYYY-MM-DD" in bad.output
