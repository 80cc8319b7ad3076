"""Proof bundles: the frozen vectors, strict parsing, and tamper evidence for every byte."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybrid_store import anchoring, deployment
from hybrid_store.core import bundle as bundles
from hybrid_store.errors import MalformedBundle, VerificationFailed
from hybrid_store.filing import record_instruments
from hybrid_store.intake import validate
from hybrid_store.proofs import export_bundle
from hybrid_store.verifier.verdicts import verify_bytes, verify_document
from tests.conftest import deed, make_sqlite, trust_of

VECTOR_DIRS = ("bundle", "bundle-v2")  # landreg-commitment/v1 and /v2 records
VECTORS = sorted(p for d in VECTOR_DIRS for p in (Path(__file__).parent / "vectors" / d).glob("*.json"))


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.stem)
def test_bundle_vector(path):
    v = json.loads(path.read_text(encoding="utf-8"))
    expected = v["expected"]
    if expected.get("valid"):
        verdict = bundles.verify_offline(bundles.parse(v["bundle"]))
        assert verdict.root.hex() == v["bundle"]["tree"]["root"][2:]
    elif expected["kind"] == "malformed":
        with pytest.raises(MalformedBundle) as exc:
            bundles.parse(v["bundle"])
        assert exc.value.field == expected["field"]
    else:
        with pytest.raises(VerificationFailed):
            bundles.verify_offline(bundles.parse(v["bundle"]))


def test_every_negative_vector_names_its_mutation():
    for folder in VECTOR_DIRS:
        names = {p.stem for p in VECTORS if p.parent.name == folder}
        assert {"modified-proof@0-bit", "modified-value@grantors", "wrong-root", "wrong-salt@doc_type"} <= names
        assert sum(1 for n in names if not n.startswith("valid")) >= 15
    v2 = {p.stem for p in VECTORS if p.parent.name == "bundle-v2"}
    assert {"added-reference@references", "modified-value@supersedes", "relabelled-scheme@v1"} <= v2


@pytest.mark.parametrize("folder", VECTOR_DIRS)
def test_round_trip_is_exact(folder):
    v = json.loads((Path(__file__).parent / "vectors" / folder / "valid-deed.json").read_text())
    assert bundles.parse(v["bundle"]).to_json() == v["bundle"]
    assert v["bundle"]["record"]["scheme"] == (
        "landreg-commitment/v1" if folder == "bundle" else "landreg-commitment/v2"
    )


def test_unknown_top_level_member_and_wrong_types_are_named():
    v = json.loads((Path(__file__).parent / "vectors" / "bundle" / "valid-deed.json").read_text())["bundle"]
    for mutate, field in [
        (lambda b: b.__setitem__("extra", 1), "extra"),
        (lambda b: b["anchor"].__setitem__("blockNumber", "2"), "anchor.blockNumber"),
        (lambda b: b["anchor"].__setitem__("batchId", -1), "anchor.batchId"),
        (lambda b: b["tree"].__setitem__("proof", "0x00"), "tree.proof"),
        (lambda b: b["tree"]["proof"].__setitem__(0, "0x1234"), "tree.proof[0]"),
        (lambda b: b["record"]["fields"]["book"].pop("salt"), "record.fields.book.salt"),
        (lambda b: b.__setitem__("record", []), "record"),
    ]:
        b = json.loads(json.dumps(v))
        mutate(b)
        with pytest.raises(MalformedBundle) as exc:
            bundles.parse(b)
        assert exc.value.field == field


def _members(value, path=""):
    """Every member of a decoded bundle with its path as the parser names it (``tree.proof[2]``)."""
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        where = f"{path}.{key}" if isinstance(key, str) and path else key if isinstance(key, str) else f"{path}[{key}]"
        yield where, child
        yield from _members(child, where)


@pytest.mark.parametrize("folder", VECTOR_DIRS)
def test_a_member_of_the_wrong_kind_is_named_wherever_it_is(folder):
    """Each member of a bundle replaced in turn by values of the wrong kind: the parser names that
    member (or the member holding it, when that is checked whole), and no other: the parser reads a
    bundle's hashes and fields together, and names the first wrong one by reading them one by one."""
    v = json.loads((Path(__file__).parent / "vectors" / folder / "valid-deed.json").read_text())["bundle"]
    wrong = [None, True, 1.5, "0x" + "AB" * 32, "0x" + "ab" * 31, {"x": 1}, [[["deep"]]], "\ud800"]
    for where, _ in list(_members(v)):
        for replacement in wrong:
            b = json.loads(json.dumps(v))
            target, keys = b, [k for k in where.replace("]", "").replace("[", ".[").split(".")]
            for key in keys[:-1]:
                target = target[int(key[1:])] if key.startswith("[") else target[key]
            last = keys[-1]
            target[int(last[1:]) if last.startswith("[") else last] = replacement
            try:
                bundles.parse(b)
            except MalformedBundle as exc:  # the member, or a member around it checked whole, or one inside it
                assert _on_path(exc.field, where) or _on_path(where, exc.field), (where, replacement, exc.field)


