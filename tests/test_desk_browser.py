"""The web desk in a real browser (Playwright driving Debian's Chromium, headless), against a real
`landreg serve` process with its anchoring worker, SQLite and a managed anvil node:
a clerk files a deed through the form and sees the receipt; an auditor verifies its proof."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.processes import landreg, landreg_out, spawn

pytestmark = [pytest.mark.anvil, pytest.mark.slow]

CHROMIUM = os.environ.get("LANDREG_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip


@pytest.fixture
def server(landreg_env, tmp_path):
    env = {**landreg_env, "LANDREG_ANCHORING__BATCH_MAX_AGE_S": "0.5"}
    clerk = landreg_out(env, "keys", "create", "clerk", "--name", "Pat Clerk, desk 2")
    auditor = landreg_out(env, "keys", "create", "auditor", "--name", "Alex Auditor")
    port = free_port()
    # the address certificates point at: another name for this server than the one it listens on
    env["LANDREG_SERVICE__PUBLIC_BASE_URL"] = f"http://localhost:{port}"
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115 - closed below
    proc = spawn(env, "serve", "--port", str(port), stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
        else:
            pytest.fail("server did not become ready: " + (tmp_path / "serve.log").read_text())
        yield base, clerk, auditor, env
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()
        landreg_out(env, "chain", "stop")


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        message = f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium package"
        if os.environ.get("LANDREG_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def sign_in(page, base: str, key: str) -> None:
    page.goto(base + "/desk/")
    assert "/desk/login" in page.url  # deny by default
    page.fill("#api_key", key)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/desk/")


def fill_index_and_attest(page) -> None:
    """What N.J.S.A. 46:26A-3 asks of a deed besides, and the clerk's attestations of the paper."""
    page.fill("input[name=preparer]", "ANNA LEE, ESQ.")
    page.fill("textarea[name=grantee_mailing_address]", "12 MAIN STREET, HACKENSACK NJ 07601")
    for box in page.query_selector_all("#attestations input[type=checkbox]"):
        box.check()


def fill_deed(page, base: str, place: str, block: str, lot: str, digest: str) -> None:
    page.goto(base + "/desk/file")
    page.select_option("select[name=doc_type]", "DEED")
    page.fill("textarea[name=grantors]", "ANNA ADAMS")
    page.fill("textarea[name=grantees]", "BEN BAKER")
    page.select_option("select[name=municipality_0]", place)
    page.fill("input[name=block_0]", block)
    page.fill("input[name=lot_0]", lot)
    page.fill("input[name=consideration]", "412500.00")
    page.fill("input[name=document_digest]", digest)
    fill_index_and_attest(page)


def instruments_on(base: str, key: str, parcel: str) -> int:
    r = httpx.get(f"{base}/api/v1/instruments", params={"parcel": parcel}, headers={"Authorization": f"Bearer {key}"})
    return r.json()["count"]


def test_back_and_resubmit_and_a_double_click_record_once(server, browser):
    """Issue 21: pressing Back after recording and submitting again recorded the same deed twice."""
    base, clerk_key, _auditor_key, _env = server
    page = browser.new_context().new_page()
    sign_in(page, base, clerk_key)
    fill_deed(page, base, "0223", "100.01", "5", "a1" * 32)
    page.click("#record")
    page.wait_for_url(f"{base}/desk/submissions/*")
    first = page.url
    assert page.inner_text("#submission-state") == "recorded"
    assert instruments_on(base, clerk_key, "0223_100.01_5") == 1

    page.go_back()  # the form again, as the browser kept it
    page.wait_for_url(f"{base}/desk/file")
    assert page.input_value("input[name=document_digest]") == "a1" * 32, "the browser kept the fields"
    page.click("#record")
    page.wait_for_url(f"{base}/desk/submissions/*")
    assert instruments_on(base, clerk_key, "0223_100.01_5") == 1  # recorded once
    assert page.url == first  # the first result, shown again
    assert "already submitted" in page.inner_text(".flash") and page.inner_text("#submission-state") == "recorded"

    # a double click on the submit button: one submission, one record
    fill_deed(page, base, "0201", "7", "1", "b2" * 32)
    page.dblclick("#record")
    page.wait_for_url(f"{base}/desk/submissions/*")
    page.wait_for_load_state()
    assert page.inner_text("#submission-state") == "recorded"
    assert instruments_on(base, clerk_key, "0201_7_1") == 1
    queue = httpx.get(f"{base}/api/v1/submissions", params={"state": "recorded"},
                      headers={"Authorization": f"Bearer {clerk_key}"}).json()  # fmt: skip
    assert [s["parcels"] for s in queue["data"]].count(["0201_7_1"]) == 1


