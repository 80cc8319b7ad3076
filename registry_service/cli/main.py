"""``landreg``: the command line of the land registry.

Every command reads its settings from the environment (``LANDREG_HOME``, ``DATABASE_URL``,
``LANDREG_CHAIN__*``; see ``hybrid_store.settings``) and keeps local state under ``LANDREG_HOME``.
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from registry_service.cli.common import (
    VERDICT_EXIT,
    chain_for,
    cli_actor,
    console,
    database,
    err_console,
    fail,
    friendly,
    plain,
    settings,
    setup_logging,
    start_managed_node,
)
from registry_service.cli.group import LazyGroup


class Landreg(LazyGroup):
    # the operators' commands, imported when named or listed (--help): an auditor's `landreg verify`
    # compiles and builds none of them (issue 24)
    elsewhere = {
        "reconcile": ("registry_service.cli.migration:reconcile_command", None),
        "chain": ("registry_service.cli.chain:app", "demo"),
        "trust": ("registry_service.cli.trust:trust_app", "receipt"),
        "signing-keys": ("registry_service.cli.trust:keys_app", "trust"),
        "legacy": ("registry_service.cli.migration:legacy_app", "signing-keys"),
        "migrate": ("registry_service.cli.migration:migrate_app", "legacy"),
    }


app = typer.Typer(
    name="landreg",
    help="Blockchain-anchored land registry: record deeds, anchor them, export and verify proofs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=Landreg,
)
db_app = typer.Typer(help="The deed database schema (Alembic migrations).", no_args_is_help=True)
app.add_typer(db_app, name="db")
contracts_app = typer.Typer(help="Compile the DeedRegistry contract.", no_args_is_help=True)
app.add_typer(contracts_app, name="contracts")
keys_app = typer.Typer(help="API keys for clerks, auditors, operators and admins.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
receipt_app = typer.Typer(help="Filing receipts signed by the registry.", no_args_is_help=True)
app.add_typer(receipt_app, name="receipt")
fees_app = typer.Typer(help="Recording fees and the realty transfer fee (docs/fees.md).", no_args_is_help=True)
app.add_typer(fees_app, name="fees")


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens, to stderr.")] = False,
) -> None:
    setup_logging(verbose)
    from hybrid_store.strict_json import restore_recursion_limit

    restore_recursion_limit()


# --- db ---------------------------------------------------------------------------------------------
@db_app.command("upgrade")
@friendly
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply migrations up to REVISION (run this before starting services on PostgreSQL)."""
    from hybrid_store.db.engine import Database

    cfg = settings()
    cfg.ensure_home()
    db = Database(cfg.db_url)
    db.migrate(revision)
    console.print(f"database at revision {db.current_revision()} ({db.dialect})")


@db_app.command("grant-runtime")
@friendly
def db_grant_runtime(
    role: Annotated[str, typer.Argument(help="The PostgreSQL role the service and workers connect as.")],
) -> None:
    """Grant the runtime role what the service needs and nothing more (run as the owner, after
    every `landreg db upgrade`): what each table declares (SELECT and INSERT on history, no key
    management, no TRUNCATE, no DDL, no triggers), and PUBLIC's CREATE on schema public revoked."""
    from hybrid_store.db.engine import Database
    from hybrid_store.db.roles import grant_runtime

    cfg = settings()
    statements = grant_runtime(Database(cfg.db_url), role)
    console.print(f"granted {role}: {len(statements)} statements (deny by default: hybrid_store/db/tables.py)")


@db_app.command("current")
@friendly
def db_current() -> None:
    """Show the schema revision of the configured database."""
    from hybrid_store.db.engine import Database

    db = Database(settings().db_url)
    console.print(db.current_revision() or "empty (run `landreg db upgrade`)")


