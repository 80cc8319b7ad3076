"""What every CLI command shares: settings, the database, the chain, and readable errors.

Nothing heavy is imported here at the top: `landreg verify` (an auditor's machine) loads the
verifier and, with --rpc, the chain adapter, and neither the database library nor the settings.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console

from hybrid_store.errors import ChainUnavailable, LandregError

if TYPE_CHECKING:
    from hybrid_store.settings import Settings

# soft_wrap: a verdict or an error stays one line however narrow the terminal (scripts read them)
# emoji=False: a record's text is printed as it is (":smile:" in a name stays those seven
# characters); text that comes from a bundle or a record goes through ``plain`` before markup
console = Console(highlight=False, soft_wrap=True, emoji=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
F = TypeVar("F", bound=Callable[..., Any])


def plain(text: str) -> str:
    """``text`` with rich's markup escaped: a reason or a summary quotes a bundle's or a record's
    own text (a party's name, a field, a file name), which must print as written, never as styling
    that could hide part of it or dress it up as another verdict."""
    from rich.markup import escape

    return escape(text)


def Table(*args: Any, **kwargs: Any):
    """rich's Table, imported when a command prints one (not by every command's start-up)."""
    from rich.table import Table as RichTable

    return RichTable(*args, **kwargs)


RECEIPT_VAR = "LANDREG_SERVICE__RECEIPT_KEY_PASSPHRASE"
TRUST_VAR = "LANDREG_TRUST__SIGNING_KEY_PASSPHRASE"
#: used only by `landreg demo` when the environment sets none; never use them for a real registry
DEMO_PASSPHRASES = {RECEIPT_VAR: "demo only: receipt key passphrase", TRUST_VAR: "demo only: trust-root key passphrase"}
#: in LANDREG_HOME: the demo-only passphrases a demo's keys are encrypted with (shell syntax)
DEMO_ENV = "demo.env"


def write_demo_env(home: Path, used: dict[str, str]) -> None:
    """Write down which demo-only passphrases encrypt this registry's keys, so that the commands a
    newcomer runs next (`landreg serve`, `landreg trust export`) find them, and a shell can source them."""
    path = home / DEMO_ENV
    known = _demo_env(home)
    known.update(used)
    if not known:
        return
    lines = ["# written by `landreg demo`: the demo-only passphrases this registry's keys are encrypted with.",
             "# landreg's commands use them when the environment sets none; `set -a; . ./.landreg/demo.env; set +a`",
             "# exports them. Never use them for a real registry.",
             *(f"{k}='{v}'" for k, v in sorted(known.items()))]  # fmt: skip
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _demo_env(home: Path) -> dict[str, str]:
    """The demo-only passphrases ``write_demo_env`` wrote (only ours are taken, whatever the file says)."""
    try:
        text = (home / DEMO_ENV).read_text(encoding="utf-8")
    except OSError:
        return {}
    found = {}
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if DEMO_PASSPHRASES.get(key) == value.strip("'"):
            found[key] = value.strip("'")
    return found


def settings() -> Settings:
    import os

    from hybrid_store.settings import get_settings

    try:
        cfg = get_settings()
        # a registry `landreg demo` made: its keys are encrypted with the demo-only passphrases
        demo = {k: v for k, v in _demo_env(cfg.home).items() if not os.environ.get(k)}
        if demo:
            os.environ.update(demo)  # the processes `serve` starts read them too
            cfg = get_settings()
            err_console.print(f"[dim]using the demo-only passphrases of {cfg.home / DEMO_ENV} "
                              "(this registry was made by `landreg demo`)[/dim]")  # fmt: skip
        return cfg
    except Exception as exc:  # pydantic's message names the variable
        err_console.print(f"[red]error:[/red] invalid settings: {exc}")
        raise typer.Exit(2) from None


def fail(message: str, hint: str = "", code: int = 1) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}")
    if hint:
        err_console.print(f"[dim]hint:[/dim] {hint}")
    return typer.Exit(code)


#: the exit status of every command when the chain's node did not answer (nothing was concluded)
UNAVAILABLE_EXIT = 4
#: `landreg verify`: each verdict its own exit status (0, 1, 3 and 4 as they always were; PENDING added after them)
VERDICT_EXIT = {"valid": 0, "invalid": 1, "unchecked": 3, "unavailable": UNAVAILABLE_EXIT, "pending": 5}


def friendly(fn: F) -> F:
    """Turn landreg's typed errors into one readable line (plus a hint) and exit status 1, or
    ``UNAVAILABLE_EXIT`` when the node did not answer."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ChainUnavailable as exc:
            raise fail(f"the chain is unavailable: {exc}", exc.hint, code=UNAVAILABLE_EXIT) from None
        except LandregError as exc:
            raise fail(str(exc), exc.hint) from None
        except Exception as exc:
            if not _refused_by_the_database(exc):
                raise
            said = str(getattr(exc, "orig", exc)).splitlines()[0]
            raise fail(
                f"the database role DATABASE_URL names may not do this ({said})",
                "key administration (`landreg keys`, `landreg signing-keys`) and `landreg db` run as the owner "
                'role, never as the service\'s runtime role (docs/operations.md, "Database roles")',
            ) from None
        except KeyboardInterrupt:
            raise fail("interrupted", code=130) from None

    return wrapper  # type: ignore[return-value]