def test_a_typo_in_the_block_waits_on_the_desk_until_a_clerk_confirms_it(server, browser):
    base, clerk_key, _auditor_key, _env = server
    page = browser.new_context().new_page()
    sign_in(page, base, clerk_key)
    fill_deed(page, base, "0223", "100.01", "5", "c3" * 32)  # Hackensack's book begins
    page.click("#record")
    page.wait_for_url(f"{base}/desk/submissions/*")
    fill_deed(page, base, "0223", "99999", "77", "d4" * 32)
    page.uncheck("input[name=attest_acknowledged]")
    page.fill("input[name=preparer]", "")
    page.click("#record")
    page.wait_for_url(f"{base}/desk/submissions/*")
    assert page.inner_text("#submission-state") == "rejected"  # every ground at once, nothing recorded
    grounds = [li.get_attribute("data-code") for li in page.query_selector_all("#findings li")]
    assert grounds == ["not_acknowledged", "no_preparer"]

    fill_deed(page, base, "0223", "99999", "77", "d4" * 32)
    page.click("#record")
    page.wait_for_url(f"{base}/desk/submissions/*")
    assert page.inner_text("#submission-state") == "waiting"
    assert "0223_99999_77 is not in the registry's book" in page.inner_text("#findings")
    assert page.inner_text("#record-by") and page.inner_text("#reject-by")
    assert instruments_on(base, clerk_key, "0223_99999_77") == 0
    page.click("text=Waiting submissions")
    assert "0223_99999_77" in page.inner_text("#queue")
    page.click("#queue a")
    page.fill("#confirm-form textarea[name=reason]", "a new lot of the 2026 tax map revision")
    page.click("#confirm-form button[type=submit]")
    page.wait_for_load_state()
    assert page.inner_text("#submission-state") == "recorded"
    assert "Confirmed and recorded as instrument" in page.inner_text(".flash")
    assert instruments_on(base, clerk_key, "0223_99999_77") == 1