# --- fees -------------------------------------------------------------------------------------------
@fees_app.command("report")
@friendly
def fees_report(
    day: Annotated[str, typer.Option(help="The recorder's day (its own time zone), YYYY-MM-DD.")],
    csv_file: Annotated[Path | None, typer.Option("--csv", help="Also write the report as CSV to this file.")] = None,
) -> None:
    """The fees recorded on DAY, instrument by instrument, with the totals per fee, per payer and
    overall: what the clerk reconciles with the till."""
    import csv
    from datetime import date, datetime
    from zoneinfo import ZoneInfo

    from hybrid_store import fee_book
    from hybrid_store.fees import dollars

    try:
        the_day = date.fromisoformat(day) if len(day) == 10 else None
    except ValueError:
        the_day = None
    if the_day is None:
        raise fail(f"--day {day!r} is not a day", "write it YYYY-MM-DD, e.g. 2026-03-02")
    cfg = settings()
    with database(cfg).read() as s:
        report = fee_book.day_report(s, the_day, cfg.profile.timezone)
    zone = ZoneInfo(report["timezone"])
    console.print(f"Fees recorded on {report['day']} ({report['timezone']}), {cfg.service.registry_name}", markup=False)
    for inst in report["instruments"]:
        pages = f", {inst['pageCount']} pages" if inst["pageCount"] else ""
        lacked = f" (fees lacked: {', '.join(inst['missing'])})" if inst["missing"] else ""
        at = datetime.fromisoformat(inst["recordedAt"].replace("Z", "+00:00")).astimezone(zone)  # the till's clock
        console.print(f"{inst['instrumentNumber']}  {at:%H:%M:%S}  {inst['docType']}{pages}{lacked}", markup=False)
        for line in inst["lines"]:
            console.print(f"    {line['code'].replace('_', ' '):<22} {line['payer']:<8} {line['amount']:>16}")
    for code, cents in sorted(report["byLine"].items()):
        console.print(f"total {code.replace('_', ' '):<22}          {dollars(cents):>16}")
    for payer, cents in sorted(report["byPayer"].items()):
        console.print(f"total paid by {payer:<14}          {dollars(cents):>16}")
    console.print(f"{report['count']} instruments, total {report['total']}")
    if csv_file is not None:
        with csv_file.open("w", newline="", encoding="utf-8") as out:
            csv.writer(out).writerows(fee_book.report_csv_rows(report))
        console.print(f"written to {csv_file}")


# --- contracts --------------------------------------------------------------------------------------
@contracts_app.command("build")
@friendly
def contracts_build(
    check: Annotated[bool, typer.Option(help="Only check that the committed artifact is reproduced exactly.")] = False,
) -> None:
    """Compile contracts/DeedRegistry.sol with py-solc-x into the committed artifact."""
    from hybrid_store.chain.compile import ARTIFACT_PATH, build

    same = build(check=check)
    if check and not same:
        raise fail(f"recompiling does not reproduce {ARTIFACT_PATH}", "run `landreg contracts build` and commit it")
    console.print(f"{ARTIFACT_PATH}: {'unchanged' if same else 'written'}")


# --- proofs -----------------------------------------------------------------------------------------
@app.command()
@friendly
def proof(
    instrument_number: Annotated[str, typer.Argument(help="The instrument's number, e.g. 2026-0000123.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the bundle here instead of stdout.")] = None,
    redact: Annotated[
        str, typer.Option(help="Comma-separated fields to give as hashes only, e.g. consideration,grantees.")
    ] = "",
) -> None:
    """Export the proof bundle of one recorded instrument, for an auditor to verify anywhere."""
    from hybrid_store.proofs import export_bundle

    cfg = settings()
    fields = [f.strip() for f in redact.split(",") if f.strip()]
    with database(cfg).read() as session:
        try:
            bundle = export_bundle(session, instrument_number, redact=fields)
        except ValueError as exc:  # an unknown field to redact
            raise fail(str(exc)) from None
    text = json.dumps(bundle.to_json(), indent=2, ensure_ascii=False) + "\n"
    if out is None:
        console.out(text, end="", highlight=False)
    else:
        out.write_text(text, encoding="utf-8")
        err_console.print(f"wrote {out}")
    if not bundle.is_anchored:
        err_console.print("[yellow]note:[/yellow] this record is not anchored yet; the bundle is pending")