def _on_path(inner: str, outer: str) -> bool:
    return inner == outer or inner.startswith((outer + ".", outer + "["))


def test_a_v2_bundle_carries_its_successor_and_round_trips_exactly():
    v = json.loads((Path(__file__).parent / "vectors" / "bundle" / "valid-deed.json").read_text())["bundle"]
    carried = {**v, "format": "landreg-proof-bundle/v2", "successor": v}
    parsed = bundles.parse(carried)
    assert parsed.successor is not None and parsed.successor.commitment == parsed.commitment
    assert parsed.to_json() == carried
    assert bundles.parse(v).to_json()["format"] == "landreg-proof-bundle/v1"  # no successor: written as before
    for document, field in [
        ({**v, "successor": v}, "successor"),  # a v1 has no successor
        ({**v, "format": "landreg-proof-bundle/v2"}, "format"),  # a v2 without one
        ({**carried, "successor": carried}, "successor.successor"),  # a successor carries no successor
        ({**carried, "successor": {**v, "format": "landreg-proof-bundle/v2"}}, "successor.format"),
        ({**carried, "successor": {**v, "extra": 1}}, "successor.extra"),
        ({**carried, "successor": {**v, "tree": {**v["tree"], "root": "0x12"}}}, "successor.tree.root"),
        ({**v, "format": "landreg-proof-bundle/v3"}, "corrections"),  # a v3 without corrections
        ({**v, "format": "landreg-proof-bundle/v4"}, "format"),
    ]:
        with pytest.raises(MalformedBundle) as exc:
            bundles.parse(document)
        assert exc.value.field == field


def test_a_v3_bundle_carries_its_corrections_and_round_trips_exactly():
    v = json.loads((Path(__file__).parent / "vectors" / "bundle" / "valid-deed.json").read_text())["bundle"]
    corrected = {**v, "format": "landreg-proof-bundle/v3", "corrections": [v, v]}
    parsed = bundles.parse(corrected)
    assert [c.commitment for c in parsed.corrections] == [parsed.commitment] * 2 and parsed.successor is None
    assert parsed.to_json() == corrected
    both = {**corrected, "successor": v}
    assert bundles.parse(both).to_json() == both
    carried = {**v, "format": "landreg-proof-bundle/v2", "successor": v}
    assert bundles.parse(carried).to_json()["format"] == "landreg-proof-bundle/v2"  # no corrections: still v2
    for document, field in [
        ({**v, "corrections": [v]}, "corrections"),  # a v1 has none
        ({**carried, "corrections": [v]}, "corrections"),  # nor a v2
        ({**corrected, "corrections": []}, "corrections"),
        ({**corrected, "corrections": [v] * (bundles.MAX_CORRECTIONS + 1)}, "corrections"),
        ({**corrected, "corrections": v}, "corrections"),
        ({**corrected, "corrections": [v, corrected]}, "corrections[1].corrections"),  # none of its own
        ({**corrected, "corrections": [carried]}, "corrections[0].successor"),
        ({**corrected, "corrections": [{**v, "format": "landreg-proof-bundle/v3"}]}, "corrections[0].format"),
        ({**corrected, "corrections": [{**v, "tree": {**v["tree"], "root": "0x12"}}]}, "corrections[0].tree.root"),
    ]:
        with pytest.raises(MalformedBundle) as exc:
            bundles.parse(document)
        assert exc.value.field == field