def test_clerk_files_a_deed_and_an_auditor_verifies_it(server, browser, tmp_path):
    base, clerk_key, auditor_key, _env = server
    clerk = browser.new_context(accept_downloads=True).new_page()
    sign_in(clerk, base, clerk_key)

    # a mistake first: an impossible lot is refused inline and nothing is recorded
    clerk.click("text=File an instrument")
    clerk.select_option("select[name=doc_type]", "DEED")
    clerk.fill("textarea[name=grantors]", "ANNA ADAMS")
    clerk.fill("textarea[name=grantees]", "BEN BAKER\nCARLA BAKER")
    clerk.select_option("select[name=municipality_0]", "0223")
    clerk.fill("input[name=block_0]", "100.01")
    clerk.fill("input[name=lot_0]", "5/6")
    clerk.fill("input[name=consideration]", "$412,500.00")
    clerk.fill("textarea[name=legal_description]", "ALL that certain lot in the City of Hackensack.")
    document = tmp_path / "deed-scan.pdf"
    document.write_bytes(b"%PDF-1.4 scanned deed " + os.urandom(64))
    clerk.set_input_files("input[name=document]", str(document))
    clerk.click("#record")
    assert "not recorded" in clerk.inner_text("main")
    assert "tax-map number" in clerk.inner_text("#err-lot_0")
    assert clerk.input_value("textarea[name=grantees]") == "BEN BAKER\nCARLA BAKER"  # the form keeps what was typed

    # corrected and filed: examined, recorded at once, and shown on the submission's page
    clerk.fill("input[name=lot_0]", "5")
    fill_index_and_attest(clerk)
    clerk.set_input_files("input[name=document]", str(document))
    clerk.click("#record")
    clerk.wait_for_url(f"{base}/desk/submissions/*")
    assert clerk.inner_text("#submission-state") == "recorded"
    number = clerk.inner_text("#instrument-link")
    assert f"Recorded as instrument {number}" in clerk.inner_text(".flash")
    clerk.click("#instrument-link")
    clerk.wait_for_url(f"{base}/desk/instruments/{number}")
    with clerk.expect_download() as download:
        clerk.click("#download-receipt")
    receipt = json.loads(Path(download.value.path()).read_text())
    assert receipt["instrumentNumber"] == number and receipt["signature"]["alg"] == "Ed25519"
    import hashlib

    assert receipt["documentDigest"] == hashlib.sha256(document.read_bytes()).hexdigest()
    assert clerk.inner_text("#commitment") == receipt["commitment"]

    deadline = time.monotonic() + 20  # anchored within the worker's window
    while clerk.inner_text("#anchoring-status") != "anchored" and time.monotonic() < deadline:
        time.sleep(0.5)
        clerk.reload()
    assert clerk.inner_text("#anchoring-status") == "anchored"
    with clerk.expect_download() as download:
        clerk.click("#download-bundle")
    bundle_path = tmp_path / "bundle.json"
    download.value.save_as(bundle_path)
    clerk.goto(base + "/desk/parcels/0223_100.01_5")
    assert "BEN BAKER; CARLA BAKER" in clerk.inner_text("main") and "ERC-721 #1" in clerk.inner_text("main")
    clerk.screenshot(path=str(tmp_path / "parcel.png"), full_page=True)

    # the auditor: look up by number, then upload the bundle, then a tampered one
    auditor = browser.new_context().new_page()
    sign_in(auditor, base, auditor_key)
    assert "File an instrument" not in auditor.inner_text("nav")  # auditors never write
    auditor.click("text=Verify proofs")
    auditor.fill("input[name=number]", number)
    auditor.click("form[action='/desk/audit'] button[type=submit]")
    assert "✔ Verified" in auditor.inner_text("#verdict")
    assert "not revoked" in auditor.inner_text("#verdict") and auditor.inner_text("#verdict-chain") == "31337"
    assert auditor.inner_text("#verdict-trust").startswith("trust root version ")  # pinned, never the bundle's word
    auditor.set_input_files("form[action='/desk/audit/verify'] input[name=bundle_file]", str(bundle_path))
    auditor.click("form[action='/desk/audit/verify'] button[type=submit]")
    assert "✔ Verified" in auditor.inner_text("#verdict")
    tampered = json.loads(bundle_path.read_text())
    tampered["record"]["fields"]["consideration"]["value"] = 1
    bad = tmp_path / "tampered.json"
    bad.write_text(json.dumps(tampered))
    auditor.set_input_files("form[action='/desk/audit/verify'] input[name=bundle_file]", str(bad))
    auditor.click("form[action='/desk/audit/verify'] button[type=submit]")
    assert "✘ Not verified" in auditor.inner_text("#verdict")
    assert "do not produce its commitment" in auditor.inner_text("#verdict")
    auditor.screenshot(path=str(tmp_path / "audit.png"), full_page=True)
    # an auditor's session cannot reach the filing form
    auditor.goto(base + "/desk/file")
    assert "may not file" in auditor.inner_text("main")


