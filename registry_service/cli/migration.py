"""``landreg legacy``, ``landreg migrate`` and ``landreg reconcile``: the IT staff's tools."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer

from registry_service.cli.common import (
    Table,
    audit_cli,
    audit_hook,
    chain_for,
    console,
    database,
    err_console,
    fail,
    friendly,
    settings,
    start_managed_node,
)

legacy_app = typer.Typer(help="The existing (legacy) book of records.", no_args_is_help=True)
import_app = typer.Typer(
    help="Load a legacy book into the deed database (bad records are quarantined, never fatal).", no_args_is_help=True
)
legacy_app.add_typer(import_app, name="import")
migrate_app = typer.Typer(help="Move legacy records onto the chain in staged, resumable batches.", no_args_is_help=True)


def _actor(operator: str | None = None) -> str:
    return operator or f"cli:{getpass.getuser()}"


def _progress(label: str):  # -> rich.progress.Progress
    # imported here: every landreg command (`landreg --help`, an auditor's `verify`) imports this module
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console,
    )  # fmt: skip


# --- legacy import -----------------------------------------------------------------------------------
def _run_import(source, name: str, quarantine: Path | None) -> None:
    from migration_tools.legacy.importer import import_records

    cfg = settings()
    db = database(cfg)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    quarantine = quarantine or cfg.reports_dir / f"quarantine-{name}-{stamp}.csv"
    with _progress(f"loading {name}") as bar:
        task = bar.add_task("load", total=None, rate="")

        def show(report) -> None:
            rate = report.records / max(report.seconds or 1e-9, 1e-9) if report.seconds else 0
            bar.update(
                task, completed=report.records, rate=f"{report.loaded:,} loaded, {report.quarantined:,} quarantined"
            )
            del rate

        report = import_records(db, source, name=name, quarantine=quarantine, progress=show, profile=cfg.profile)
    table = Table(title=f"legacy import: {name}", show_header=False)
    table.add_row("records in the source", f"{report.records:,}")
    table.add_row("loaded", f"{report.loaded:,}")
    table.add_row(
        "quarantined", f"{report.quarantined:,}" + (f"  → {report.quarantine_file}" if report.quarantined else "")
    )
    table.add_row("time", f"{report.seconds:.1f} s ({report.records / max(report.seconds, 1e-9):,.0f} records/s)")
    for reason, n in sorted(report.reasons.items(), key=lambda x: -x[1])[:8]:
        table.add_row(f"  {n:,} ×", reason)
    console.print(table)
    assert report.loaded + report.quarantined == report.records


@import_app.command("sr1a")
@friendly
def import_sr1a(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="An SR1A file (663 or 662 columns).")],
    date_order: Annotated[str, typer.Option(help="How the 6-digit dates read: MMDDYY or YYMMDD (no guessing).")],
    quarantine: Annotated[Path | None, typer.Option(help="Where rejected lines go (CSV).")] = None,
) -> None:
    """Load an NJ SR1A deed file; lines that cannot be read are quarantined with line and column."""
    from migration_tools.legacy import sr1a

    if date_order not in ("MMDDYY", "YYMMDD"):
        raise fail("--date-order must be MMDDYY or YYMMDD")
    _run_import(sr1a.read(file, date_order=date_order), f"sr1a:{file.name}", quarantine)  # type: ignore[arg-type]


@import_app.command("csv")
@friendly
def import_csv(
    folder: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="documents.csv, parties.csv, ...")],
    quarantine: Annotated[Path | None, typer.Option(help="Where rejected records go (CSV).")] = None,
) -> None:
    """Load a recorder system's multi-table CSV export (docs/legacy-formats.md)."""
    from migration_tools.legacy import csv_export

    _run_import(csv_export.read(folder), f"csv:{folder.name}", quarantine)