@app.command()
@friendly
def title(
    parcel: Annotated[str, typer.Argument(help="The parcel's key, e.g. 0223_100.01_5.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the abstract here instead of stdout.")] = None,
    redact: Annotated[
        str, typer.Option(help="Comma-separated fields to give as hashes only, e.g. grantors,grantees,consideration.")
    ] = "",
    head_only: Annotated[
        bool, typer.Option("--head", help="Only the parcel's head in the newest anchored title state (a head proof).")
    ] = False,
) -> None:
    """Export a parcel's title abstract: every record of its history with its proof, and the proof
    that the newest is the parcel's head in the newest anchored title state. Verify it anywhere with
    `landreg verify ABSTRACT --trust root.json --rpc URL`; it tells who owns the parcel of record and
    what is open against it. Index fields (number, type, time, parcels, history and cross-references)
    are always disclosed; names and amounts may be redacted."""
    from hybrid_store import title_abstract

    cfg = settings()
    fields = [f.strip() for f in redact.split(",") if f.strip()]
    with database(cfg).read() as session:
        try:
            document = (title_abstract.head_document(session, parcel).to_json() if head_only
                        else title_abstract.build(session, parcel, redact=fields).to_json())  # fmt: skip
        except ValueError as exc:  # an unknown field to redact
            raise fail(str(exc)) from None
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if out is None:
        console.out(text, end="", highlight=False)
    else:
        out.write_text(text, encoding="utf-8")
        records = len(document.get("records", ()))
        err_console.print(f"wrote {out}" + ("" if head_only else f" ({records} record{'s' if records != 1 else ''})"))


TrustOption = Annotated[
    str | None,
    typer.Option(
        "--trust",
        help="The registry's trust root (file or URL), obtained from the county. "
        "[default: LANDREG_HOME/trust/root.json when this machine runs the registry]",
    ),
]


def _pinned_trust(trust: str | None):  # -> TrustRoot | None
    from hybrid_store.verifier.trust import load

    if trust is not None:
        return load(trust)
    local = settings().trust_dir / "root.json"
    return load(local) if local.exists() else None


def _print_verdict(verdict, as_json: bool) -> None:
    if as_json:
        console.out(json.dumps(verdict.to_json(), indent=2), highlight=False)
    elif verdict.valid:
        colour = "green" if verdict.standing == "current" else "yellow"
        label = "VALID" if verdict.standing == "current" else f"VALID, {verdict.standing.replace('_', ' ').upper()}"
        console.print(f"[{colour}]{label}[/{colour}]: {plain(verdict.summary)}", highlight=False)
        console.print(f"standing: {verdict.standing_shown}", markup=False, highlight=False)
    elif verdict.unchecked or verdict.unavailable or verdict.pending:
        console.print(f"[yellow]{plain(verdict.reason)}[/yellow]", highlight=False)
    else:
        console.print(f"[red]INVALID[/red]: {plain(verdict.reason)}", highlight=False)
    if not as_json:
        _print_fields(verdict)
    raise typer.Exit(VERDICT_EXIT[verdict.status])


def _print_fields(verdict) -> None:
    """The fields the bundle verified, with their values, and those it withheld; then any warning."""
    shown = verdict.disclosed
    if shown is not None and (verdict.valid or verdict.unchecked or verdict.pending):
        console.print(f"fields: {shown.describe()}", markup=False, highlight=False)
        for f in shown.verified:
            console.print(f"  {f.name}: {f.shown}", markup=False, highlight=False)
        for name in shown.withheld:
            console.print(f"  {name}: withheld (given as a salted hash only)", markup=False, highlight=False)
    for warning in verdict.warnings:
        console.print(f"[yellow]warning:[/yellow] {plain(warning)}", highlight=False)