def test_the_desk_works_without_javascript(server, browser):
    base, clerk_key, _auditor_key, _env = server
    page = browser.new_context(java_script_enabled=False).new_page()
    sign_in(page, base, clerk_key)
    response = page.goto(base + "/desk/status")
    assert response.status == 200, page.content()
    assert "Anchoring status" in page.inner_text("main h1")
    assert "No stage planned yet" in page.inner_text("#stages")  # the migration section, before any stage
    assert "No reconciliation run yet" in page.inner_text("#reconciliations")
    page.goto(base + "/desk/?party=NOBODY")  # a link to a search, without the form's marker
    assert "No instrument matches every criterion given" in page.inner_text("#no-results")


def test_a_form_without_its_csrf_token_is_refused(server):
    base, clerk_key, _auditor, _env = server
    with httpx.Client(base_url=base) as client:
        login = client.get("/desk/login")
        assert login.status_code == 200
        r = client.post("/desk/login", data={"api_key": clerk_key, "csrf": "forged"})
        assert r.status_code == 403 and "expired or came from another site" in r.text


def test_chromium_is_where_the_tests_expect_it():
    if not shutil.which("chromium") and not Path(CHROMIUM).exists() and os.environ.get("LANDREG_REQUIRE_BROWSER"):
        pytest.fail("Chromium is missing although LANDREG_REQUIRE_BROWSER is set")


def fill_a_deed(page) -> None:
    page.select_option("select[name=doc_type]", "DEED")
    page.fill("textarea[name=grantors]", "ANNA ADAMS")
    page.fill("textarea[name=grantees]", "BEN BAKER\nCARLA BAKER")
    page.select_option("select[name=municipality_0]", "0223")
    page.fill("input[name=block_0]", "100.01")
    page.fill("input[name=lot_0]", "5")
    page.fill("input[name=consideration]", "$412,500.00")
    page.fill("textarea[name=legal_description]", "ALL that certain lot in the City of Hackensack.")
    page.fill("input[name=preparer]", "ANNA ADAMS, ESQ.")
    page.fill("textarea[name=grantee_mailing_address]", "1 MAIN ST\nHACKENSACK, NJ 07601")
    for box in page.query_selector_all("#attestations input[type=checkbox]"):
        box.check()


def assert_the_form_kept_what_was_typed(page) -> None:
    assert page.input_value("input[name=preparer]") == "ANNA ADAMS, ESQ."
    assert all(box.is_checked() for box in page.query_selector_all("#attestations input[type=checkbox]"))
    assert page.input_value("textarea[name=grantees]") == "BEN BAKER\nCARLA BAKER"
    assert page.input_value("input[name=block_0]") == "100.01" and page.input_value("input[name=lot_0]") == "5"
    assert page.input_value("select[name=municipality_0]") == "0223"
    assert page.input_value("input[name=consideration]") == "$412,500.00"  # as typed
    assert "attach the scanned document again" in page.inner_text("#form-error")
    assert page.eval_on_selector("link[rel=stylesheet]", "e => e.href").endswith("/static/desk.css")


def test_a_scan_over_50_mb_gives_the_form_back_with_what_was_typed(server, browser, tmp_path):
    base, clerk_key, _auditor_key, _env = server
    page = browser.new_context().new_page()
    sign_in(page, base, clerk_key)
    page.goto(base + "/desk/file")
    form = page.inner_text("form[action='/desk/file']")
    assert "Scanned document: PDF or image, up to 50 MB" in form  # said before anyone tries
    fill_a_deed(page)
    big = tmp_path / "scan-60mb.pdf"
    with big.open("wb") as f:
        f.truncate(60 * 1024 * 1024)
    page.set_input_files("input[name=document]", str(big))
    with page.expect_navigation() as answer:
        page.click("#record")
    assert answer.value.status == 413 and answer.value.headers["content-type"].startswith("text/html")
    assert "The scanned document is larger than 50 MB" in page.inner_text("#form-error")
    assert_the_form_kept_what_was_typed(page)
    page.screenshot(path=str(tmp_path / "too-large.png"), full_page=True)