# --- a legacy database ---------------------------------------------------------------------------------
@legacy_app.command("attach")
@friendly
def legacy_attach(
    layout: Annotated[str, typer.Option(help="A shipped layout (landreg-export, acris) or a layout file (TOML).")],
    url_env: Annotated[str | None, typer.Option(help="The environment variable holding the database's URL.")] = None,
    url_file: Annotated[Path | None, typer.Option(help="A file (mode 600) holding the database's URL.")] = None,
    name: Annotated[str, typer.Option(help="What to call this legacy database.")] = "county",
    tables: Annotated[
        list[str] | None,
        typer.Option(
            "--table",
            help="LAYOUT_NAME=DATABASE_NAME: read the layout's table under your database's name; repeatable "
            "(e.g. --table acris_master=real_property_master).",
        ),
    ] = None,
) -> None:
    """Attach to the county's recorder database, read-only: check that it matches the layout and
    remember where its URL is (an environment variable or a file, never the URL itself).

    A database loaded by another tool may name the layout's tables its own way: map each with
    --table instead of copying the layout (docs/legacy-formats.md)."""
    from migration_tools.legacy.sync import attach

    if (url_env is None) == (url_file is None):
        raise fail("give exactly one of --url-env VAR and --url-file PATH",
                   "the URL carries a password: it is never given on the command line")  # fmt: skip
    cfg = settings()
    db = database(cfg)
    layout_ref: str | Path = layout if "/" not in layout and not layout.endswith(".toml") else Path(layout)
    names: dict[str, str] = {}
    for pair in tables or ():
        old, sep, new = pair.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise fail(f"--table {pair!r}: give LAYOUT_NAME=DATABASE_NAME, e.g. acris_master=real_property_master")
        names[old.strip()] = new.strip()
    done = attach(db, cfg.profile, layout_ref=layout_ref, url_env=url_env,
                  url_file=str(url_file) if url_file else None, name=name, actor=_actor(),
                  table_names=names)  # fmt: skip
    audit_cli(db, "legacy.attach", f"legacy {done.name}", layout=done.layout, dialect=done.dialect, tables=names,
              url_from=f"${url_env}" if url_env else str(url_file), documents=done.inspection.documents)  # fmt: skip
    table = Table(title=f"legacy database {done.name!r} attached (read-only)", show_header=False)
    table.add_row("layout", done.layout)
    table.add_row("database", done.dialect)
    table.add_row("URL from", f"${url_env}" if url_env else str(url_file))
    for name_, rows in done.inspection.tables.items():
        table.add_row(f"  {name_}", f"{rows:,} rows")
    if done.code_table_rows:
        table.add_row("document type codes", f"{done.code_table_rows:,}")
    table.add_row("documents", f"{done.inspection.documents:,}")
    console.print(table)
    console.print("next: `landreg legacy sync` loads them for staged migration")