@app.command()
def verify(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="A proof bundle (JSON) exported by `landreg proof` or the API, or a title abstract; or many "
            "bundles: a folder (every *.json in it and its sub-folders), a JSON-lines file (*.jsonl, a bundle a "
            "line), or several files.",
            show_default=False,
        ),  # fmt: skip
    ],
    rpc: Annotated[
        str | None,
        typer.Option(help="JSON-RPC URL of a node of the anchoring chain (your own, or one you trust)."),
    ] = None,
    trust: TrustOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON.")] = False,
    successor: Annotated[
        Path | None,
        typer.Option(help="The newer version's bundle, for a record revoked as superseded whose bundle carries none."),
    ] = None,
    corrected_by: Annotated[
        list[Path] | None,
        typer.Option(
            "--corrected-by",
            help="A correction's bundle (repeatable): checked like the record before "
            "the verdict says the record was corrected.",
        ),  # fmt: skip
    ] = None,
    confirmations: Annotated[
        int,
        typer.Option(
            min=1,
            help="Blocks the anchor must have on top of it (its own included) to be VALID; "
            "fewer is PENDING. Use the registry's network's depth, e.g. 12.",
        ),  # fmt: skip
    ] = 1,
    head: Annotated[
        str | None,
        typer.Option(
            "--head",
            help="For a title abstract: the parcel's head at the newest anchored batch (a file, or a URL such as "
            "https://REGISTRY/api/v1/parcels/KEY/head), to tell COMPLETE from STALE.",
        ),  # fmt: skip
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="With many bundles: write every bundle's verdict to this file, as CSV (*.csv) or JSON lines.",
        ),  # fmt: skip
    ] = None,
) -> None:
    """Verify a proof bundle, or a parcel's title abstract, against the registry's trust root: the math, and the anchor on chain.

    The verdict names the record's standing (current as far as the bundle shows, corrected by N,
    superseded, deleted in legacy), the fields it verified with their values, and those it withheld.
    "Corrected by N" is said only when N's own bundle (carried in the bundle, or given with
    --corrected-by) verifies the same way and its committed link names this record. The contract
    named in the bundle is never trusted on its own word.

    Exit status 0 VALID (pinned to the trust root and checked on chain), 1 INVALID (with a one-line
    reason), 3 UNCHECKED (the math holds, but without --rpc or a trust root nothing says the root is
    the registry's), 4 UNAVAILABLE (the node did not answer: nothing was concluded), 5 PENDING (the
    anchor holds, but its block has fewer confirmations than --confirmations asks: verify again later).

    A title abstract (`landreg title`) is COMPLETE (exit 0: every record from the first to the head,
    nothing omitted, the head current in the newest anchored title state), INVALID (1, naming the
    gap), UNCHECKED (3), UNAVAILABLE (4), PENDING (5), STALE (6: the parcel's head moved after the
    abstract's batch, shown by --head) or COMPLETE AS OF BATCH M (7: newer batches were anchored
    and no --head at the newest was given); it prints the owners of record and the open encumbrances.

    Many bundles (a folder, a JSON-lines file, several files) are verified one by one, each in full,
    with what a batch's bundles share on chain read once per batch: each bundle that is not VALID (or,
    offline, UNCHECKED) is named with its reason, then the totals per verdict. Offline, a bundle of
    another registry (a contract, chain or jurisdiction the trust root does not list) is INVALID. The
    exit status is the worst verdict's: INVALID, then UNAVAILABLE, PENDING, UNCHECKED, VALID.
    """
    from hybrid_store.core.trust import TrustRootError
    from hybrid_store.verifier.bulk import is_many
    from hybrid_store.verifier.verdicts import verify_file

    many = is_many(paths)
    if many and (successor is not None or corrected_by or head is not None):
        raise fail("--successor, --corrected-by and --head go with one bundle or abstract, not many", code=2)
    if report is not None and not many:
        raise fail("--report goes with many bundles (a folder, a JSON-lines file, or several files)", code=2)
    try:
        pinned = _pinned_trust(trust)
    except TrustRootError as exc:
        console.print(f"[red]INVALID[/red]: {plain(str(exc))}")
        raise typer.Exit(1) from None
    if many:
        from registry_service.cli.verify_many import verify_many

        verify_many(paths, rpc, pinned, depth=confirmations, as_json=as_json, report=report)
    bundle_file = paths[0]
    document = _abstract_in(bundle_file)
    if document is not None:
        _verify_abstract(document, rpc, pinned, head, confirmations, as_json)
    verdict = verify_file(bundle_file, rpc, trust=pinned, successor=successor, corrected_by=corrected_by or (),
                          depth=confirmations)  # fmt: skip
    _print_verdict(verdict, as_json)


#: a file this small is read whole to tell an abstract from a bundle before loading the abstract verifier
_SNIFF_BYTES = 1_000_000