def test_two_scanned_documents_give_the_form_back_with_what_was_typed(server, browser, tmp_path):
    base, clerk_key, _auditor_key, _env = server
    page = browser.new_context().new_page()
    sign_in(page, base, clerk_key)
    page.goto(base + "/desk/file")
    fill_a_deed(page)
    scans = [tmp_path / "page-1.pdf", tmp_path / "page-2.pdf"]
    for n, scan in enumerate(scans):
        scan.write_bytes(b"%%PDF-1.4 page %d" % n)
    page.eval_on_selector("input[name=document]", "e => e.multiple = true")  # two parts named `document`
    page.set_input_files("input[name=document]", [str(s) for s in scans])
    with page.expect_navigation() as answer:
        page.click("#record")
    assert answer.value.status == 400 and answer.value.headers["content-type"].startswith("text/html")
    assert "The form carried 2 files where it takes one scanned document" in page.inner_text("#form-error")
    assert_the_form_kept_what_was_typed(page)
    # and once one scan is attached, the same form records the deed
    page.set_input_files("input[name=document]", str(scans[0]))
    page.click("#record")
    page.wait_for_url(f"{base}/desk/submissions/*")  # examined: recorded, or waiting on a finding; never refused
    assert "Rejected" not in page.inner_text(".flash")


# --- the certificate of recording --------------------------------------------------------------------
PRINTED = {"Letter": (8.5, 0.4), "A4": (8.27, 0.4)}  # page width and Chromium's default margins, inches


def printed(pdf: bytes) -> tuple[int, str, list[str]]:
    """How many pages a PDF has, the text of its first page, and the QR codes on it, read from the
    page as printed."""
    import pypdfium2
    import zxingcpp

    document = pypdfium2.PdfDocument(pdf)
    try:
        bitmap = document[0].render(scale=3, grayscale=True)  # one byte a pixel, rows ``stride`` bytes apart
        image = memoryview(bytes(bitmap.buffer)).cast("B", (bitmap.height, bitmap.stride))
        text = document[0].get_textpage().get_text_range()
        return len(document), text, [code.text for code in zxingcpp.read_barcodes(image)]
    finally:
        document.close()


def overflowing(page) -> list[str]:
    """The elements whose right edge passes the page's width (cut off at the edge when printed)."""
    return page.evaluate("""() => {
        const width = document.documentElement.clientWidth;
        return [...document.querySelectorAll('body *')].filter(e => e.getClientRects().length)
          .filter(e => e.getBoundingClientRect().right > width + 0.5)
          .map(e => `${e.tagName}#${e.id}.${e.className} right=${e.getBoundingClientRect().right} > ${width}`);
    }""")


def record_on_the_desk(clerk, base: str) -> str:
    fill_deed(clerk, base, "0223", "100.01", "5", "e5" * 32)
    clerk.fill("textarea[name=grantees]", "BEN BAKER\nCARLA BAKER-" + "MONTGOMERY" * 8)  # a long name must wrap
    clerk.fill("input[name=page_count]", "4")
    clerk.click("#record")
    clerk.wait_for_url(f"{base}/desk/submissions/*")
    assert clerk.inner_text("#submission-state") == "recorded"
    number = clerk.inner_text("#instrument-link")
    clerk.click("#instrument-link")
    deadline = time.monotonic() + 20  # anchored within the worker's window
    while clerk.inner_text("#anchoring-status") != "anchored" and time.monotonic() < deadline:
        time.sleep(0.5)
        clerk.reload()
    assert clerk.inner_text("#anchoring-status") == "anchored"
    return number