@legacy_app.command("sync")
@friendly
def legacy_sync(
    name: Annotated[str, typer.Option(help="The attached legacy database.")] = "county",
    quarantine: Annotated[Path | None, typer.Option(help="Where documents that cannot be loaded go (CSV).")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the sync's report as JSON.")] = None,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            help="Then keep mirroring inserts, edits and deletions "
            "as they happen (a parallel run); Ctrl-C or SIGTERM stops.",
        ),
    ] = False,
    interval: Annotated[float, typer.Option(help="--follow: seconds between polls.", min=0.05)] = 1.0,
    capture: Annotated[
        str | None,
        typer.Option(
            help="--follow: trigger (the change log of `legacy install-capture`) "
            "or watermark (the layout's modified column). Default: trigger "
            "when the change log exists."
        ),
    ] = None,
    sweep_every: Annotated[
        float, typer.Option(help="--follow: seconds between sweeps comparing every document (0: only at start).", min=0)
    ] = 3600.0,
    gap_timeout: Annotated[
        float,
        typer.Option(
            help="--follow, trigger: seconds a skipped change-log number is awaited (the longest legacy transaction).",
            min=0,
        ),
    ] = 600.0,
    lookback: Annotated[
        float,
        typer.Option(
            help="--follow, watermark: seconds the watermark trails the newest "
            "change (the longest legacy transaction).",
            min=0,
        ),
    ] = 300.0,
    anchor: Annotated[
        bool,
        typer.Option(
            "--anchor",
            help="--follow: anchor new records and versions from this process (otherwise the anchoring worker does).",
        ),
    ] = False,
    polls: Annotated[int, typer.Option(help="--follow: stop after this many polls (0: run until stopped).", min=0)] = 0,
) -> None:
    """Load what the attached legacy database holds and landreg does not: new documents, and
    quarantined ones whose rows changed. Documents that cannot be read are quarantined with their
    reason; the sync goes on. With --follow, keep following it: new documents are committed and
    anchored like filings, edited ones become new versions flagged changed_in_legacy, deleted ones
    are flagged deleted_in_legacy."""
    from migration_tools.legacy.sync import source_of, sync

    if capture not in (None, "trigger", "watermark"):
        raise fail(f"--capture is trigger or watermark, not {capture!r}")
    cfg = settings()
    db = database(cfg)
    if follow:  # a long-running service, like `serve` and `worker`
        from hybrid_store.db.roles import refuse_privileged

        refuse_privileged(db, allow=cfg.service.allow_privileged_db_role, what="the legacy follower")
    if follow and source_of(db, name).last_sync_at is not None:
        _follow(cfg, db, name=name, interval=interval, capture=capture, sweep_every=sweep_every,
                gap_timeout=gap_timeout, lookback=lookback, anchor=anchor, polls=polls)  # fmt: skip
        return
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    quarantine = quarantine or cfg.reports_dir / f"quarantine-legacy-{name}-{stamp}.csv"
    with _progress(f"syncing {name}") as bar:
        task = bar.add_task("sync", total=None, rate="")

        def show(report) -> None:
            bar.update(task, completed=report.documents,
                       rate=f"{report.loaded:,} loaded, {report.quarantined:,} quarantined, {report.per_second:,.0f}/s")  # fmt: skip

        report = sync(db, cfg.profile, name=name, quarantine=quarantine, progress=show)
    audit_cli(db, "legacy.sync", f"legacy {name}", documents=report.documents, loaded=report.loaded,
              quarantined=report.quarantined)  # fmt: skip
    table = Table(title=f"legacy sync: {name} ({report.layout})", show_header=False)
    table.add_row("documents read", f"{report.documents:,}")
    table.add_row("loaded", f"{report.loaded:,}")
    table.add_row("quarantined", f"{report.quarantined:,}" + (f"  → {report.quarantine_file}" if report.quarantined
                                                              else ""))  # fmt: skip
    for label, n in (("tried again (their rows changed)", report.retried), ("unchanged since loaded", report.unchanged),
                     ("still quarantined (rows unchanged)", report.still_quarantined),
                     ("changed in the legacy database since loaded", report.changed_since_loaded)):  # fmt: skip
        if n:
            table.add_row(label, f"{n:,}")
    table.add_row("time", f"{report.seconds:.1f} s ({report.per_second:,.0f} documents/s)")
    for reason, n in sorted(report.reasons.items(), key=lambda x: -x[1])[:8]:
        table.add_row(f"  {n:,} ×", reason)
    console.print(table)
    if json_out:
        json_out.write_text(json.dumps(report.to_json(), indent=2))
    if follow:
        _follow(cfg, db, name=name, interval=interval, capture=capture, sweep_every=sweep_every,
                gap_timeout=gap_timeout, lookback=lookback, anchor=anchor, polls=polls)  # fmt: skip


def _follow(cfg, db, *, name: str, interval: float, capture: str | None, sweep_every: float, gap_timeout: float,
            lookback: float, anchor: bool, polls: int) -> None:  # fmt: skip
    import signal
    import threading

    from migration_tools.legacy.follow import Follower

    drain = None
    lock = None
    if anchor:
        from hybrid_store.anchoring import Anchorer
        from hybrid_store.worker_lock import WorkerLock

        chain, deployment = chain_for(cfg, db)
        anchorer = Anchorer.from_settings(db, chain, deployment, cfg)
        lock = WorkerLock(db)
        if not lock.acquire():
            raise fail("another anchoring worker is running for this database",
                       "leave --anchor off: that worker anchors what the follower records")  # fmt: skip

        def drain() -> int:
            return anchorer.drain().records

    from hybrid_store.worker_lock import follower_lock

    following = follower_lock(db)
    if not following.acquire():
        if lock is not None:
            lock.release()
        raise fail("another `legacy sync --follow` is running for this registry",
                   "run one follower per registry (it mirrors every change; a second would only race it)")  # fmt: skip
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    follower = Follower(db, cfg.profile, name=name, method=capture, gap_timeout=gap_timeout, lookback=lookback,
                        anchor=drain)  # fmt: skip
    done = 0

    def stopping() -> bool:
        return stop.is_set() or bool(polls and done >= polls)

    def show(report) -> None:
        nonlocal done
        done += 1
        err_console.print(
            f"[dim]{report.last_poll_at}[/dim] {name}: {report.new:,} new, {report.versions:,} versions, "
            f"{report.deleted:,} deleted, {report.quarantined:,} quarantined"
            + (f", {report.gaps_open} change-log gaps awaited" if report.gaps_open else "")
            + (f", {report.anchored:,} anchored" if anchor else "")
            + (
                f"; [bold red]ALARM[/bold red]: {report.alarms:,} change-log rows the database did not number "
                f"(latest {report.implausible[-1]}): check who may write {name!r}'s change log"
                if report.alarms
                else ""
            ),
            highlight=False,
        )

    console.print(f"following {name!r} ({follower.method} capture, every {interval:g} s); Ctrl-C stops")
    try:
        report = follower.run(interval=interval, sweep_every=sweep_every, stop=stopping, on_poll=show)
    finally:
        follower.close()
        following.release()
        if lock is not None:
            lock.release()
    console.print(f"stopped: {report.polls:,} polls, {report.sweeps:,} sweeps, {report.new:,} new, "
                  f"{report.versions:,} versions, {report.deleted:,} deleted, {report.quarantined:,} quarantined")  # fmt: skip


