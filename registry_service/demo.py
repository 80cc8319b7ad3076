"""``landreg demo``: the whole ledger core, end to end, on the embedded default.

1. start the managed anvil node and deploy the DeedRegistry (unless already there);
2. load a synthetic Bergen County book of deeds into the SQLite deed database, each instrument
   with its salted commitment linked to its parcels' previous records;
3. anchor it in Merkle batches and tokenize every parcel (ERC-2309 consecutive mints);
4. export proof bundles for a few records (one with the price redacted) and verify each offline
   and against the chain;
5. print the figures.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
import time
from dataclasses import dataclass
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy import func, select

from hybrid_store.anchoring import Anchorer
from hybrid_store.batches import pending_count
from hybrid_store.chain.anvil import ManagedAnvil
from hybrid_store.chain.connect import rpc_url
from hybrid_store.db.models import AnchorBatch, BatchState, Instrument, InstrumentParcel, Parcel
from hybrid_store.filing import record_instruments
from hybrid_store.intake import validate
from hybrid_store.proofs import export_bundle
from hybrid_store.settings import Settings
from hybrid_store.trust import latest as latest_trust
from hybrid_store.verifier.verdicts import verify_document
from migration_tools.synthetic import BergenBook
from registry_service.cli.common import (
    DEMO_ENV,
    DEMO_PASSPHRASES,
    RECEIPT_VAR,
    TRUST_VAR,
    chain_for,
    console,
    database,
    write_demo_env,
)

LOAD_CHUNK = 2_000


@dataclass
class Timings:
    load_s: float = 0.0
    anchor_s: float = 0.0
    verify_s: float = 0.0


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(), console=console, transient=False,
    )  # fmt: skip


def run_demo(cfg: Settings, *, instruments: int, seed: int, fresh: bool, batch_size: int) -> None:
    started = time.perf_counter()
    timings = Timings()
    node = ManagedAnvil(cfg) if cfg.chain.backend == "anvil" else None
    used = _demo_passphrases(cfg)
    if fresh:
        _start_over(cfg, node)
    cfg.ensure_home()
    write_demo_env(cfg.home, used)
    if node:
        status = node.start()
        console.print(
            f"[bold]chain[/bold]   anvil {status.url} (chain id {status.chain_id}), state in {node.state_file}"
        )
    db = database(cfg)
    chain, deployment = chain_for(cfg, db)
    console.print(f"[bold]contract[/bold] DeedRegistry {deployment.contract_address}")
    console.print(f"[bold]database[/bold] {cfg.db_url}")
    timings.load_s = _load_book(db, instruments, seed)
    t = time.perf_counter()
    summary = _anchor(Anchorer.from_settings(db, chain, deployment, cfg, batch_max_records=batch_size), db)
    timings.anchor_s = time.perf_counter() - t
    t = time.perf_counter()
    rpc = rpc_url(cfg) if cfg.chain.backend != "eth-tester" else None
    samples, all_valid = _export_and_verify(cfg, db, rpc)
    timings.verify_s = time.perf_counter() - t
    _print_figures(db, summary, timings, started)
    if samples:
        me = "landreg" if shutil.which("landreg") else os.path.relpath(sys.argv[0])
        console.print(
            f"try: {me} verify {cfg.reports_dir / 'demo' / samples[0][0]}.json" + (f" --rpc {rpc}" if rpc else "")
            + f" --trust {cfg.trust_dir / 'root.json'}"
        )  # fmt: skip
    if node:
        console.print("the anvil node keeps running for that; stop it with `landreg chain stop`")
    if not all_valid:
        raise SystemExit("a demo bundle did not verify")


def _start_over(cfg: Settings, node: ManagedAnvil | None) -> None:
    """``--fresh``: the node stopped, its state, the database and the demo's keys and trust root gone."""
    if node:
        node.stop()
    for path in (cfg.chain_dir, cfg.home / "landreg.db", cfg.home / "landreg.db-wal", cfg.home / "landreg.db-shm",
                 cfg.trust_dir, cfg.keys_dir / "trust-root", cfg.receipt_keys_dir, cfg.home / DEMO_ENV):  # fmt: skip
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def _load_book(db: Any, instruments: int, seed: int) -> float:
    """The synthetic book recorded (once: a second run finds it loaded); returns the seconds it took."""
    with db.read() as s:
        existing = s.scalar(select(func.count()).select_from(Instrument)) or 0
    if existing:
        console.print(f"the book is already loaded ({existing:,} instruments); anchoring what is pending")
        return 0.0
    t = time.perf_counter()
    with _progress() as bar:
        task = bar.add_task("recording", total=instruments, rate="")
        book = iter(BergenBook(instruments, seed=seed))
        while chunk := list(itertools.islice(book, LOAD_CHUNK)):
            parsed = [validate(item) for item in chunk]
            with db.write() as s:
                record_instruments(s, parsed, source="legacy")
            done = bar.tasks[0].completed + len(chunk)
            bar.update(task, completed=done, rate=f"{done / (time.perf_counter() - t):,.0f} records/s")
    return time.perf_counter() - t


def _anchor(anchorer: Anchorer, db: Any) -> Any:
    with db.read() as s:
        pending = pending_count(s)
    with _progress() as bar:
        task = bar.add_task("anchoring", total=pending, rate="")

        def advance(batch) -> None:
            done = bar.tasks[0].completed + batch.records
            bar.update(task, completed=done, rate=f"batch {batch.chain_batch_id}: {batch.gas_used:,} gas")

        return anchorer.drain(progress=advance)