def test_the_certificate_prints_on_one_page_and_its_qr_code_opens_the_public_verify_page(server, browser, tmp_path):
    base, clerk_key, _auditor_key, env = server
    clerk = browser.new_context(accept_downloads=True).new_page()
    sign_in(clerk, base, clerk_key)
    number = record_on_the_desk(clerk, base)
    public_url = f"http://localhost:{base.rsplit(':', 1)[1]}/verify/{number}"
    clerk.click("#certificate-link")
    clerk.wait_for_url(f"{base}/desk/instruments/{number}/certificate")
    assert clerk.inner_text("#cert-number") == number and clerk.inner_text("#cert-pages") == "4"
    assert clerk.inner_text("#verify-url") == public_url

    clerk.emulate_media(media="print")
    for name, (width, margin) in PRINTED.items():
        clerk.set_viewport_size({"width": round((width - 2 * margin) * 96), "height": 1000})
        assert overflowing(clerk) == [], name  # nothing cut at the edge; the long names wrap
        hidden = clerk.evaluate("""() => [...document.querySelectorAll('body > header, nav, footer, button, .button, form')]
                                    .filter(e => e.getClientRects().length).map(e => e.outerHTML.slice(0, 80))""")
        assert hidden == [], name  # no navigation or buttons on paper
        pdf = clerk.pdf(format=name, margin={side: f"{margin}in" for side in ("top", "right", "bottom", "left")})
        (tmp_path / f"certificate-{name}.pdf").write_bytes(pdf)
        pages, text, codes = printed(pdf)
        assert (pages, codes) == (1, [public_url]), name
        assert "Certificate of recording" in text and f"Instrument {number} is recorded in book" in text, text
        assert "BERGEN COUNTY CLERK" in text.upper() and "ANNA ADAMS" in text
        # by hand: 4 pages $30 + 3 x $10; abstract $10; surcharge $5; transfer fee on $412,500 (the table over
        # $350,000): 300 x $2.90 + 100 x $4.25 + 425 x $4.80 = $3,335.00; in all $3,410.00
        assert "$3,335.00" in text and "$3,410.00" in text
        assert "Sign out" not in text and "Back to the instrument" not in text
    clerk.emulate_media(media="screen")

    # whoever scans it, signed in or not: the verdict and the anchor, never the deed's content
    anyone = browser.new_context().new_page()
    anyone.goto(codes[0])
    assert "✔ Verified: recorded and anchored" in anyone.inner_text("#verdict")
    assert anyone.inner_text("#verify-chain") == "31337" and anyone.inner_text("#verify-tx").startswith("0x")
    assert "publishes no field" in anyone.inner_text("#verify-fields")
    shown = anyone.inner_text("body")
    for private in ("ANNA ADAMS", "BEN BAKER", "412", "HACKENSACK", "Hackensack", "ANNA LEE"):
        assert private not in shown, private
    anyone.screenshot(path=str(tmp_path / "verify.png"), full_page=True)


def test_the_downloaded_receipt_verifies_on_the_command_line_the_api_and_the_desk(server, browser, tmp_path):
    base, clerk_key, auditor_key, env = server
    clerk = browser.new_context(accept_downloads=True).new_page()
    sign_in(clerk, base, clerk_key)
    number = record_on_the_desk(clerk, base)
    files = {}
    for link in ("#download-receipt", "#download-bundle"):
        with clerk.expect_download() as download:
            clerk.click(link)
        files[link] = tmp_path / download.value.suggested_filename
        download.value.save_as(files[link])
    receipt_file, bundle_file = files["#download-receipt"], files["#download-bundle"]
    assert receipt_file.name == f"landreg-receipt-{number}.json"
    receipt = json.loads(receipt_file.read_text())
    assert (
        receipt["format"] == "landreg-receipt/v2" and receipt["flags"] == [] and receipt["fees"]["totalCents"] == 341000
    )  # $3,410.00, worked by hand in the certificate's test
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps({**receipt, "fees": {"lines": [], "totalCents": 0}}))
    rpc = f"http://127.0.0.1:{env['LANDREG_CHAIN__ANVIL_PORT']}"
    trust = Path(env["LANDREG_HOME"]) / "trust" / "root.json"

    auditor = browser.new_context().new_page()
    sign_in(auditor, base, auditor_key)
    for path, want in ((receipt_file, "valid"), (tampered, "invalid")):
        cli = json.loads(landreg(env, "receipt", "verify", str(path), "--bundle", str(bundle_file), "--rpc", rpc,
                                 "--trust", str(trust), "--json").stdout)  # fmt: skip
        api = httpx.post(base + "/api/v1/receipts/verify", timeout=60,
                         json={"receipt": json.loads(path.read_text()), "bundle": json.loads(bundle_file.read_text())})  # fmt: skip
        auditor.goto(base + "/desk/audit")
        auditor.set_input_files("form[action='/desk/audit/receipt'] input[name=receipt_file]", str(path))
        auditor.set_input_files("form[action='/desk/audit/receipt'] input[name=bundle_file]", str(bundle_file))
        auditor.click("form[action='/desk/audit/receipt'] button[type=submit]")
        desk = auditor.inner_text("#verdict")
        assert (cli["status"], api.json()["status"]) == (want, want), (cli, api.text)
        assert ("✔ Verified" if want == "valid" else "✘ Not verified") in desk
    assert "signature does not match" in cli["reason"]