@legacy_app.command("install-capture")
@friendly
def legacy_install_capture(
    ddl_url_env: Annotated[
        str | None,
        typer.Option(help="The environment variable holding a URL with DDL rights (used once, never stored)."),
    ] = None,
    ddl_url_file: Annotated[Path | None, typer.Option(help="A file (mode 600) holding that URL.")] = None,
    name: Annotated[str, typer.Option(help="The attached legacy database.")] = "county",
    uninstall: Annotated[bool, typer.Option("--uninstall", help="Remove the change log and triggers.")] = False,
) -> None:
    """Install trigger change capture in the legacy database: a change-log table (landreg_changes)
    and triggers on every table the layout reads, recording each inserted, updated or deleted row
    with its full image. Needs DDL rights once; landreg's own account then only reads the log
    (grant it SELECT on landreg_changes)."""
    from migration_tools.legacy import capture
    from migration_tools.legacy.layout import stored_layout
    from migration_tools.legacy.sync import guarded, reach, read_url, source_of

    if (ddl_url_env is None) == (ddl_url_file is None):
        raise fail("give exactly one of --ddl-url-env VAR and --ddl-url-file PATH",
                   "the URL carries a password: it is never given on the command line")  # fmt: skip
    cfg = settings()
    db = database(cfg)
    source = source_of(db, name)
    layout = stored_layout(source.layout_text)
    url = read_url(ddl_url_env, str(ddl_url_file) if ddl_url_file else None)
    from sqlalchemy import create_engine

    engine = guarded(url, lambda: create_engine(url))  # read-write: this one account creates the triggers
    try:
        reach(url, engine)
        if uninstall:
            guarded(url, lambda: capture.uninstall(engine, layout))
            audit_cli(db, "legacy.uninstall-capture", f"legacy {name}")
            console.print(f"removed {capture.CHANGE_LOG} and landreg's triggers from {name!r}")
            return
        made = guarded(url, lambda: capture.install(engine, layout))
    finally:
        engine.dispose()
    audit_cli(db, "legacy.install-capture", f"legacy {name}", created=[str(m) for m in made])
    for item in made:
        console.print(f"  created {item}")
    console.print(
        f"next: grant landreg's read-only account SELECT on {capture.CHANGE_LOG}, then `landreg legacy sync --follow`"
    )


@legacy_app.command("flags")
@friendly
def legacy_flags(
    open_only: Annotated[bool, typer.Option("--open", help="Only flags nobody acknowledged yet.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on standard output.")] = False,
) -> None:
    """Versions the legacy database replaced (changed_in_legacy, with what changed) or deleted
    (deleted_in_legacy), newest first."""
    from hybrid_store import mirror

    db = database(settings())
    with db.read() as s:
        found = mirror.flags(s, open_only=open_only)
    if as_json:
        print(json.dumps([f.to_json() for f in found], indent=2, default=str))
        return
    table = Table(title=f"mirror flags ({len(found)})")
    for col in ("id", "kind", "instrument", "now", "changed", "acknowledged"):
        table.add_column(col)
    for f in found:
        table.add_row(str(f.id), f.kind, f.instrument_number, f.successor_number or "-",
                      ", ".join(sorted(f.diff or {})) or "-",
                      f"{f.acknowledged_by}: {f.ack_reason}" if f.acknowledged_at else "")  # fmt: skip
    console.print(table)


@legacy_app.command("ack")
@friendly
def legacy_ack(
    flag_id: Annotated[int, typer.Argument(help="The flag's id (`landreg legacy flags`).")],
    reason: Annotated[str, typer.Option(help="Why the divergence is accepted (audit-logged).")],
) -> None:
    """Acknowledge a mirror flag, with the reason (recorded in the audit log)."""
    from hybrid_store import flags

    db = database(settings())
    with db.write() as s:
        view = flags.acknowledge(s, flags.Source.MIRROR, flag_id, actor=_actor(), role="admin", reason=reason)
    console.print(f"acknowledged flag {view.id} ({view.kind}, {view.instrument_number})")


