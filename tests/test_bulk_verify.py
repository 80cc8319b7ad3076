"""Verifying many bundles at once (issue 25): `landreg verify FOLDER|FILE.jsonl|FILE...`.

A real registry (SQLite, the in-process chain) anchors 24 records in three batches, and a second
registry on the same chain anchors one of its own. Each forgery an auditor may meet among the
bundles is named with its own verdict and reason, offline; the totals and the exit status are the
run's; JSON lines are named FILE:LINE. On chain, each batch's anchor is read once however many
bundles name it (counted by a reader around the real chain client), each bundle's own leaf is still
asked of the contract, and the verdicts are those of one-by-one verification. A real anvil node
behind the command line, then down, then hung, closes the file. Speed is a benchmark
(bench/bulk_verify.py), never a test.
"""

from __future__ import annotations

import copy
import csv
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from hybrid_store import anchoring, deployment
from hybrid_store.chain.client import RegistryChain, account_from_key
from hybrid_store.core import bundle as bundles
from hybrid_store.core import merkle
from hybrid_store.core.hashing import to_hex
from hybrid_store.db.engine import Database
from hybrid_store.filing import record_instruments
from hybrid_store.intake import validate
from hybrid_store.proofs import export_bundle
from hybrid_store.verifier import bulk
from hybrid_store.verifier.trust import load
from hybrid_store.verifier.verdicts import verify_document
from registry_service.cli.main import app
from tests.conftest import deed, landreg_environment, make_sqlite, trust_of

RECORDS, PER_BATCH = 24, 8
Bundle = dict[str, Any]


def lot(n: int) -> list[dict[str, str]]:
    return [{"municipality_code": "0223", "block": "77", "lot": str(n)}]


def anchored(db: Database, chain: RegistryChain, records: int, per_batch: int) -> list[Bundle]:
    """``records`` deeds recorded and anchored ``per_batch`` to a batch: their bundles, in recording order."""
    dep = deployment.attach(db, chain)
    with db.write() as s:
        made = record_instruments(s, [validate(deed(parcels=lot(i))) for i in range(1, records + 1)])
    anchoring.Anchorer(db, chain, dep, batch_max_records=per_batch).drain()
    with db.read() as s:
        return [export_bundle(s, m.instrument_number).to_json() for m in made]


def published(db: Database, home: Path) -> Path:
    """The registry's trust root, published under ``home`` as `landreg trust export` would, and its file."""
    trust_of(db, home)
    return home / "trust" / "root.json"


def another_registry(chain: RegistryChain, key: str) -> RegistryChain:
    """A client of the same chain that deploys a DeedRegistry of its own, signing with ``key``."""
    return RegistryChain(chain.w3, account_from_key(key), role_addresses=chain.role_addresses, estimate_gas=False,
                         description="another registry's client")  # fmt: skip


@dataclass
class County:
    bundles: list[Bundle]  # genuine, in recording order
    trust_file: Path
    chain: RegistryChain
    foreign: Bundle  # a genuine bundle of another registry, anchored on the same chain

    def trust(self):  # -> TrustRoot
        return load(self.trust_file)


@pytest.fixture(scope="module")
def county(tmp_path_factory) -> County:
    from hybrid_store.chain.connect import eth_tester_chain, eth_tester_role_key

    chain = eth_tester_chain()
    db = make_sqlite(tmp_path_factory.mktemp("county"))
    genuine = anchored(db, chain, RECORDS, PER_BATCH)
    keys = chain.w3.provider.ethereum_tester.backend.account_keys  # type: ignore[attr-defined]
    assert eth_tester_role_key(chain, "registrar") != keys[3].to_hex()
    other = another_registry(chain, keys[3].to_hex())
    foreign = anchored(make_sqlite(tmp_path_factory.mktemp("other")), other, 1, 1)[0]
    assert foreign["anchor"]["contract"] != genuine[0]["anchor"]["contract"]
    return County(genuine, published(db, tmp_path_factory.mktemp("trust")), chain, foreign)


