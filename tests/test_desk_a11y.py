"""The desk is usable by keyboard and screen reader (issue 24, item 4), in a real browser against a
real `landreg serve`: axe-core (npm, node_modules/axe-core) finds nothing serious or critical on any
desk page; the first field has the focus when a form opens, the first wrong field after an error,
marked invalid and pointing at its message; a skip link leads past the navigation."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.test_desk_browser import browser, fill_deed, server, sign_in  # noqa: F401 - fixtures

pytestmark = [pytest.mark.anvil, pytest.mark.slow]

AXE = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"
#: the levels the issue forbids; "moderate" and "minor" findings are reported, not failed
FORBIDDEN = ("serious", "critical")

RUN_AXE = """async () => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                      nodes: v.nodes.slice(0, 4).map(n => n.target.join(' '))}));
}"""


def axe_violations(page) -> list[dict]:
    """axe-core's violations on the page as it stands (the script is loaded into the page: the
    desk's content security policy admits no script from elsewhere, so the test context bypasses it)."""
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    return page.evaluate(RUN_AXE)


def assert_accessible(page, name: str, found: dict[str, list]) -> None:
    violations = axe_violations(page)
    found[name] = [v for v in violations if v["impact"] in FORBIDDEN]
    # the lesser findings, for whoever runs this with -s (they are not failures)
    print(f"axe {name}: " + ("; ".join(f"{v['impact']} {v['id']} {v['nodes']}" for v in violations) or "nothing"))


def focused(page) -> str:
    return page.evaluate("document.activeElement ? (document.activeElement.name || document.activeElement.id) : ''")


def test_axe_finds_nothing_serious_on_any_desk_page(server, browser):  # noqa: F811
    assert AXE.exists(), "axe-core is a devDependency: npm install"
    base, clerk_key, auditor_key, _env = server
    context = browser.new_context(bypass_csp=True)
    clerk = context.new_page()
    found: dict[str, list] = {}

    clerk.goto(base + "/desk/login")
    # axe itself, on a page made wrong on purpose: a field with no label is a critical finding
    clerk.evaluate("document.querySelector('main').insertAdjacentHTML('beforeend', '<input id=unlabelled>')")
    assert any(v["id"] == "label" and v["impact"] == "critical" for v in axe_violations(clerk))
    clerk.reload()
    assert focused(clerk) == "api_key"  # the one field, focused on load
    assert_accessible(clerk, "login", found)
    sign_in(clerk, base, clerk_key)
    assert focused(clerk) == "party"  # search: the first field (a name)
    assert_accessible(clerk, "search", found)
    for queue in ("today", "mine", "review"):  # the queues the front page counts
        clerk.goto(f"{base}/desk/queues/{queue}")
        assert_accessible(clerk, f"queue {queue}", found)

    # the filing form, fresh and after a mistake
    clerk.goto(base + "/desk/file")
    assert focused(clerk) == "doc_type"
    assert_accessible(clerk, "filing form", found)
    fill_deed(clerk, base, "0223", "100.01", "5", "c3" * 32)
    clerk.fill("textarea[name=grantees]", "")
    clerk.fill("input[name=consideration]", "612,500 dollars")
    clerk.click("#record")
    clerk.wait_for_load_state()
    assert focused(clerk) == "grantees", "focus goes to the first wrong field"
    grantees = clerk.locator("textarea[name=grantees]")
    assert grantees.get_attribute("aria-invalid") == "true"
    described = grantees.get_attribute("aria-describedby")
    assert clerk.inner_text(f"#{described}").startswith("No grantee is given")
    assert clerk.locator("input[name=consideration]").get_attribute("aria-invalid") == "true"
    assert_accessible(clerk, "filing form with errors", found)

    # filed: the submission, the instrument, its certificate, the parcel
    clerk.fill("textarea[name=grantees]", "BEN BAKER")
    clerk.fill("input[name=consideration]", "612500.00")
    clerk.click("#record")
    clerk.wait_for_url(f"{base}/desk/submissions/*")
    assert_accessible(clerk, "submission", found)
    number = clerk.inner_text("#instrument-link")
    clerk.goto(f"{base}/desk/instruments/{number}")
    assert "$612,500.00" in clerk.inner_text("main")
    assert_accessible(clerk, "instrument", found)
    clerk.goto(f"{base}/desk/instruments/{number}/certificate")
    assert_accessible(clerk, "certificate", found)
    clerk.goto(base + "/desk/parcels/0223_100.01_5")
    assert_accessible(clerk, "parcel", found)
    clerk.goto(base + "/desk/?party=BAKER")
    assert_accessible(clerk, "search results", found)
    clerk.goto(base + "/desk/submissions")
    assert_accessible(clerk, "queue", found)
    clerk.goto(base + "/desk/fees")
    assert_accessible(clerk, "fees", found)
    clerk.goto(base + "/desk/fees?day=yesterday")
    assert focused(clerk) == "day"
    assert_accessible(clerk, "fees with an error", found)
    clerk.goto(base + "/desk/status")
    assert_accessible(clerk, "status", found)

    # the auditor's page: empty, a verdict, an upload that is not JSON
    auditor = browser.new_context(bypass_csp=True).new_page()
    sign_in(auditor, base, auditor_key)
    auditor.goto(base + "/desk/audit")
    assert focused(auditor) == "number"
    assert_accessible(auditor, "audit", found)
    deadline = time.monotonic() + 20
    auditor.goto(f"{base}/desk/audit?number={number}")
    while "Verified" not in auditor.inner_text("main") and time.monotonic() < deadline:
        time.sleep(0.5)
        auditor.reload()
    assert_accessible(auditor, "audit verdict", found)
    auditor.set_input_files("form[action='/desk/audit/verify'] input[name=bundle_file]",
                            files=[{"name": "bundle.json", "mimeType": "application/json", "buffer": b"hello"}])  # fmt: skip
    auditor.click("form[action='/desk/audit/verify'] button[type=submit]")
    auditor.wait_for_load_state()
    assert "bundle.json is not the proof bundle" in auditor.inner_text("#upload-error")
    assert focused(auditor) == "bundle_file"
    assert_accessible(auditor, "audit upload error", found)
    clerk.goto(f"{base}/verify/{number}")
    assert_accessible(clerk, "public verify page", found)

    serious = {page: v for page, v in found.items() if v}
    assert not serious, serious
    assert len(found) >= 17


