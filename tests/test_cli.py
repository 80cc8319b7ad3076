"""The landreg command line as a user runs it: demo, proof, verify, db, contracts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.processes import landreg

pytestmark = pytest.mark.anvil


@pytest.fixture
def demo(landreg_env):
    """A small demo run: synthetic book, anvil, anchors, bundles."""
    run = landreg(landreg_env, "demo", "--instruments", "400", "--batch-size", "150", "--seed", "7")
    yield run, landreg_env
    landreg(landreg_env, "chain", "stop")


def test_demo_runs_end_to_end(demo):
    run, env = demo
    assert run.returncode == 0, run.stderr + run.stdout
    out = run.stdout
    assert "instruments recorded" in out and "400" in out
    assert "anchored batches (this run)" in out and "3 (3)" in out
    assert "gas per instrument" in out
    assert out.count("valid") >= 8 and "INVALID" not in out
    bundles = sorted((Path(env["LANDREG_HOME"]) / "reports" / "demo").glob("*.json"))
    assert len(bundles) >= 4
    # a second run finds the book loaded and verifies again without loading twice
    again = landreg(env, "demo", "--instruments", "400")
    assert again.returncode == 0 and "already loaded (400 instruments)" in again.stdout


def test_proof_and_verify_from_the_command_line(demo, tmp_path):
    run, env = demo
    assert run.returncode == 0, run.stderr
    rpc = f"http://127.0.0.1:{env['LANDREG_CHAIN__ANVIL_PORT']}"
    out = tmp_path / "bundle.json"
    exported = landreg(env, "proof", "1990-0000002", "--out", str(out), "--redact", "consideration,grantees")
    assert exported.returncode == 0, exported.stderr
    bundle = json.loads(out.read_text())
    assert set(bundle["record"]["redacted"]) == {"consideration", "grantees"}
    assert bundle["record"]["scheme"] == "landreg-commitment/v2"  # a registry begun today commits under v2

    offline = landreg(env, "verify", str(out))  # the math holds, but nothing was checked on chain
    assert offline.returncode == 3 and offline.stdout.startswith("UNCHECKED: the record's fields")
    assert "VALID" not in offline.stdout.replace("UNCHECKED", "")
    online = landreg(env, "verify", str(out), "--rpc", rpc)  # the registry's own trust root, in LANDREG_HOME
    assert online.returncode == 0 and "is anchored as batch 0" in online.stdout and "not revoked" in online.stdout
    assert "pinned to trust root v1" in online.stdout
    lines = online.stdout.strip().splitlines()
    assert lines[0].startswith("VALID: instrument 1990-0000002") and "pinned to trust root v1" in lines[0]  # one line
    assert lines[1].startswith("standing: current as far as this bundle shows")  # no correction was shown
    # what it verified, with values, and what it withheld (given as salted hashes only)
    assert "fields: 17 fields verified; withheld (given as salted hashes only): grantees, consideration" in lines
    assert "  instrument_number: 1990-0000002" in lines
    assert lines[-2:] == ["  grantees: withheld (given as a salted hash only)",
                          "  consideration: withheld (given as a salted hash only)"]  # fmt: skip
    trust_file = Path(env["LANDREG_HOME"]) / "trust" / "root.json"
    elsewhere = {**env, "LANDREG_HOME": str(tmp_path / "auditor")}  # an auditor's machine: no registry here
    no_trust = landreg(elsewhere, "verify", str(out), "--rpc", rpc)
    assert no_trust.returncode == 3 and "no trust root" in no_trust.stdout and "VALID:" not in no_trust.stdout
    pinned = landreg(elsewhere, "verify", str(out), "--rpc", rpc, "--trust", str(trust_file))
    assert pinned.returncode == 0 and pinned.stdout.startswith("VALID:"), pinned.stdout
    down = landreg(elsewhere, "verify", str(out), "--rpc", "http://127.0.0.1:9", "--trust", str(trust_file))
    assert down.returncode == 4 and down.stdout.startswith("UNAVAILABLE: the node did not answer"), down.stdout

    # the block number only locates the anchor (a reorganisation may move it): the contract decides
    bundle["anchor"]["blockNumber"] += 1
    out.write_text(json.dumps(bundle))
    moved = landreg(env, "verify", str(out), "--rpc", rpc)
    assert moved.returncode == 0 and "note: the anchoring transaction is now in block" in moved.stdout
    bundle["anchor"]["blockNumber"] -= 1
    bundle["anchor"]["batchId"] += 7  # the transaction and the batch are what the bundle claims: strict
    out.write_text(json.dumps(bundle))
    wrong = landreg(env, "verify", str(out), "--rpc", rpc)
    assert wrong.returncode == 1 and "did not anchor root" in wrong.stdout, wrong.stdout
    as_json = json.loads(landreg(env, "verify", str(out), "--rpc", rpc, "--json").stdout)
    assert as_json["valid"] is False and as_json["checkedOnChain"] is True
    bundle["anchor"]["batchId"] -= 7

    bundle["tree"]["proof"][0] = "0x" + "0" * 63
    out.write_text(json.dumps(bundle))
    malformed = landreg(env, "verify", str(out))
    assert malformed.returncode == 1
    assert (
        malformed.stdout.strip()
        == "INVALID: malformed bundle: tree.proof[0]: must be 0x followed by 64 lowercase hex digits"
    )
    missing = landreg(env, "verify", str(tmp_path / "nope.json"))
    assert missing.returncode == 1 and "cannot read" in missing.stdout and "Traceback" not in missing.stderr

    unknown = landreg(env, "proof", "1800-0000001")
    assert unknown.returncode == 1 and "no instrument numbered 1800-0000001" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_help_and_contract_check(landreg_env):
    helped = landreg(landreg_env, "--help")
    for command in ("demo", "proof", "verify", "worker", "chain", "db", "contracts"):
        assert command in helped.stdout
    checked = landreg(landreg_env, "contracts", "build", "--check")
    assert checked.returncode == 0 and "unchanged" in checked.stdout


@pytest.mark.postgres
def test_db_upgrade_on_postgres(landreg_env, pg_template):
    from tests.conftest import head_revision, pg_admin, pg_url

    name = "landreg_cli_upgrade"
    pg_admin(f'DROP DATABASE IF EXISTS "{name}"')
    pg_admin(f'CREATE DATABASE "{name}"')
    try:
        env = {**landreg_env, "DATABASE_URL": pg_url(name).replace("postgresql+psycopg", "postgresql")}
        assert "empty" in landreg(env, "db", "current").stdout
        up = landreg(env, "db", "upgrade")
        assert up.returncode == 0 and f"database at revision {head_revision()} (postgresql)" in up.stdout
    finally:
        pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_no_record_field_reaches_the_chain(demo):
    """Every transaction's calldata and every log after a full demo: no instrument number, party
    name, parcel key, legal description, document digest or price appears, in text or in raw bytes."""
    import sqlite3

    from web3 import Web3

    run, env = demo
    assert run.returncode == 0, run.stderr
    with sqlite3.connect(Path(env["LANDREG_HOME"]) / "landreg.db") as conn:
        texts = {r[0] for r in conn.execute("SELECT instrument_number FROM instruments")}
        texts |= {r[0] for r in conn.execute("SELECT name FROM instrument_parties")}
        texts |= {r[0] for r in conn.execute("SELECT parcel_key FROM parcels")}
        texts |= {r[0][:40] for r in conn.execute("SELECT legal_description FROM instruments") if r[0]}
        digests = [r[0] for r in conn.execute("SELECT document_digest FROM instruments")]
        prices = {r[0] for r in conn.execute("SELECT consideration_cents FROM instruments") if r[0]}
    needles = [t.encode() for t in texts if len(t) >= 4] + [d.encode() for d in digests]
    needles += [bytes.fromhex(d) for d in digests] + [str(p).encode() for p in prices if p >= 10_000]
    needles += [p.to_bytes(32, "big") for p in prices if p >= 10**9]  # a large amount as an ABI word
    assert len(needles) > 1000
    w3 = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{env['LANDREG_CHAIN__ANVIL_PORT']}"))
    blobs = []
    for number in range(w3.eth.block_number + 1):
        for tx in w3.eth.get_block(number, full_transactions=True)["transactions"]:
            blobs.append(bytes(tx["input"]))
            for log in w3.eth.get_transaction_receipt(tx["hash"])["logs"]:
                blobs.append(bytes(log["data"]) + b"".join(bytes(t) for t in log["topics"]))
    assert len(blobs) > 5
    chain_bytes = b"\n".join(blobs)
    leaked = [n for n in needles if n in chain_bytes]
    assert leaked == []
