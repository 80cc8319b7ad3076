"""A parallel run, end to end and as IT staff run it: a recorder process keeps inserting, editing
and deleting documents in the legacy database while `landreg legacy sync --follow` mirrors them
and is killed (SIGKILL) at points hypothesis chooses, then started again. Afterwards landreg's
mirror holds exactly the legacy content, no version was recorded twice, and the three-way report
names exactly the edits and deletions in the recorder's own log, and nothing else."""

from __future__ import annotations

import collections
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from hybrid_store.db.engine import Database
from hybrid_store.db.models import Instrument, MirrorFlag
from tests import legacy_fixtures as fx
from tests import recorder
from tests.conftest import landreg_environment
from tests.processes import landreg, landreg_out, spawn

PROFILE = {"acris": "nyc", "landreg-export": "bergen"}
CASES = [
    ("mariadb", "acris"),
    pytest.param("postgres", "acris", marks=pytest.mark.postgres),
    ("mariadb", "landreg-export"),
    pytest.param("postgres", "landreg-export", marks=pytest.mark.postgres),
]


def schema(layout: str) -> fx.Schema:
    return fx.acris_schema(fx.ACRIS_GOOD) if layout == "acris" else fx.Schema(fx.EXPORT_DDL)


@pytest.mark.subprocess
@pytest.mark.parametrize(("kind", "layout"), CASES)
@settings(max_examples=2, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(kills=st.lists(st.floats(0.2, 4.0), min_size=1, max_size=3), seed=st.integers(0, 999))
def test_a_parallel_run_names_exactly_the_recorders_edits_and_deletions(kind, layout, kills, seed, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("parallel")
    server = fx.LegacyServer(kind).create()
    try:
        _run(server, layout, sorted(kills), seed, tmp)
    finally:
        server.drop()


def _run(server: fx.LegacyServer, layout: str, kills: list[float], seed: int, tmp: Path) -> None:
    server.load(schema(layout))
    recorder.seed_rows(server.url, layout)
    env = {**landreg_environment(tmp), "LANDREG_JURISDICTION": PROFILE[layout], "LEGACY_URL": server.url,
           "LEGACY_DDL_URL": server.url}  # fmt: skip
    landreg_out(env, "legacy", "attach", "--layout", layout, "--url-env", "LEGACY_URL")
    landreg_out(env, "legacy", "sync")
    landreg_out(env, "legacy", "install-capture", "--ddl-url-env", "LEGACY_DDL_URL")

    log = tmp / "recorder.jsonl"
    worker = subprocess.Popen([sys.executable, "-m", "tests.recorder", "--url", server.url, "--layout", layout,
                               "--seed", str(seed), "--ops", "36", "--log", str(log)])  # fmt: skip
    follow = ("legacy", "sync", "--follow", "--interval", "0.2", "--sweep-every", "0")
    started = time.monotonic()
    follower = spawn(env, *follow, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for at in kills:  # SIGKILL at the chosen moments, then start again
        time.sleep(max(0.0, at - (time.monotonic() - started)))
        follower.send_signal(signal.SIGKILL)
        follower.wait()
        follower = spawn(env, *follow, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert worker.wait(timeout=120) == 0
    follower.send_signal(signal.SIGKILL)
    follower.wait()
    # a clean stop: once the follower says it is following (its signal handlers are in place), SIGTERM
    follower = spawn(env, *follow, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert follower.stdout is not None
    while "following" not in (line := follower.stdout.readline()):
        assert line, "the follower exited before following"
    follower.send_signal(signal.SIGTERM)
    assert follower.wait(timeout=120) == 0
    landreg_out(env, "legacy", "sync", "--follow", "--polls", "2", "--interval", "0.1")  # catch up, then stop

    done = [json.loads(line) for line in log.read_text().splitlines()]
    edited = {d["key"] for d in done if d["op"] == "edit"}
    deleted = {d["key"] for d in done if d["op"] == "delete"}
    assert edited and deleted and any(d["op"] == "insert" for d in done)  # the recorder did each kind of work
    report = tmp / "three-way.json"
    three = landreg(env, "reconcile", "--legacy", "--workers", "1", "--json", str(report),
                    "--report", str(tmp / "three-way.html"))  # fmt: skip
    assert three.returncode == (1 if edited | deleted else 0), three.stdout + three.stderr
    found = json.loads(report.read_text())
    by_kind: dict[str, set[str]] = collections.defaultdict(set)
    for d in found["discrepancies"]:
        by_kind[d["kind"]].add(d["legacy_key"])
        assert d["message"].startswith("mirrored:"), d  # nothing left to mirror: the mirror holds the legacy content
    # every edit is named, except one the recorder then deleted before the follower saw it (while the
    # follower was killed, say): the legacy system then shows landreg only a deletion
    changed = by_kind.pop("changed_in_legacy", set())
    assert edited - deleted <= changed <= edited, (edited, deleted, changed)
    assert by_kind.pop("deleted_in_legacy", set()) == deleted
    assert dict(by_kind) == {}, by_kind
    assert found["legacy"]["counts"]["legacy_documents"] == _legacy_documents(server, layout)
    assert "the parallel run, day by day" in (tmp / "three-way.html").read_text().lower()

    # no version recorded twice: each replaced version differs from its successor, and a key has
    # no more versions than the recorder made edits to it
    db = Database(f"sqlite:///{tmp / 'home' / 'landreg.db'}")
    edits = collections.Counter(d["key"] for d in done if d["op"] == "edit")
    with db.read() as s:
        flags = list(s.scalars(select(MirrorFlag).where(MirrorFlag.kind == "changed_in_legacy")))
        numbers = list(s.scalars(select(Instrument.instrument_number)))
    for flag in flags:
        assert {k for k in (flag.diff or {}) if k != "document_digest"}, flag.diff
    per_key = collections.Counter(f.legacy_key for f in flags)
    assert all(per_key[k] <= edits[k] for k in per_key), (per_key, edits)
    assert len(numbers) == len(set(numbers))
    db.dispose()


def _legacy_documents(server: fx.LegacyServer, layout: str) -> int:
    table = "acris_master" if layout == "acris" else "documents"
    with server.connect() as conn:
        return int(conn.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar_one())