@legacy_app.command("status")
@friendly
def legacy_status() -> None:
    """The attached legacy databases: layout, where the URL comes from, the last sync, and what each
    document became (loaded or quarantined). Never the URL itself."""
    from sqlalchemy import func, select

    from hybrid_store.db.models import LegacyDocument, LegacySource

    cfg = settings()
    db = database(cfg)
    with db.read() as s:
        sources = list(s.scalars(select(LegacySource).order_by(LegacySource.name)))
        states = dict(((sid, st), n) for sid, st, n in s.execute(
            select(LegacyDocument.source_id, LegacyDocument.state, func.count()).group_by(
                LegacyDocument.source_id, LegacyDocument.state)))  # fmt: skip
    if not sources:
        console.print("no legacy database attached (`landreg legacy attach --layout ... --url-env VAR`)")
        return
    for src in sources:
        table = Table(title=f"legacy database {src.name!r}", show_header=False)
        table.add_row("layout", f"{src.layout_name} (sha256 {src.layout_sha256[:12]}…)")
        table.add_row("database", src.dialect)
        table.add_row("URL from", f"${src.url_env}" if src.url_env else str(src.url_file))
        table.add_row("attached", f"{src.attached_at:%Y-%m-%d %H:%M} by {src.attached_by}")
        table.add_row("documents loaded", f"{states.get((src.id, 'loaded'), 0):,}")
        table.add_row("documents quarantined", f"{states.get((src.id, 'quarantined'), 0):,}")
        table.add_row("documents deleted in legacy", f"{states.get((src.id, 'deleted'), 0):,}")
        if src.capture:
            cursor = src.cursor or {}
            where = (f"change log #{cursor.get('seq', 0):,}, {len(cursor.get('gaps') or {})} gaps awaited"
                     if src.capture == "trigger" else f"watermark {cursor.get('since')}")  # fmt: skip
            table.add_row("following", f"{src.capture} capture, at {where}")
        if src.last_sync_at is not None and src.last_sync and "follow" in src.last_sync:
            last = src.last_sync["follow"]
            table.add_row("last poll", f"{src.last_sync_at:%Y-%m-%d %H:%M:%S}: {last['new']:,} new, "
                          f"{last['versions']:,} versions, {last['deleted']:,} deleted since the follower started")  # fmt: skip
            if last.get("alarms"):
                table.add_row("[bold red]ALARM[/bold red]", f"{last['alarms']:,} change-log rows the database did not "
                              f"number (latest: {', '.join(str(n) for n in last.get('implausible', [])[-5:])}): "
                              "someone wrote the change log by hand; check who may, and delete them")  # fmt: skip
        elif src.last_sync_at is not None and src.last_sync:
            last = src.last_sync
            table.add_row("last sync", f"{src.last_sync_at:%Y-%m-%d %H:%M}: {last['documents']:,} read, "
                          f"{last['loaded']:,} loaded, {last['quarantined']:,} quarantined ({last['seconds']:.1f} s)")  # fmt: skip
        console.print(table)