# --- forgeries, each named after what it changes ---------------------------------------------------------
def _swapped_root(county: County, b: Bundle) -> Bundle:
    """The root of another batch (the proof leads elsewhere)."""
    other = next(x for x in county.bundles if x["anchor"]["batchId"] != b["anchor"]["batchId"])
    return _with(b, ("tree", "root"), other["tree"]["root"])


def _altered_field(county: County, b: Bundle) -> Bundle:
    return _with(b, ("record", "fields", "grantees", "value"), ["MALLORY FORGER"])


def _altered_leaf(county: County, b: Bundle) -> Bundle:
    """Another record's commitment as the leaf's value."""
    other = next(x for x in county.bundles if x["record"]["commitment"] != b["record"]["commitment"])
    return _with(b, ("tree", "value"), [other["record"]["commitment"]])


def _inner_node_as_leaf(county: County, b: Bundle) -> Bundle:
    leaf = merkle.commitment_leaf(bytes.fromhex(b["record"]["commitment"][2:]))
    inner = merkle.process_proof(leaf, [bytes.fromhex(b["tree"]["proof"][0][2:])])
    forged = _with(b, ("tree", "value"), [to_hex(inner)])
    forged["tree"]["proof"] = forged["tree"]["proof"][1:]
    return forged


def _altered_proof(county: County, b: Bundle) -> Bundle:
    node = b["tree"]["proof"][0]
    return _with(b, ("tree", "proof", 0), node[:-1] + ("0" if node[-1] != "0" else "1"))


def _another_registry(county: County, b: Bundle) -> Bundle:
    return copy.deepcopy(county.foreign)


def _another_chain(county: County, b: Bundle) -> Bundle:
    return _with(b, ("anchor", "chainId"), 1)


def _another_jurisdiction(county: County, b: Bundle) -> Bundle:
    forged = copy.deepcopy(b)
    forged["jurisdiction"] = "nyc"
    return forged


def _malformed(county: County, b: Bundle) -> Bundle:
    forged = copy.deepcopy(b)
    forged["record"]["fields"]["book"]["note"] = "added"
    return forged


def _with(b: Bundle, where: tuple[Any, ...], value: Any) -> Bundle:
    forged = copy.deepcopy(b)
    target = forged
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    return forged


#: what each forgery's verdict says (as a fragment of the reason)
FORGERIES: dict[str, tuple[Callable[[County, Bundle], Bundle], str]] = {
    "swapped-root": (_swapped_root, "the Merkle proof does not lead to the stated root"),
    "altered-field": (_altered_field, "the record's fields do not produce its commitment"),
    "altered-leaf": (_altered_leaf, "the Merkle leaf value is not the record's commitment"),
    "inner-node-as-leaf": (_inner_node_as_leaf, "the Merkle leaf value is not the record's commitment"),
    "altered-proof": (_altered_proof, "the Merkle proof does not lead to the stated root"),
    "another-registry": (_another_registry, "is not a DeedRegistry of"),
    "another-chain": (_another_chain, "the bundle was anchored on chain 1, but trust root"),
    "another-jurisdiction": (_another_jurisdiction, "the bundle reads its parcels as 'nyc' does"),
    "malformed": (_malformed, "malformed bundle: record.fields.book.note: is not a member of this format"),
}
#: what is not a bundle at all, as bytes
NOT_BUNDLES = {
    "not-json": (b"%PDF-1.7 a scan, not a bundle\n", "malformed bundle: (bundle): not JSON"),
    "cut-short": (None, "malformed bundle: (bundle): not JSON"),  # a genuine bundle's first half
}