def test_duplicate_members_and_non_json_are_refused():
    text = (Path(__file__).parent / "vectors" / "bundle" / "valid-deed.json").read_text()
    bundle_text = json.dumps(json.loads(text)["bundle"])
    offline = verify_bytes(bundle_text.encode())
    assert offline.unchecked and not offline.valid  # the math holds; without a trust root never VALID
    doubled = bundle_text.replace(
        '"format": "landreg-proof-bundle/v1"', '"format": "x", "format": "landreg-proof-bundle/v1"'
    )
    verdict = verify_bytes(doubled.encode())
    assert not verdict.valid and "appears twice" in verdict.reason
    assert "not JSON" in verify_bytes(b"{").reason
    assert "not UTF-8" in verify_bytes(b'{"a": "\xff"}').reason
    assert "NaN is not a JSON value" in verify_bytes(b'{"a": NaN}').reason


# --- every byte of an anchored bundle -----------------------------------------------------------------
@pytest.fixture(scope="module")
def anchored(tmp_path_factory):
    """A real bundle: recorded in SQLite, anchored on an in-process chain."""
    from hybrid_store.chain.connect import eth_tester_chain

    db = make_sqlite(tmp_path_factory.mktemp("bundle"))
    with db.write() as s:
        made = record_instruments(
            s, [validate(deed(parcels=[{"municipality_code": "0223", "block": "7", "lot": str(i)}]))
                for i in range(1, 6)],
        )  # fmt: skip
    chain = eth_tester_chain()
    dep = deployment.attach(db, chain)
    anchoring.Anchorer(db, chain, dep).drain()
    with db.read() as s:
        bundle = export_bundle(s, made[2].instrument_number, redact=["consideration"])
    trust = trust_of(db, tmp_path_factory.mktemp("trust"))
    return json.dumps(bundle.to_json(), separators=(",", ":"), ensure_ascii=False).encode(), chain, trust


def verdict_of(raw: bytes, chain, trust) -> bool:
    verdict = verify_bytes(raw)
    if not verdict.unchecked:
        return False
    return verify_document(json.loads(raw), chain=chain, trust=trust).valid


def test_the_untouched_bundle_verifies_offline_and_on_chain(anchored):
    raw, chain, trust = anchored
    assert verify_bytes(raw).unchecked
    verdict = verify_document(json.loads(raw), chain=chain, trust=trust)
    assert verdict.valid and verdict.checked_on_chain, verdict.reason
    assert f"pinned to trust root v{trust.version}" in verdict.summary
    unpinned = verify_document(json.loads(raw), chain=chain)
    assert not unpinned.valid and "no trust root" in unpinned.reason


def test_changing_any_single_byte_fails_verification(anchored):
    """Exhaustive: every position, one replacement each (XOR 1, which keeps most bytes printable).
    The one exception is by design: the anchor's block number only says where the transaction was
    when the bundle was made (a reorganisation may move it), so another number verifies, and the
    verdict says the transaction is elsewhere."""
    raw, chain, trust = anchored
    passed = [i for i in range(len(raw)) if verdict_of(raw[:i] + bytes([raw[i] ^ 1]) + raw[i + 1 :], chain, trust)]
    digits = block_number_digits(raw)
    assert set(passed) <= set(digits), [raw[max(0, i - 20) : i + 20] for i in passed if i not in digits]
    for i in passed:
        moved = verify_document(json.loads(raw[:i] + bytes([raw[i] ^ 1]) + raw[i + 1 :]), chain=chain, trust=trust)
        assert "now in block" in moved.summary


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_random_byte_replacements_fail_verification(anchored, data):
    raw, chain, trust = anchored
    i = data.draw(st.integers(0, len(raw) - 1).filter(lambda k: k not in block_number_digits(raw)))
    b = data.draw(st.integers(0, 255).filter(lambda x: x != raw[i]))
    assert not verdict_of(raw[:i] + bytes([b]) + raw[i + 1 :], chain, trust)


def block_number_digits(raw: bytes) -> range:
    """Where the anchor's block number is written (not relied on: see the exhaustive test)."""
    number = raw.index(b'"blockNumber":') + len(b'"blockNumber":')
    return range(number, number + len(str(json.loads(raw)["anchor"]["blockNumber"])))