@legacy_app.command("municipalities")
@friendly
def legacy_municipalities(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The municipalities the legacy book holds records of: the codes `migrate plan -m` selects."""
    from migration_tools.stages.selection import book_municipalities

    db = database(settings())
    with db.read() as s:
        rows = book_municipalities(s)
    if as_json:
        console.out(json.dumps([r.__dict__ for r in rows], indent=2), highlight=False)
        return
    if not rows:
        console.print("the book holds no legacy records yet: `landreg legacy import ...` or `landreg legacy sync`")
        return
    table = Table(title=f"the legacy book: {len(rows)} municipalit{'y' if len(rows) == 1 else 'ies'}")
    table.add_column("code")
    table.add_column("name")
    table.add_column("records", justify="right")
    table.add_column("not migrated", justify="right")
    for r in rows:
        table.add_row(r.code, r.name, f"{r.records:,}", f"{r.unmigrated:,}")
    console.print(table)


@import_app.command("synthetic")
@friendly
def import_synthetic(
    instruments: Annotated[int, typer.Option(min=1, help="How many instruments (370000 is Bergen scale).")] = 20_000,
    seed: Annotated[int, typer.Option(help="Same seed, same book.")] = 2026,
    quarantine: Annotated[Path | None, typer.Option(help="Where rejected records go (CSV).")] = None,
) -> None:
    """Load the synthetic Bergen County book (seeded, reproducible) as a legacy book."""
    from migration_tools.legacy.importer import synthetic_source

    _run_import(synthetic_source(instruments, seed), f"synthetic-{instruments}-{seed}", quarantine)


# --- migrate -----------------------------------------------------------------------------------------
def _selector(municipality: list[str] | None, date_from: str | None, date_to: str | None, books: str | None):
    from migration_tools.stages import Selector

    book_from = book_to = None
    if books:
        lo, _, hi = books.partition("-")
        try:
            book_from, book_to = (int(lo) if lo else None), (int(hi) if hi else None)
        except ValueError:
            raise fail(f"--books {books!r}: give a range such as 7000-7999") from None
    try:
        return Selector(
            municipalities=tuple(municipality or ()),
            date_from=date.fromisoformat(date_from) if date_from else None,
            date_to=date.fromisoformat(date_to) if date_to else None,
            book_from=book_from,
            book_to=book_to,
        )
    except ValueError as exc:
        raise fail(f"bad date: {exc}", "dates are YYYY-MM-DD") from None


@migrate_app.command("plan")
@friendly
def migrate_plan(
    name: Annotated[str, typer.Argument(help="The stage's name, e.g. pilot.")],
    municipality: Annotated[list[str] | None, typer.Option("--municipality", "-m", help="NJ code; repeatable.")] = None,
    date_from: Annotated[str | None, typer.Option("--from", help="Recorded on or after (YYYY-MM-DD).")] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="Recorded on or before (YYYY-MM-DD).")] = None,
    books: Annotated[str | None, typer.Option(help="Deed/mortgage book range, e.g. 7000-7999.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=100_000, help="Records per anchored batch.")] = 10_000,
    dry_run: Annotated[bool, typer.Option(help="Only show the plan; do not record the stage.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    force: Annotated[
        bool, typer.Option(help="Record a stage that selects nothing or overlaps a stage that has not run.")
    ] = False,
) -> None:
    """Define a stage and show its dry run: counts, batches, gas and cost, time, what is skipped and why.

    A stage that selects nothing, names a municipality the book does not hold (`landreg legacy
    municipalities` lists them) or overlaps a stage that has not run yet is refused without --force.
    Planning a stage again replaces its definition, and says what it replaced."""
    from migration_tools.stages import plan_stage

    cfg = settings()
    db = database(cfg)
    try:
        chain, _ = chain_for(cfg, db)
    except Exception as exc:  # a plan is useful without the chain; estimates get coarser
        err_console.print(f"[yellow]note:[/yellow] no chain ({exc}); gas is estimated, not asked of the node")
        chain = None
    report = plan_stage(db, chain, name, _selector(municipality, date_from, date_to, books), batch_size=batch_size,
                        actor=_actor(), save=not dry_run, force=force, audit=audit_hook())  # fmt: skip
    if as_json:
        console.out(json.dumps(report.to_json(), indent=2), highlight=False)
        return
    table = Table(title=f"plan for stage {name!r}" + (" (dry run, not recorded)" if dry_run else ""), show_header=False)
    table.add_row("selects", report.selector)
    table.add_row("legacy records matching", f"{report.matching:,}")
    table.add_row("to migrate", f"{report.to_migrate:,}")
    for why, n in report.skipped.items():
        table.add_row("  skipped", f"{n:,}: {why}")
    table.add_row("batches", f"{report.batches:,} of up to {report.batch_size:,} records")
    table.add_row(
        "gas", f"{report.gas_total:,} ({report.gas_per_batch:,} a batch, {report.gas_per_record:.1f} a record)"
    )
    table.add_row("chain cost", f"{report.cost_eth:.6f} ETH at {report.gas_price_wei / 1e9:.2f} gwei")
    table.add_row("time (estimate)", f"{report.seconds_estimate:,.0f} s")
    table.add_row("can start", report.gate)
    for why in report.refusals:
        table.add_row("[yellow]refused[/yellow]" if dry_run else "[yellow]forced[/yellow]", why)
    console.print(table)
    if report.replaces is not None:
        old = report.replaces
        verb = "would replace" if dry_run else "replaced"
        console.print(f"{verb} stage {old.stage!r}: {old.selector} ({old.to_migrate:,} records, batches of "
                      f"{old.batch_size:,}) → {report.selector} ({report.to_migrate:,} records, batches of "
                      f"{report.batch_size:,})", highlight=False)  # fmt: skip


def _runner(cfg, db, chain, deployment, progress=None, workers=2):
    from hybrid_store.anchoring import Anchorer
    from migration_tools.stages import StageRunner

    return StageRunner(
        db, chain, deployment, anchorer=Anchorer.from_settings(db, chain, deployment, cfg),
        progress=progress, workers=workers,
    )  # fmt: skip


Workers = Annotated[int, typer.Option(min=1, max=16, help="Processes hashing records (one per core suits).")]


@migrate_app.command("run")
@friendly
def migrate_run(name: Annotated[str, typer.Argument(help="A planned stage.")], workers: Workers = 2) -> None:
    """Commit and anchor the stage in batches (a checkpoint with each); kill it any time and `resume`."""
    cfg = settings()
    db = database(cfg)
    chain, deployment = chain_for(cfg, db)
    with _progress(f"stage {name}") as bar:
        task = bar.add_task("run", total=None, rate="")
        started = datetime.now(UTC)
        first: list[int] = []

        def show(done: int, total: int) -> None:
            first.append(done) if not first else None
            elapsed = (datetime.now(UTC) - started).total_seconds() or 1e-9
            bar.update(task, completed=done, total=total, rate=f"{(done - first[0]) / elapsed:,.0f} records/s")

        report = _runner(cfg, db, chain, deployment, show, workers).run(name)
    from migration_tools.reconciliation.wording import count

    audit_cli(db, "migration.run", f"stage {name}", records=report.records, batches=report.batches,
              gas_used=report.gas_used)  # fmt: skip
    console.print(
        f"stage {name!r}: {count(report.records, 'record')} in {count(report.batches, 'batch', 'batches')} this run "
        f"(+{count(report.outbox_batches, 'batch', 'batches')} of filings), {report.gas_used:,} gas for the stage, "
        f"{report.seconds:.1f} s"
    )
    console.print(f"next: `landreg reconcile --stage {name}`, then `landreg migrate signoff {name} --operator NAME`")


@migrate_app.command("resume")
@friendly
def migrate_resume(
    name: Annotated[str, typer.Argument(help="A stage that was interrupted.")], workers: Workers = 2
) -> None:
    """Finish an interrupted run: settle its last batch, then carry on where the checkpoint says."""
    migrate_run(name, workers)


@migrate_app.command("status")
@friendly
def migrate_status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every stage: state, progress, reconciliation and sign-off."""
    from migration_tools.reconciliation.wording import count
    from migration_tools.stages import stage_status

    rows = stage_status(database(settings()))
    if as_json:
        console.out(json.dumps([r.to_json() for r in rows], indent=2), highlight=False)
        return
    if not rows:
        console.print("no stages planned yet (`landreg migrate plan NAME ...`)")
    for r in rows:
        recon = "not yet" if r.reconciled_at is None else ("clean" if r.reconciled_clean else "DISCREPANCIES")
        signed = f"by {r.signed_off_by}, {r.signed_off_at:%Y-%m-%d %H:%M}" if r.signed_off_at else "no"
        console.print(
            f"[bold]{r.name}[/bold] ({r.state}): {r.selector}; {count(r.records_done, 'record')} in "
            f"{count(r.batches_done, 'batch', 'batches')}, "
            f"{r.remaining:,} left; reconciled: {recon}; signed off: {signed}"
            + (f"; can start: {r.gate}" if r.gate != "-" else "")
        )


@migrate_app.command("signoff")
@friendly
def migrate_signoff(
    name: Annotated[str, typer.Argument()],
    operator: Annotated[str, typer.Option(help="Who signs off (recorded with the stage).")],
) -> None:
    """Accept a stage after a clean reconciliation, so the next stage may start."""
    from migration_tools.stages import sign_off

    sign_off(database(settings()), name, operator, audit=audit_hook())
    console.print(f"stage {name!r} signed off by {operator}")


@migrate_app.command("rollback")
@friendly
def migrate_rollback(
    name: Annotated[str, typer.Argument()],
    batch: Annotated[
        list[int] | None, typer.Option("--batch", help="On-chain batch id; repeatable (default: all).")
    ] = None,
) -> None:
    """Revoke a stage's batches on chain, mark them superseded and re-anchor their records (nothing is deleted)."""
    from migration_tools.stages import rollback_stage

    cfg = settings()
    db = database(cfg)
    chain, deployment = chain_for(cfg, db)
    from hybrid_store.anchoring import Anchorer

    report = rollback_stage(db, chain, deployment, name, batch_ids=batch,
                            anchorer=Anchorer.from_settings(db, chain, deployment, cfg))  # fmt: skip
    audit_cli(db, "migration.rollback", f"stage {name}", batches=list(report.batches), records=report.records,
              replacements=list(report.replacements))  # fmt: skip
    console.print(f"rolled back batches {report.batches} of {name!r}: {report.records:,} records revoked and "
                  f"re-anchored in batches {report.replacements}; reconcile and sign off again")  # fmt: skip


# --- reconcile ---------------------------------------------------------------------------------------
@friendly
def reconcile_command(
    stage: Annotated[str | None, typer.Option(help="Only this stage's batches.")] = None,
    report: Annotated[Path | None, typer.Option(help="Write the HTML report here.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the JSON report here.")] = None,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Write the discrepancies as CSV here.")] = None,
    manifests: Annotated[
        Path | None,
        typer.Option(help="The batch manifests (default: LANDREG_MANIFEST_DIR, else LANDREG_HOME/manifests)."),
    ] = None,
    heal: Annotated[
        bool, typer.Option(help="Re-queue records of batches the chain lost (never tampered ones).")
    ] = False,
    workers: Annotated[int, typer.Option(min=1, max=16, help="Processes recomputing commitments.")] = 2,
    legacy: Annotated[
        bool,
        typer.Option(
            "--legacy",
            help="Three-way: also compare the attached legacy database with landreg's mirror, document by document.",
        ),
    ] = False,
    legacy_name: Annotated[str, typer.Option(help="--legacy: the attached legacy database.")] = "county",
) -> None:
    """Recompute every anchored record's commitment and compare it with the chain, batch by batch.
    With --legacy, also the legacy database with landreg: not mirrored, changed or deleted in
    legacy, unknown to legacy.

    Exit status 0 when clean (pending records are not discrepancies), 1 otherwise, 4 when the
    chain's node did not answer (nothing is concluded: an unreachable node is never a reset chain).
    """
    from migration_tools import hashing_pool

    cfg = settings()
    # the hashing processes start first, before any database connection or thread exists here, as
    # copies of this process: they hash while this one loads the chain libraries and asks the chain
    pool = hashing_pool.start(cfg.db_url, workers, fork=True) if workers > 1 else None
    db = database(cfg)
    try:
        from migration_tools.reconciliation.run import reconcile

        def chain():
            from hybrid_store.chain.connect import open_chain

            start_managed_node(cfg)
            return open_chain(cfg)

        result = reconcile(db, chain, manifest_dir=manifests or cfg.manifests_dir, stage=stage,
                           workers=workers, actor=_actor(), heal=heal, pool=pool,
                           legacy=legacy_name if legacy else None,
                           progress=lambda m: err_console.print(f"[dim]{m}[/dim]"))  # fmt: skip
    except Exception as exc:
        from hybrid_store.errors import LandregError

        if isinstance(exc, LandregError):
            raise
        raise fail(f"reconciliation failed: {exc}") from None
    finally:
        if pool is not None:
            pool.terminate()
    from migration_tools.reconciliation.reports import write_csv, write_html, write_json

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    report = report or cfg.reports_dir / f"reconcile-{stamp}.html"
    report.parent.mkdir(parents=True, exist_ok=True)
    write_html(result, report, desk_url=cfg.service.base_url)  # the address readers of the report can open
    if json_out:
        write_json(result, json_out)
    if csv_out:
        write_csv(result, csv_out)
    from migration_tools.reconciliation.wording import count, kinds_line

    c = result.counts
    line = (f"{c.get('verified', 0):,} of {count(c.get('records_checked', 0), 'anchored record')} verified in "
            f"{count(c.get('batches', 0), 'batch', 'batches')}; {kinds_line(result.kinds())} ({result.seconds:.1f} s)")  # fmt: skip
    if result.healed:
        line += (f"; healed: {count(result.healed['records'], 'record')} re-queued (run the worker or "
                 "`landreg worker --drain`)")  # fmt: skip
    if result.legacy:
        lc = result.legacy["counts"]
        line += f"; legacy database: {count(lc.get('legacy_documents', 0), 'document')} compared"
    console.print(("[green]CLEAN[/green]: " if result.clean else "[red]DISCREPANCIES[/red]: ") + line)
    console.print(f"report: {report}")
    raise typer.Exit(0 if result.clean else 1)