def _export_and_verify(cfg: Settings, db: Any, rpc: str | None) -> tuple[list[tuple[str, str, list[str]]], bool]:
    """A few records' bundles written to the reports folder and verified: offline (the math), and on
    chain pinned to the trust root. Returns the samples and whether every verdict was as it must be."""
    import json

    samples = _pick_samples(db)
    out_dir = cfg.reports_dir / "demo"
    out_dir.mkdir(parents=True, exist_ok=True)
    trust = latest_trust(cfg)
    table = Table(title="Proof bundles exported and verified", show_lines=False)
    for column in ("instrument", "type", "redacted", "math (offline)", "on chain, pinned to the trust root"):
        table.add_column(column)
    all_valid = True
    for number, doc_type, redact in samples:
        with db.read() as s:
            bundle = export_bundle(s, number, redact=redact)
        path = out_dir / f"{number}.json"
        path.write_text(json.dumps(bundle.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        offline = verify_document(bundle.to_json())  # the math alone: at best "unchecked"
        online = verify_document(bundle.to_json(), rpc, trust=trust) if rpc else None
        all_valid &= offline.unchecked and (online is None or online.valid)
        table.add_row(number, doc_type, ",".join(redact) or "-", _mark(offline.unchecked),
                      _mark(online.valid) if online else "n/a")  # fmt: skip
    console.print(table)
    console.print(f"bundles written to {out_dir}")
    return samples, all_valid


def _print_figures(db: Any, summary: Any, timings: Timings, started: float) -> None:
    with db.read() as s:
        total = s.scalar(select(func.count()).select_from(Instrument)) or 0
        parcels = s.scalar(select(func.count()).select_from(Parcel)) or 0
        tokens = s.scalar(select(func.count()).select_from(Parcel).where(Parcel.token_id.is_not(None))) or 0
        confirmed = AnchorBatch.state == BatchState.CONFIRMED
        batches = s.scalar(select(func.count()).select_from(AnchorBatch).where(confirmed)) or 0
        gas = int(s.scalar(select(func.sum(AnchorBatch.gas_used)).where(confirmed)) or 0)  # a Decimal on PostgreSQL
    figures = Table(title="landreg demo", show_header=False)
    figures.add_column(style="bold")
    figures.add_column(justify="right")
    figures.add_row("instruments recorded", f"{total:,}")
    figures.add_row("parcels / parcel tokens", f"{parcels:,} / {tokens:,}")
    figures.add_row("anchored batches (this run)", f"{batches:,} ({len(summary.batches)})")
    figures.add_row("gas used for anchoring, total", f"{gas:,}")
    figures.add_row("gas per instrument", f"{gas / total:,.1f}" if total else "-")
    if timings.load_s:
        figures.add_row(
            "recording (validate + commit + write)", f"{timings.load_s:.1f} s ({total / timings.load_s:,.0f}/s)"
        )
    figures.add_row("anchoring + tokenizing", f"{timings.anchor_s:.1f} s")
    figures.add_row("proof export + verification", f"{timings.verify_s:.1f} s")
    figures.add_row("total", f"{time.perf_counter() - started:.1f} s")
    console.print(figures)


def _demo_passphrases(cfg: Settings) -> dict[str, str]:
    """The demo-only passphrases for the secrets the environment does not set (``DEMO_PASSPHRASES``):
    returns {variable: passphrase} of the demo-only ones in use (set here, or read back from an earlier
    demo's ``demo.env``), which ``write_demo_env`` writes down."""
    from pydantic import SecretStr

    secrets = {RECEIPT_VAR: (cfg.service, "receipt_key_passphrase"), TRUST_VAR: (cfg.trust, "signing_key_passphrase")}
    unset = [var for var, (group, attr) in secrets.items() if getattr(group, attr) is None]
    for var in unset:
        group, attr = secrets[var]
        setattr(group, attr, SecretStr(DEMO_PASSPHRASES[var]))
    if unset:
        console.print(f"[yellow]note:[/yellow] {' and '.join(unset)} not set: the demo uses demo-only passphrases "
                      f"(written to {cfg.home / DEMO_ENV}; landreg's commands use them on this registry)")  # fmt: skip
    used = {}
    for var, (group, attr) in secrets.items():
        value = getattr(group, attr).get_secret_value()
        if value == DEMO_PASSPHRASES[var]:
            used[var] = value
    return used


def _mark(ok: bool) -> str:
    return "[green]valid[/green]" if ok else "[red]INVALID[/red]"


def _pick_samples(db) -> list[tuple[str, str, list[str]]]:
    """A deed, a multi-parcel instrument, a correction, a mortgage (price redacted) and the latest record."""
    picks: list[tuple[str, str, list[str]]] = []
    with db.read() as s:

        def first(*where, newest: bool = False) -> tuple[str, str] | None:
            order = Instrument.id.desc() if newest else Instrument.id
            row = s.execute(
                select(Instrument.instrument_number, Instrument.doc_type).where(*where).order_by(order).limit(1)
            ).first()
            return None if row is None else (row[0], row[1])

        multi = (
            select(InstrumentParcel.instrument_id).group_by(InstrumentParcel.instrument_id)
            .having(func.count() > 1).limit(1).scalar_subquery()
        )  # fmt: skip
        for found, redact in (
            (first(Instrument.doc_type == "DEED"), []),
            (first(Instrument.id == multi), []),
            (first(Instrument.doc_type == "CORRECTION"), []),
            (first(Instrument.doc_type == "MORTGAGE"), ["consideration"]),
            (first(newest=True), []),
        ):
            if found and found[0] not in [p[0] for p in picks]:
                picks.append((found[0], found[1], redact))
    return picks