def forged_bytes(county: County, kind: str, b: Bundle) -> bytes:
    if kind == "not-json":
        return NOT_BUNDLES["not-json"][0] or b""
    if kind == "cut-short":
        text = json.dumps(b).encode()
        return text[: len(text) // 2]
    return json.dumps(FORGERIES[kind][0](county, b), ensure_ascii=False).encode()


def expected_reason(kind: str) -> str:
    return FORGERIES[kind][1] if kind in FORGERIES else NOT_BUNDLES[kind][1]


KINDS = [*FORGERIES, *NOT_BUNDLES]


def verify_cli(*args: str) -> Any:
    return CliRunner().invoke(app, ["verify", *args])


# --- offline: a folder, named forgeries, totals, exit status, a report ------------------------------------
@pytest.fixture
def folder(county, tmp_path) -> Path:
    """The county's bundles in a folder of batches, each forgery beside them under its own name, and
    files a folder search leaves alone."""
    root = tmp_path / "bundles"
    for i, b in enumerate(county.bundles):
        place = root / f"batch-{b['anchor']['batchId']}" / f"{i:03d}.json"
        place.parent.mkdir(parents=True, exist_ok=True)
        place.write_text(json.dumps(b, indent=2, ensure_ascii=False), encoding="utf-8")
    (root / "forged").mkdir()
    for kind in KINDS:
        (root / "forged" / f"{kind}.json").write_bytes(forged_bytes(county, kind, county.bundles[9]))
    (root / "notes.txt").write_text("not a bundle, and not read\n")
    (root / "earlier-report.jsonl").write_text('{"bundle": "x", "status": "valid"}\n')  # a report is not read back
    return root


def test_a_folder_names_each_forgery_with_its_own_verdict_and_counts_the_rest(county, folder, tmp_path):
    report = tmp_path / "verdicts.csv"
    done = verify_cli(str(folder), "--trust", str(county.trust_file), "--report", str(report))
    assert done.exit_code == 1, done.output  # the worst verdict: INVALID
    named = [line for line in done.output.splitlines() if line.startswith("INVALID ")]
    assert len(named) == len(KINDS), done.output
    for kind in KINDS:  # each by its file, with the reason in the verifier's words
        [line] = [n for n in named if n.startswith(f"INVALID {folder / 'forged' / kind}.json")]
        assert expected_reason(kind) in line, (kind, line)
    assert f"{RECORDS + len(KINDS)} bundles verified" in done.output
    totals = {line.split()[0]: line.split()[1] for line in done.output.splitlines() if line.startswith("  ")}
    assert totals == {"UNCHECKED": str(RECORDS), "INVALID": str(len(KINDS))}, done.output
    assert "the anchors were not checked on chain (add --rpc URL" in done.output
    assert "exit status 1: the worst verdict, INVALID" in done.output
    with report.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == RECORDS + len(KINDS)
    assert Counter(r["status"] for r in rows) == {"unchecked": RECORDS, "invalid": len(KINDS)}
    genuine = [r for r in rows if r["status"] == "unchecked"]
    assert sorted(r["instrument"] for r in genuine) == sorted(
        b["record"]["fields"]["instrument_number"]["value"] for b in county.bundles
    )  # fmt: skip
    assert {r["batchId"] for r in genuine} == {"0", "1", "2"}


def test_a_report_written_into_the_folder_it_lists_is_not_read_as_a_bundle(county, folder):
    report = folder / "verdicts.json"  # JSON lines, whatever its name says
    done = verify_cli(str(folder), "--trust", str(county.trust_file), "--report", str(report))
    assert f"{RECORDS + len(KINDS)} bundles verified" in done.output and "verdicts.json" not in done.output.split(
        "every bundle's verdict")[0], done.output  # fmt: skip
    assert len(report.read_text(encoding="utf-8").splitlines()) == RECORDS + len(KINDS)


def test_without_forgeries_the_exit_status_is_unchecked_offline_and_a_trust_root_is_still_needed(county, folder):
    import shutil

    shutil.rmtree(folder / "forged")
    done = verify_cli(str(folder), "--trust", str(county.trust_file))
    assert done.exit_code == 3 and "INVALID" not in done.output, done.output
    untrusted = verify_cli(str(folder / "batch-0"), str(folder / "batch-1" / "008.json"))
    assert untrusted.exit_code == 3, untrusted.output
    assert f"{PER_BATCH + 1} bundles verified" in untrusted.output and "no trust root was given" in untrusted.output


def test_one_bundle_keeps_its_own_verdict_and_output(county, folder):
    single = verify_cli(str(folder / "batch-0" / "000.json"), "--trust", str(county.trust_file))
    assert single.exit_code == 3, single.output
    assert single.output.startswith("UNCHECKED: the record's fields, commitment and Merkle proof agree, but the "
                                    "anchor was not checked on chain (add --rpc URL)")  # fmt: skip
    assert "  instrument_number: " in single.output and "bundles verified" not in single.output
    forged = verify_cli(str(folder / "forged" / "another-registry.json"), "--trust", str(county.trust_file))
    assert forged.exit_code == 3, forged.output  # one bundle offline leaves the contract to --rpc, as it always has
    refused = verify_cli(str(folder), "--successor", str(folder / "batch-0" / "000.json"))
    assert refused.exit_code == 2 and "go with one bundle" in refused.output


def test_json_lines_name_each_line_and_skip_blank_ones(county, tmp_path):
    lines = [json.dumps(b, ensure_ascii=False) for b in county.bundles[:6]]
    lines.insert(2, "")  # a blank line (line 3) is no bundle
    lines.insert(4, forged_bytes(county, "swapped-root", county.bundles[4]).decode())  # line 5
    lines.append(forged_bytes(county, "not-json", county.bundles[0]).decode().strip())  # line 9
    path = tmp_path / "bundles.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    done = verify_cli(str(path), "--trust", str(county.trust_file), "--json")
    assert done.exit_code == 1, done.output
    summary = json.loads(done.output)
    assert summary["bundles"] == 8 and summary["worst"] == "invalid" and summary["exit"] == 1
    assert summary["totals"] == {"invalid": 2, "unavailable": 0, "pending": 0, "unchecked": 6, "valid": 0}
    assert [(n["bundle"], n["status"]) for n in summary["named"]] == [
        (f"{path}:5", "invalid"),
        (f"{path}:9", "invalid"),
    ]
    assert "does not lead to the stated root" in summary["named"][0]["reason"]
    report = tmp_path / "verdicts.jsonl"
    verify_cli(str(path), "--trust", str(county.trust_file), "--report", str(report))
    rows = [json.loads(line) for line in report.read_text(encoding="utf-8").splitlines()]
    assert [r["bundle"] for r in rows] == [f"{path}:{n}" for n in (1, 2, 4, 5, 6, 7, 8, 9)]


def test_a_line_longer_than_any_bundle_is_named_and_the_next_lines_still_read(county, tmp_path):
    path = tmp_path / "bundles.jsonl"
    genuine = json.dumps(county.bundles[0])
    path.write_bytes(b"[" * (bundles.MAX_BUNDLE_BYTES + 10) + b"\n" + genuine.encode() + b"\n")
    checked = [bulk.Bulk(county.trust()).check(item) for item in bulk.Inputs([path])]
    assert [(c.where, c.status) for c in checked] == [(f"{path}:1", "invalid"), (f"{path}:2", "unchecked")]
    assert "larger than 1000000 bytes" in checked[0].reason


def test_an_empty_folder_is_said_to_be_empty(tmp_path, county):
    done = verify_cli(str(tmp_path), "--trust", str(county.trust_file))
    assert done.exit_code == 2 and "no bundle found" in done.output


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_the_bundles_named_are_exactly_the_bundles_forged(county, data):
    """Any subset of the county's bundles forged, each in any of the ways an offline check can see:
    the run names exactly those, and no other."""
    forged = data.draw(st.dictionaries(st.integers(0, RECORDS - 1), st.sampled_from(KINDS), max_size=RECORDS))
    verifier = bulk.Bulk(county.trust())
    named = set()
    for i, b in enumerate(county.bundles):
        raw = forged_bytes(county, forged[i], b) if i in forged else json.dumps(b).encode()
        checked = verifier.check(bulk.Item(f"bundles.jsonl:{i + 1}", raw))
        if checked.status in bulk.NAMED:
            named.add(i)
            assert expected_reason(forged[i]) in checked.reason, (forged[i], checked.reason)
        else:
            assert checked.status == "unchecked", checked.reason
    assert named == set(forged)


# --- on chain: each batch's anchor once, each bundle's leaf each time --------------------------------------
class Counting:
    """A ``ChainReader`` around the real chain client that counts what it is asked, and with what;
    the contracts it points at (``at``) count into the same tally."""

    def __init__(self, inner: Any, asked: Counter | None = None, where: str = "") -> None:
        self.inner, self.asked, self.where = inner, asked if asked is not None else Counter(), where

    @property
    def chain_id(self) -> int:
        self.asked["chain_id"] += 1
        return int(self.inner.chain_id)

    def at(self, address: str) -> Counting:
        self.asked["at"] += 1
        return Counting(self.inner.at(address), self.asked, address)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        def counted(*args: Any) -> Any:
            key = (name, self.where, *(a.tx_hash if hasattr(a, "tx_hash") else a for a in args[:1]))
            self.asked[key] += 1
            return method(*args)

        return counted


def forged_on_chain(county: County) -> dict[str, Bundle]:
    """Forgeries only a chain can tell: a self-consistent tree over a genuine record and a record of
    the forger's, claiming batch 1 of the county's contract; a batch the contract never had."""
    b = county.bundles[PER_BATCH + 2]  # of batch 1
    commitment = bytes.fromhex(b["record"]["commitment"][2:])
    tree = merkle.StandardTree.of([[to_hex(commitment)], [to_hex(b"\x11" * 32)]], merkle.COMMITMENT_ENCODING)
    own_tree = copy.deepcopy(b)
    own_tree["tree"]["proof"] = [to_hex(p) for p in tree.proof(0)]
    own_tree["tree"]["root"] = to_hex(tree.root)
    no_batch = _with(b, ("anchor", "batchId"), 99)
    return {"own-tree": own_tree, "no-such-batch": no_batch}


def asked_of(reader: Counting, name: str) -> dict[tuple[Any, ...], int]:
    return {k: n for k, n in reader.asked.items() if isinstance(k, tuple) and k[0] == name}


def test_on_chain_each_batch_is_read_once_and_each_leaf_every_time(county):
    reader = Counting(county.chain)
    verifier = bulk.Bulk(county.trust(), chain=reader)
    extra = forged_on_chain(county)
    documents = [*county.bundles, county.foreign, *extra.values(), _altered_field(county, county.bundles[0])]
    checked = [verifier.check(bulk.Item(f"b{i}", json.dumps(d).encode())) for i, d in enumerate(documents)]
    assert [c.status for c in checked] == ["valid"] * RECORDS + ["invalid"] * 4, [c.reason for c in checked]
    assert {c.standing for c in checked[:RECORDS]} == {"current"}
    assert "is not a DeedRegistry of" in checked[RECORDS].reason  # refused before the node is asked
    for forged in checked[RECORDS + 1 : RECORDS + 3]:  # the anchoring transaction anchored another root, batch
        assert "did not anchor root" in forged.reason, forged.reason
    contract = county.bundles[0]["anchor"]["contract"]
    assert asked_of(reader, "get_batch") == {("get_batch", contract, batch): 1 for batch in range(3)}, reader.asked
    assert sorted(asked_of(reader, "receipt").values()) == [1, 1, 1]  # one anchoring transaction a batch
    for per_batch in ("anchored_events", "confirmations", "block_timestamp"):
        assert sorted(asked_of(reader, per_batch).values()) == [1, 1, 1], (per_batch, reader.asked)
    for per_run in ("ensure_reachable", "genesis_hash", "has_code", "code_hash"):
        assert sum(asked_of(reader, per_run).values()) == 1, (per_run, reader.asked)
    assert reader.asked["at"] == 1 and reader.asked["chain_id"] == 1
    # what is each bundle's own is asked for each genuine one: its leaf's revocation, the contract's proof
    assert sum(asked_of(reader, "revoked_at").values()) == RECORDS
    assert sum(asked_of(reader, "verify_commitment").values()) == RECORDS


def test_on_chain_the_verdicts_are_those_of_one_bundle_at_a_time(county):
    verifier = bulk.Bulk(county.trust(), chain=county.chain)
    trust = county.trust()
    for document in [*county.bundles[:: PER_BATCH // 2], *forged_on_chain(county).values()]:
        alone = verify_document(document, chain=county.chain, trust=trust)
        many = verifier.check(bulk.Item("b", json.dumps(document).encode()))
        assert (many.status, many.reason) == (alone.status, alone.reason)


# --- a real node: the command line, a node that is down, a node that hangs ---------------------------------
@dataclass
class AnvilCounty:
    folder: Path
    trust_file: Path
    rpc: str
    batches: int


@pytest.fixture(scope="module")
def anvil_county(tmp_path_factory) -> Any:
    from hybrid_store.chain.anvil import ManagedAnvil
    from hybrid_store.chain.connect import open_chain, rpc_url
    from hybrid_store.settings import Settings
    from tests.conftest import free_port

    home = tmp_path_factory.mktemp("anvil-county")
    cfg = Settings(home=home, chain={"backend": "anvil", "anvil_port": free_port(), "anvil_state_interval_s": 1})
    node = ManagedAnvil(cfg)
    node.start()
    try:
        db = Database(cfg.db_url)
        db.migrate()
        genuine = anchored(db, open_chain(cfg), 12, 4)
        folder = home / "bundles"
        folder.mkdir()
        for i, b in enumerate(genuine):
            (folder / f"{i:02d}.json").write_text(json.dumps(b), encoding="utf-8")
        (folder / "forged.json").write_text(json.dumps(_with(genuine[5], ("tree", "root"), genuine[0]["tree"]["root"])))
        yield AnvilCounty(folder, published(db, home / "published"), rpc_url(cfg), 3)
    finally:
        node.stop()


@pytest.mark.anvil
def test_the_command_line_on_a_real_node_names_the_forgery_and_reads_each_batch_once(anvil_county, tmp_path):
    import re

    from hybrid_store.verifier.reader import node_at
    from tests.processes import landreg

    env = landreg_environment(tmp_path)  # an auditor's machine: no registry, only the trust root
    done = landreg(env, "verify", str(anvil_county.folder), "--trust", str(anvil_county.trust_file), "--rpc",
                   anvil_county.rpc)  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"INVALID {anvil_county.folder / 'forged.json'} (instrument " in done.stdout
    assert "the Merkle proof does not lead to the stated root" in done.stdout
    assert re.search(r"\n  VALID +12   current 12\n", done.stdout), done.stdout
    reader = Counting(node_at(anvil_county.rpc))
    verifier = bulk.Bulk(load(anvil_county.trust_file), chain=reader)
    checked = [verifier.check(item) for item in bulk.Inputs([anvil_county.folder])]
    assert Counter(c.status for c in checked) == {"valid": 12, "invalid": 1}
    assert sorted(asked_of(reader, "get_batch").values()) == [1] * anvil_county.batches, reader.asked
    assert sum(asked_of(reader, "revoked_at").values()) == 12


@pytest.mark.anvil
def test_a_node_that_is_down_or_hangs_leaves_each_bundle_unavailable_and_is_not_waited_on_again(anvil_county):
    import time

    from hybrid_store.chain.connect import http_web3
    from tests.faultproxy import FaultProxy

    items = list(bulk.Inputs([anvil_county.folder]))
    down = Counting(RegistryChain(http_web3("http://127.0.0.1:9", timeout_s=2), description="a stopped node"))
    stopped = bulk.Bulk(load(anvil_county.trust_file), chain=down)
    checked = [stopped.check(item) for item in items]
    assert Counter(c.status for c in checked) == {"unavailable": 12, "invalid": 1}  # the forgery: refused offline
    assert all(c.reason.startswith("UNAVAILABLE: the node did not answer") for c in checked if c.status != "invalid")
    assert sum(down.asked.values()) == 1, down.asked  # once it has failed, it is not asked again
    proxy = FaultProxy(int(anvil_county.rpc.rsplit(":", 1)[1])).start()
    try:
        node = RegistryChain(http_web3(proxy.url, timeout_s=1, attempts=1), description="a node that will hang")
        verifier = bulk.Bulk(load(anvil_county.trust_file), chain=node)
        assert verifier.check(items[0]).status == "valid"
        proxy.set("hang")  # the node goes silent after the first bundle
        asked, started = proxy.requests, time.monotonic()
        rest = [verifier.check(item) for item in items[1:]]
        waited = time.monotonic() - started
    finally:
        proxy.stop()
    assert Counter(c.status for c in rest) == {"unavailable": 11, "invalid": 1}
    assert proxy.requests - asked <= 1 and waited < 5, (proxy.requests - asked, waited)  # one timeout, not eleven