def test_a_skip_link_leads_past_the_navigation(server, browser):  # noqa: F811
    base, clerk_key, _auditor_key, _env = server
    page = browser.new_context().new_page()
    sign_in(page, base, clerk_key)
    page.goto(base + "/desk/status")  # a page without a form: nothing takes the focus on load
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to the main content"
    assert page.locator("a.skip").is_visible()  # shown once it has the focus
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    page.keyboard.press("Tab")  # the next stop is past the navigation, not back at its first link
    assert page.evaluate("!document.activeElement.closest('header')")
    # on the filing form the first field has the focus: no Tab press at all to reach it
    page.goto(base + "/desk/file")
    assert focused(page) == "doc_type"
    page.keyboard.press("Tab")
    assert focused(page) == "grantors"  # then down the form in reading order
    page.keyboard.press("Tab")
    assert focused(page) == "grantees"
    # every action of the form is reached by Tab alone, in the order the form reads
    stops = []
    for _ in range(120):
        page.keyboard.press("Tab")
        stop = page.evaluate("document.activeElement.id || document.activeElement.name || ''")
        if stop == "record":
            break
        stops.append(stop)
    else:
        pytest.fail(f"the Record button is not reached by Tab: {stops}")
    for earlier, later in [("municipality_0", "block_0"), ("block_0", "consideration"), ("consideration", "document"),
                           ("document", "document_digest")]:  # fmt: skip
        assert stops.index(earlier) < stops.index(later), stops
    if "quote-fees" in stops:  # the registry has a fee schedule: its button is on the way
        assert stops.index("exemption_claimed") < stops.index("quote-fees") < stops.index("document"), stops
