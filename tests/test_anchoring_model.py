"""A model of the anchoring worker against a real anvil node: hypothesis chooses a sequence of
filings, corrections, worker runs SIGKILLed at chosen crash points, chain reorganisations, node
restarts and reconciliations, and after every step the invariants must hold:

* the chain's roots are the database's (every batch on chain is a live batch of ours, same root);
* no parcel token is minted twice, and the chain's token counter never runs behind the database;
* reconciliation reports drift only where something was tampered with (here: never);

and at the end, after one uninterrupted run, every acknowledged filing is anchored exactly once.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from sqlalchemy import func, select

from hybrid_store import audit_log
from hybrid_store.chain.anvil import ManagedAnvil
from hybrid_store.chain.connect import open_chain
from hybrid_store.db.engine import Database
from hybrid_store.db.models import AnchorBatch, BatchRecord, BatchState, Instrument, Parcel
from hybrid_store.deployment import attach
from hybrid_store.filing import record_instruments
from hybrid_store.intake import validate
from hybrid_store.settings import Settings
from migration_tools.reconciliation.run import CLEAN_KINDS, reconcile
from tests.conftest import PASSPHRASE_ENV, deed, free_port
from tests.processes import landreg

pytestmark = [pytest.mark.anvil, pytest.mark.slow]

CRASHPOINTS = [None, "anchor:signed", "anchor:sent", "anchor:building", "anchor:mined"]
LOTS = [str(n) for n in range(1, 7)]  # few parcels, so histories link and tokens are shared


class AnchoringModel(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="landreg-model-"))
        port = free_port()
        base = {k: v for k, v in os.environ.items() if not k.startswith("LANDREG_") and k != "DATABASE_URL"}
        self.env = {**base, **PASSPHRASE_ENV, "LANDREG_HOME": str(self.dir), "LANDREG_CHAIN__ANVIL_PORT": str(port),
                    "LANDREG_CHAIN__ANVIL_STATE_INTERVAL_S": "1", "LANDREG_ANCHORING__BATCH_MAX_RECORDS": "4"}  # fmt: skip
        self.cfg = Settings(home=self.dir, chain={"backend": "anvil", "anvil_port": port, "anvil_state_interval_s": 1})
        self.node = ManagedAnvil(self.cfg)
        self.node.start()
        landreg(self.env, "chain", "start", check=True)  # deploys and publishes the trust root
        self.db = Database(self.cfg.db_url)
        self.chain = open_chain(self.cfg)
        self.deploy_block = attach(self.db, self.chain, deploy_if_missing=False).deploy_block or 0
        self.acked: list[str] = []

    def teardown(self) -> None:
        try:
            if getattr(self, "db", None) is not None:
                self.finish()
        finally:
            if getattr(self, "node", None) is not None:
                self.node.stop()
            if getattr(self, "db", None) is not None:
                self.db.dispose()
            shutil.rmtree(getattr(self, "dir", "/nonexistent"), ignore_errors=True)

    # --- what clerks and IT staff do -------------------------------------------------------------------
    @rule(n=st.integers(1, 5), lots=st.lists(st.sampled_from(LOTS), min_size=1, max_size=5))
    def file(self, n: int, lots: list[str]) -> None:
        items = [validate(deed(parcels=[{"municipality_code": "0223", "block": "7", "lot": lots[i % len(lots)]}]))
                 for i in range(n)]  # fmt: skip
        with self.db.write() as s:  # as the service files: the records and the audit entry, one transaction
            made = record_instruments(s, items)
            for m in made:
                audit_log.append(s, actor="model clerk", role="clerk", action="instrument.file",
                                 target=m.instrument_number, details={})  # fmt: skip
        self.acked += [m.instrument_number for m in made]

    @precondition(lambda self: bool(self.acked))
    @rule(which=st.integers(0, 10_000))
    def correct(self, which: int) -> None:
        original = self.acked[which % len(self.acked)]
        with self.db.write() as s:
            [made] = record_instruments(s, [validate({**deed(doc_type="CORRECTION"), "corrects": original})])
        self.acked.append(made.instrument_number)

    @rule(crash=st.sampled_from(CRASHPOINTS), nth=st.integers(1, 3))
    def run_worker(self, crash: str | None, nth: int) -> None:
        done = landreg(self.env, "worker", "--drain", crash=f"{crash}@{nth}" if crash else None, timeout=180)
        assert done.returncode in ((0, -9) if crash else (0,)), done.stdout + done.stderr

    @rule(depth=st.integers(1, 3))
    def reorganise(self, depth: int) -> None:
        head = self.chain.head()
        depth = min(depth, head - self.deploy_block - 1)  # the contract's own block stays
        if depth >= 1:
            self.chain.w3.provider.make_request("anvil_reorg", [depth, []])

    @rule()
    def restart_node(self) -> None:
        self.node.stop()  # SIGTERM: the node dumps its state
        self.node.start()

    @rule()
    def reconcile_now(self) -> None:
        result = reconcile(self.db, self.chain, manifest_dir=self.cfg.manifests_dir, workers=1)
        drift = [(d.kind, d.message) for d in result.discrepancies if d.kind not in CLEAN_KINDS]
        assert drift == [], drift  # nothing was tampered with: anything else is pending

    # --- invariants --------------------------------------------------------------------------------------
    @invariant()
    def chain_roots_are_the_databases(self) -> None:
        if not hasattr(self, "db"):
            return
        with self.db.read() as s:
            live = dict(s.execute(select(AnchorBatch.chain_batch_id, AnchorBatch.root)
                                  .where(AnchorBatch.state != BatchState.FAILED)).all())  # fmt: skip
        on_chain = self.chain.batch_count()
        assert on_chain <= len(live) and set(range(len(live))) == set(live)
        for k in range(on_chain):
            assert self.chain.get_batch(k).root == bytes(live[k]), k

    @invariant()
    def no_token_twice(self) -> None:
        if not hasattr(self, "db"):
            return
        on_chain = self.chain.batch_count()  # a reorganisation may have taken the newest (the worker re-sends)
        with self.db.read() as s:
            tokens = [t for (t,) in s.execute(select(Parcel.token_id).where(Parcel.token_id.is_not(None)))]
            minted = s.scalar(select(func.max(Parcel.token_id)).join(
                AnchorBatch, AnchorBatch.id == Parcel.token_batch_id).where(
                AnchorBatch.state != BatchState.FAILED, AnchorBatch.chain_batch_id < on_chain))  # fmt: skip
        assert len(tokens) == len(set(tokens))
        if minted is not None:
            assert self.chain.next_token_id() > minted

    def finish(self) -> None:
        """One uninterrupted run, then every acknowledged filing is anchored exactly once."""
        landreg(self.env, "worker", "--drain", check=True, timeout=300)
        with self.db.read() as s:
            anchored = dict(s.execute(
                select(Instrument.instrument_number, func.count()).join(BatchRecord, BatchRecord.instrument_id == Instrument.id)
                .join(AnchorBatch, AnchorBatch.id == BatchRecord.batch_id)
                .where(AnchorBatch.state == BatchState.CONFIRMED).group_by(Instrument.instrument_number)).all())  # fmt: skip
        assert set(anchored) == set(self.acked) and set(anchored.values()) <= {1}
        result = reconcile(self.db, self.chain, manifest_dir=self.cfg.manifests_dir, workers=1)
        assert result.clean and result.kinds() == {}, result.kinds()
        assert result.counts["verified"] == len(self.acked)
        assert result.counts["audit_pending"] == 0


TestAnchoringModel = AnchoringModel.TestCase
TestAnchoringModel.settings = settings(
    max_examples=int(os.environ.get("LANDREG_MODEL_EXAMPLES", "10")),
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