def _abstract_in(path: Path):  # -> a decoded abstract, or None (a bundle: verify_file reads it again)
    from hybrid_store import strict_json

    try:
        with open(path, "rb") as f:
            start = f.read(_SNIFF_BYTES + 1)
        if len(start) <= _SNIFF_BYTES and b'"landreg-title-abstract/' not in start:
            return None  # the whole file, without an abstract's format: a bundle (the abstract verifier stays unloaded)
        from hybrid_store.verifier import abstracts

        raw = strict_json.read_file(path, max_bytes=abstracts.MAX_ABSTRACT_BYTES)
        if b'"landreg-title-abstract/' not in raw:
            return None
        document = strict_json.loads(raw, max_bytes=abstracts.MAX_ABSTRACT_BYTES)
    except (OSError, strict_json.InvalidJSON):
        return None  # verify_file says what is wrong with it
    return document if abstracts.is_abstract(document) else None


def _verify_abstract(document, rpc: str | None, pinned, head: str | None, depth: int, as_json: bool) -> None:
    from hybrid_store.verifier import abstracts

    newest = _newest_head(head) if head is not None else None
    verdict = abstracts.verify_document(document, rpc, trust=pinned, newest=newest, depth=depth)
    if as_json:
        console.out(json.dumps(verdict.to_json(), indent=2, ensure_ascii=False), highlight=False)
        raise typer.Exit(abstracts.EXIT[verdict.status])
    colour = {"complete": "green", "invalid": "red"}.get(verdict.status, "yellow")
    console.print(f"[{colour}]{verdict.label}[/{colour}]: {plain(verdict.reason)}", highlight=False)
    if verdict.summary:
        console.print(verdict.summary, markup=False, highlight=False)
    _print_title(verdict)
    raise typer.Exit(abstracts.EXIT[verdict.status])


def _newest_head(location: str):  # -> a decoded head document, or None (a warning says why)
    """The parcel's newest head from a file or an http(s) URL, bounded; the verifier checks it on chain."""
    from hybrid_store import strict_json
    from hybrid_store.verifier import abstracts

    try:
        if location.startswith(("http://", "https://")):
            import httpx

            try:
                response = httpx.get(location, timeout=10, follow_redirects=False)
            except httpx.HTTPError as exc:
                raise OSError(str(exc)) from None
            if response.status_code != 200:
                raise OSError(f"HTTP {response.status_code}")
            raw = response.content
        else:
            raw = strict_json.read_file(Path(location), max_bytes=abstracts.MAX_HEAD_BYTES)
        return strict_json.loads(raw, max_bytes=abstracts.MAX_HEAD_BYTES)
    except (OSError, strict_json.InvalidJSON) as exc:
        err_console.print(f"[yellow]warning:[/yellow] cannot read the newest head {plain(location)}: {plain(str(exc))}")
        return None


def _print_title(verdict) -> None:
    """The records, the owners of record and the encumbrances the verdict derived, and its limits."""
    if verdict.records:
        console.print("records (oldest first):", highlight=False)
        for r in verdict.records:
            names = ""
            if r["grantors"] is not None or r["grantees"] is not None:
                names = f" {'; '.join(r['grantors'] or ['(withheld)'])} to {'; '.join(r['grantees'] or ['(withheld)'])}"
            standing = f" [{r['standing'].replace('_', ' ')}]" if r.get("standing") not in (None, "current") else ""
            console.print(f"  {r['number']}  {r['docType']}  recorded {r['recordedAt']}{names}{standing}",
                          markup=False, highlight=False)  # fmt: skip
    t = verdict.title
    if t is None:
        return
    owners = t.owners
    if owners.names is not None:
        console.print(f"owners of record: {'; '.join(owners.names)} (by {owners.number})", markup=False,
                      highlight=False)  # fmt: skip
    elif owners.why:
        console.print(f"owners of record: not provable from this abstract: {owners.why}", markup=False, highlight=False)
    else:
        console.print("owners of record: none (no conveyance of this parcel is recorded here)", highlight=False)
    still = t.open
    console.print(f"open encumbrances of record in this registry under {verdict.parcel_key}: "
                  f"{len(still) if still else 'none'}", markup=False, highlight=False)  # fmt: skip
    for e in t.encumbrances:
        state = {"open": "OPEN", "closed": f"closed by {e.closed_by}", "not provable": "open or closed: not "
                 "provable from the record"}[e.state]  # fmt: skip
        extra = f" ({'; '.join(e.notes)})" if e.notes else ""
        console.print(f"  {e.kind} {e.number}: {state}{extra}", markup=False, highlight=False)
    for note in t.notes:
        console.print(f"note: {note}", markup=False, highlight=False)
    console.print("not covered: " + "; ".join(abstract_limits()), markup=False, highlight=False)