def _refused_by_the_database(exc: Exception) -> bool:
    """Whether ``exc`` is the database refusing the role a privilege. The database library is looked
    up, not imported: a command that never loaded it cannot have raised one of its errors."""
    errors = sys.modules.get("sqlalchemy.exc")
    if errors is None or not isinstance(exc, errors.DBAPIError):
        return False
    from hybrid_store.db.engine import permission_denied

    return permission_denied(exc)


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def database(cfg: Settings):  # -> Database
    """The deed database, brought to the current schema when it is the embedded SQLite default."""
    from hybrid_store.db.engine import Database

    cfg.ensure_home()
    db = Database(cfg.db_url)
    if db.dialect == "sqlite":
        db.migrate()
    else:
        from alembic.script import ScriptDirectory

        from hybrid_store.db.engine import alembic_config

        head = ScriptDirectory.from_config(alembic_config(cfg.db_url)).get_current_head()
        if db.current_revision() != head:
            raise fail(
                f"the database schema is at {db.current_revision() or 'nothing'}, landreg needs {head}",
                "run `landreg db upgrade` (a prestart step in production)",
            )
    from hybrid_store.pins import pin_jurisdiction

    pin_jurisdiction(db, cfg.profile)  # a registry keeps the jurisdiction it started with
    return db


def chain_for(cfg: Settings, db: Any, *, deploy_if_missing: bool = True):  # -> (RegistryChain, ChainDeployment)
    """The configured chain, attached to this registry's contract (deployed on first use, and then
    published in the trust root at once)."""
    from hybrid_store.chain.connect import open_chain
    from hybrid_store.trust import attach_published

    start_managed_node(cfg)
    chain = open_chain(cfg)
    return chain, attach_published(cfg, db, chain, deploy_if_missing=deploy_if_missing)


def start_managed_node(cfg: Settings) -> None:
    """Start the managed anvil node if that is the configured chain and it is not running (as
    `landreg serve` does): commands that need the chain never fail only because it was stopped."""
    if cfg.chain.backend != "anvil":
        return
    from hybrid_store.chain.anvil import ManagedAnvil

    node = ManagedAnvil(cfg)
    if not node.status().running:
        err_console.print(f"[dim]starting the managed anvil node at {node.url}[/dim]")
        node.start()


def cli_actor():  # -> Actor
    """The operator at this terminal, as the audit log names them."""
    import getpass

    from registry_service.auth import Actor, Role

    return Actor(f"cli:{getpass.getuser()}", Role.ADMIN)


def audit_cli(db: Any, action: str, target: str, **details: object) -> None:
    """Write an audit entry for an operator's action at this terminal (in a transaction of its own:
    the commands that call this ran their writes already, in many transactions)."""
    from registry_service.auth import audit

    with db.write() as session:
        audit(session, cli_actor(), action, target, **details)


def audit_hook():  # -> Callable[[Session, str, dict], None]
    """For library calls that take ``audit=``: the entry is written in the write's own transaction."""
    from registry_service.auth import audit

    actor = cli_actor()
    return lambda session, action, details: audit(
        session, actor, action, str(details.get("target") or details.get("kid") or details.get("active")),
        **{k: v for k, v in details.items() if k != "target"},
    )  # fmt: skip