def test_a_clerk_pages_past_25_and_works_the_queues(server, browser):
    """Issue 24: search stopped at "25 instruments (newest shown)"; an empty search said nothing;
    there was no list of today's filings, of mine, or of what waits for review."""
    from tests.conftest import deed, filing

    base, clerk_key, _auditor_key, _env = server
    api = {"Authorization": f"Bearer {clerk_key}"}
    for i in range(27):
        lot = [{"municipality_code": "0223", "block": "300", "lot": str(i + 1)}]  # each a new parcel: no flag
        r = httpx.post(f"{base}/api/v1/instruments", json=filing(grantors=["PRIOR OWNER"], parcels=lot,
                       grantees=[f"SØREN BUYER {i}"]), headers=api, timeout=30)  # fmt: skip
        assert r.status_code == 201, r.text
    waiting = httpx.post(f"{base}/api/v1/instruments", headers=api, timeout=30,
                         json=deed(parcels=[{"municipality_code": "0223", "block": "88", "lot": "8"}]))  # fmt: skip
    assert waiting.status_code == 202, waiting.text
    page = browser.new_context().new_page()
    sign_in(page, base, clerk_key)
    assert page.inner_text("#queue-today .count") == "28" and page.inner_text("#queue-mine .count") == "28"
    assert page.inner_text("#queue-review .count") == "1"

    page.click("#search button[type=submit]")  # an empty form says what to enter
    assert "Enter something to search for" in page.inner_text("#search-errors")
    page.fill("input[name=block]", "100.01")
    page.fill("input[name=lot]", "5")
    page.click("#search button[type=submit]")
    assert "choose the municipality as well" in page.inner_text("#search-errors")

    page.goto(base + "/desk/")
    page.fill("input[name=party]", "soren")  # the keyboard's spelling of SØREN
    page.click("#search button[type=submit]")
    assert page.inner_text("#results-heading") == "Instruments 1–25"
    assert [th.inner_text() for th in page.query_selector_all("#results th")][1:3] == ["Book", "Page"]
    first = [a.inner_text() for a in page.query_selector_all("#results tbody tr td:first-child a")]
    page.click("#next-page")
    assert page.inner_text("#results-heading") == "Instruments 26–27, the last that match"
    second = [a.inner_text() for a in page.query_selector_all("#results tbody tr td:first-child a")]
    assert len(set(first + second)) == 27 and not page.query_selector("#next-page")

    page.goto(base + "/desk/")
    page.click("#queue-today")
    assert len(page.query_selector_all("#queue tbody tr")) == 28
    page.goto(base + "/desk/")
    page.click("#queue-mine")
    assert len(page.query_selector_all("#queue tbody tr")) == 28
    page.goto(base + "/desk/")
    page.click("#queue-review")
    assert "0223_88_8" in page.inner_text("#review-submissions")
    page.click("#review-submissions a")
    page.wait_for_url(f"{base}/desk/submissions/*")
    assert page.inner_text("#submission-state") == "waiting"