def abstract_limits() -> tuple[str, ...]:
    from hybrid_store.core.abstract import LIMITS

    return LIMITS


# --- worker -----------------------------------------------------------------------------------------
@app.command()
@friendly
def worker(
    drain: Annotated[bool, typer.Option(help="Anchor everything pending now, then exit.")] = False,
) -> None:
    """Run the anchoring worker: batch pending records, anchor them, record their proofs."""
    from hybrid_store.anchoring import Anchorer
    from hybrid_store.db.roles import refuse_privileged

    cfg = settings()
    db = database(cfg)
    refuse_privileged(db, allow=cfg.service.allow_privileged_db_role, what="the anchoring worker")
    chain, deployment = chain_for(cfg, db)
    anchorer = Anchorer.from_settings(db, chain, deployment, cfg)
    from hybrid_store.worker_lock import WorkerLock

    lock = WorkerLock(db)
    if not lock.acquire():
        raise fail(
            "another anchoring worker is running for this database (a `landreg serve` or `landreg worker`)",
            "run one worker per registry; stop the other first, or set LANDREG_SERVICE__RUN_WORKER=false on the server",
        )
    try:
        if drain:
            summary = anchorer.drain()
            console.print(f"anchored {summary.records} records in {len(summary.batches)} batches")
            return
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        console.print(f"anchoring to {deployment.contract_address} on {chain.description}; Ctrl-C stops")
        anchorer.run(stop, keep_going=lambda: lock.still_held() and not lock.handover_requested())
        if lock.handover_requested():
            console.print("handed the anchoring over to a migration run; start the worker again when it is done")
    finally:
        lock.release()


# --- serve ------------------------------------------------------------------------------------------
@app.command()
@friendly
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on [default: service.host].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: service.port, 8000].")] = None,
    workers: Annotated[int | None, typer.Option(help="HTTP worker processes [default: service.workers].")] = None,
    worker: Annotated[bool | None, typer.Option(help="Run the anchoring worker here [default: yes].")] = None,
) -> None:
    """Serve the API (/api/v1, /docs) and the web desk (/desk), with the anchoring worker beside it."""
    import os

    from hybrid_store.db.roles import refuse_privileged
    from registry_service.server import serve as run_server

    cfg = settings()
    db = database(cfg)  # migrated (SQLite) or checked (PostgreSQL) before any process starts
    refuse_privileged(db, allow=cfg.service.allow_privileged_db_role, what="the service")
    from registry_service.receipts import ReceiptSigner

    ReceiptSigner.for_settings(cfg, db)  # refuses to start without LANDREG_SERVICE__RECEIPT_KEY_PASSPHRASE
    _publish_if_possible(cfg, db)
    s = cfg.service
    run_worker = s.run_worker if worker is None else worker
    os.environ["LANDREG_SERVICE__RUN_WORKER"] = "true" if run_worker else "false"  # every process reads it
    if run_worker:
        start_managed_node(cfg)
    console.print(f"serving on http://{host or s.host}:{port or s.port}  (desk: /desk/, API docs: /docs)")
    raise typer.Exit(run_server(host or s.host, port or s.port, workers or s.workers, anchoring=run_worker))


def _publish_if_possible(cfg, db) -> None:
    """Keep the published trust root current (a new receipt key must be listed before it signs
    anything auditors check). Without the trust-root passphrase, say loudly what is stale."""
    from hybrid_store.deployment import active_deployment
    from hybrid_store.trust import latest, signed_content

    with db.read() as session:
        if active_deployment(session) is None:
            return  # nothing deployed yet: the first deployment publishes it
    if cfg.trust.signing_key_passphrase is not None:
        from registry_service.cli.trust import publish_trust

        publish_trust(cfg, db)
        return
    published = latest(cfg)
    current = signed_content(cfg, db)
    if (
        published is None
        or {k: v for k, v in published.document["signed"].items() if k not in ("version", "issuedAt")} != current
    ):
        err_console.print(
            "[yellow]warning:[/yellow] the published trust root is out of date (new keys or deployments); "
            "run `landreg trust export` with LANDREG_TRUST__SIGNING_KEY_PASSPHRASE, or auditors cannot verify them"
        )


# --- keys -------------------------------------------------------------------------------------------
def _cli_actor():  # -> Actor
    return cli_actor()


@keys_app.command("create")
@friendly
def keys_create(
    role: Annotated[str, typer.Argument(help="clerk, auditor, operator or admin")],
    name: Annotated[str, typer.Option(help="Who holds the key, e.g. 'Jane Doe, recording desk 2'.")],
) -> None:
    """Issue an API key. The key is printed once; only its hash is stored."""
    from registry_service.auth import Role, create_key

    try:
        chosen = Role(role)
    except ValueError:
        raise fail(f"unknown role {role!r}", "choose clerk, auditor, operator or admin") from None
    key, row = create_key(database(settings()), role=chosen, name=name, by=_cli_actor())
    err_console.print(f"issued {chosen} key {row.key_id} for {name}; store it now, it is not shown again:")
    console.print(key)


@keys_app.command("revoke")
@friendly
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key id (the part after lr_).")]) -> None:
    """Revoke a key at once (servers honour it within LANDREG_SERVICE__KEY_CACHE_S seconds)."""
    from registry_service.auth import revoke_key

    revoke_key(database(settings()), key_id, by=_cli_actor())
    console.print(f"revoked {key_id}")


@keys_app.command("list")
@friendly
def keys_list() -> None:
    """List keys (ids, roles, holders, state); secrets are never shown."""
    from rich.table import Table

    from registry_service.auth import list_keys

    table = Table("key id", "role", "name", "created", "state")
    for k in list_keys(database(settings())):
        state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        table.add_row(k.key_id, k.role, k.name, f"{k.created_at:%Y-%m-%d %H:%M}", state)
    console.print(table)


# --- receipts ---------------------------------------------------------------------------------------
@receipt_app.command("verify")
def receipt_verify(
    receipt_file: Annotated[Path, typer.Argument(help="A receipt (JSON), or a filing response holding one.")],
    bundle: Annotated[Path, typer.Option(help="The proof bundle of the receipt's record (`landreg proof`).")],
    rpc: Annotated[str | None, typer.Option(help="JSON-RPC URL of a node of the anchoring chain.")] = None,
    trust: TrustOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON.")] = False,
) -> None:
    """Check a filing receipt: its signature by a receipt key of the trust root, and its record's
    anchor inside that key's window (a receipt proves something only together with its anchor).

    Exit status 0 VALID, 1 INVALID, 3 UNCHECKED (no --rpc or no trust root), 4 UNAVAILABLE (the
    node did not answer), 5 PENDING (the record's anchor is not yet deep enough).
    """
    from hybrid_store import strict_json
    from hybrid_store.core.trust import TrustRootError
    from hybrid_store.verifier.receipts import verify_receipt
    from hybrid_store.verifier.verdicts import Verdict

    try:
        pinned = _pinned_trust(trust)
        document = strict_json.loads(strict_json.read_file(receipt_file))
        if isinstance(document, dict) and isinstance(document.get("receipt"), dict):
            document = document["receipt"]
        bundle_document = strict_json.loads(strict_json.read_file(bundle))
    except TrustRootError as exc:
        _print_verdict(Verdict(False, str(exc)), as_json)
        return
    except (OSError, ValueError) as exc:
        _print_verdict(Verdict(False, f"cannot read the receipt or the bundle: {exc}"), as_json)
        return
    _print_verdict(verify_receipt(document, bundle_document, rpc, trust=pinned), as_json)


# --- demo -------------------------------------------------------------------------------------------
@app.command()
@friendly
def demo(
    instruments: Annotated[int, typer.Option(min=1, help="Size of the synthetic book of deeds.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic book (same seed, same book).")] = 2026,
    fresh: Annotated[bool, typer.Option(help="Start over: delete the database and chain state first.")] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Records per anchored batch.")] = 2_500,
) -> None:
    """Load a synthetic Bergen County book, anchor and tokenize it, then export and verify proofs."""
    from registry_service.demo import run_demo

    run_demo(settings(), instruments=instruments, seed=seed, fresh=fresh, batch_size=batch_size)


if __name__ == "__main__":  # pragma: no cover
    app()
