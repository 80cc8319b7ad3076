"""The house rules that keep the layout legible, checked on the source so they cannot erode:

* the chain library is behind ``hybrid_store.chain``: nothing else imports web3 and its kin or
  touches their objects (``.w3``, ``.eth``, ``.functions``, a contract's ``.events``, an account);
* one module writes history: only ``hybrid_store.ledger`` inserts commitments or moves parcel heads;
* the consensus-critical core does no I/O: it imports no database, web, chain or process library;
* the verifier stands alone: ``hybrid_store.verifier`` imports no database code, nothing of the web
  edge or of ``registry_service``, and the chain adapter only lazily (checked on the source, and in a
  fresh interpreter that imports the whole package).

Each rule is a small AST check; each check is also shown to catch a violation, so a rule that
silently stopped matching anything would fail here too.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from tests.conftest import REPO

PRODUCT = ("hybrid_store", "registry_service", "migration_tools")
CHAIN_PACKAGE = "hybrid_store/chain/"
#: the chain libraries: only hybrid_store/chain/ may import them. eth_utils and eth_abi are pure
#: encoding helpers (checksummed addresses, ABI encoding) that the core's formats are defined by.
CHAIN_LIBRARIES = {"web3", "eth_account", "eth_keyfile", "eth_tester", "eth_typing", "hexbytes", "solcx", "eth_keys"}
#: attributes that only exist on web3.py's objects (a Web3, a contract, a provider, an account)
CHAIN_OBJECT_ATTRIBUTES = {"w3", "eth", "functions", "events", "provider", "account", "_contract_at"}
HISTORY_WRITER = "hybrid_store/ledger.py"
#: what the pure core must never import
IO_LIBRARIES = {"sqlalchemy", "fastapi", "starlette", "httpx", "requests", "web3", "psycopg", "subprocess", "socket",
                "logging", "os", "pathlib", "threading", "multiprocessing", "urllib"}  # fmt: skip


VERIFIER = "hybrid_store/verifier/"
#: what the verifier never imports, at any depth: the database, the web edge, the service, web3
VERIFIER_FORBIDDEN = ("sqlalchemy", "alembic", "fastapi", "starlette", "uvicorn", "registry_service", "migration_tools",
                      "hybrid_store.db", "hybrid_store.proofs", "hybrid_store.settings", *sorted(CHAIN_LIBRARIES))  # fmt: skip
#: what the verifier's modules import from the project at their top: the pure core, its own modules,
#: the strict JSON reader and the typed errors
VERIFIER_MAY_IMPORT = ("hybrid_store.core", "hybrid_store.verifier", "hybrid_store.strict_json", "hybrid_store.errors")
#: and besides, for type annotations only, the chain's plain values; inside a function (lazily, when a
#: verdict is asked of a node by its URL), the chain adapter
VERIFIER_TYPES_ONLY = ("hybrid_store.chain.types",)
VERIFIER_LAZY = ("hybrid_store.chain.connect",)
#: what must not be loaded once the whole package is imported (eth_utils, which the core's formats are
#: defined by, brings eth_typing and hexbytes: plain types, not the chain library)
VERIFIER_NOT_LOADED = ("sqlalchemy", "alembic", "fastapi", "starlette", "uvicorn", "web3", "eth_account", "eth_tester",
                       "solcx", "registry_service", "migration_tools", "hybrid_store.db", "hybrid_store.chain",
                       "hybrid_store.proofs", "hybrid_store.settings")  # fmt: skip


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _imported_names(node: ast.Import | ast.ImportFrom) -> list[str]:
    """``import a.b`` -> a.b; ``from a import b`` -> a.b (a module or a name in it: either may be the rule's)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    return [f"{node.module}.{a.name}" for a in node.names]


def verifier_reach_ins(tree: ast.Module) -> list[str]:
    """The verifier's imports that break its rule, each with where it is."""
    found: list[str] = []

    def visit(node: ast.AST, where: str) -> None:
        for child in ast.iter_child_nodes(node):
            context = where
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                context = "function"
            elif isinstance(child, ast.If) and ast.unparse(child.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
                context = "types" if where == "module" else where
            if isinstance(child, ast.ImportFrom) and child.level:
                continue  # relative: the package itself
            if isinstance(child, ast.Import | ast.ImportFrom):
                allowed = VERIFIER_MAY_IMPORT + (VERIFIER_TYPES_ONLY if context == "types" else ()) + (
                    VERIFIER_LAZY if context == "function" else ())  # fmt: skip
                for name in _imported_names(child):
                    wanted = [name] if isinstance(child, ast.Import) else [child.module or "", name]
                    if any(_within(n, VERIFIER_FORBIDDEN) for n in wanted) or (
                        name.split(".")[0] == "hybrid_store" and not any(_within(n, allowed) for n in wanted)
                    ):
                        found.append(f"line {child.lineno}: {name} ({context} level)")
            visit(child, context)

    visit(tree, "module")
    return found


def product_modules() -> list[tuple[str, ast.Module, str]]:
    out = []
    for package in PRODUCT:
        for path in sorted((REPO / package).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if "/db/migrations/" in rel:  # schema history: creates tables, writes no records
                continue
            text = path.read_text()
            out.append((rel, ast.parse(text), text))
    return out


def imported_roots(tree: ast.AST) -> set[str]:
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def chain_reach_ins(tree: ast.AST) -> list[str]:
    """Chain libraries imported and chain objects touched."""
    found = [f"imports {name}" for name in sorted(imported_roots(tree) & CHAIN_LIBRARIES)]
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in CHAIN_OBJECT_ATTRIBUTES:
            found.append(f"line {node.lineno}: .{node.attr}")
    return found


_RAW_HISTORY_SQL = re.compile(r"insert\s+into\s+commitments|update\s+parcels\s+set\s+head_instrument_id", re.I)


def history_writes(tree: ast.AST, text: str) -> list[str]:
    """Places that insert commitment rows or move a parcel's head."""
    found = [f"raw SQL: {m.group(0)!r}" for m in _RAW_HISTORY_SQL.finditer(text)]
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            callee = ast.unparse(node.func)
            if callee.split(".")[-1] == "Commitment":
                found.append(f"line {node.lineno}: Commitment(...) built")
            if callee.split(".")[-1] == "insert" and node.args and "Commitment" in ast.unparse(node.args[0]):
                found.append(f"line {node.lineno}: {ast.unparse(node)[:60]}")
            if any(k.arg == "head_instrument_id" for k in node.keywords):
                found.append(f"line {node.lineno}: head_instrument_id=... in {callee}")
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute) and target.attr == "head_instrument_id":
                    found.append(f"line {node.lineno}: .head_instrument_id assigned")
    return found


def test_nothing_outside_the_chain_package_touches_the_chain_library() -> None:
    offenders = {
        rel: reach
        for rel, tree, _ in product_modules()
        if not rel.startswith(CHAIN_PACKAGE) and (reach := chain_reach_ins(tree))
    }
    assert offenders == {}, "go through hybrid_store.chain (RegistryChain, chain.types, chain.keys) instead"


def test_only_the_ledger_writes_history() -> None:
    offenders = {
        rel: w for rel, tree, text in product_modules() if rel != HISTORY_WRITER and (w := history_writes(tree, text))
    }
    assert offenders == {}, "records join their parcels' histories through hybrid_store.ledger.append only"
    ledger = next((tree, text) for rel, tree, text in product_modules() if rel == HISTORY_WRITER)
    assert history_writes(*ledger), "the ledger itself writes history (or this check no longer sees it)"


def test_the_core_does_no_io() -> None:
    offenders = {
        rel: sorted(imported_roots(tree) & IO_LIBRARIES)
        for rel, tree, _ in product_modules()
        if rel.startswith("hybrid_store/core/") and imported_roots(tree) & IO_LIBRARIES
    }
    assert offenders == {}


def test_the_verifier_stands_alone() -> None:
    verifier = [(rel, tree) for rel, tree, _ in product_modules() if rel.startswith(VERIFIER)]
    assert len(verifier) >= 5, "the verifier package moved (or this check no longer finds it)"
    offenders = {rel: found for rel, tree in verifier if (found := verifier_reach_ins(tree))}
    assert offenders == {}, (
        "the verifier imports only the core, itself, strict_json and errors (see VERIFIER_MAY_IMPORT)"
    )


@pytest.mark.parametrize(
    "source",
    [
        "import sqlalchemy",
        "from sqlalchemy.orm import Session",
        "from hybrid_store.db.models import Instrument",
        "from registry_service.receipts import ReceiptSigner",
        "from hybrid_store.proofs import export_bundle",
        "from hybrid_store.chain.connect import node_at",  # at the module's top: only lazily
        "from hybrid_store.chain.client import RegistryChain",
        "def f():\n    from hybrid_store.chain.client import RegistryChain",
        "def f():\n    import web3",
        "if TYPE_CHECKING:\n    from hybrid_store.db.engine import Database",
        "from hybrid_store import settings",
    ],
)
def test_the_verifier_check_catches_a_reach_in(source: str) -> None:
    assert verifier_reach_ins(ast.parse(source))


@pytest.mark.parametrize(
    "source",
    [
        "from hybrid_store.core import bundle",
        "from hybrid_store.verifier.anchor import verify_anchor",
        "from . import anchor",
        "if TYPE_CHECKING:\n    from hybrid_store.chain.types import Receipt",
        "def f():\n    from hybrid_store.chain.connect import node_at",
    ],
)
def test_the_verifier_check_lets_the_rule_through(source: str) -> None:
    assert verifier_reach_ins(ast.parse(source)) == []


@pytest.mark.subprocess
def test_importing_the_verifier_loads_no_database_web_or_chain_code() -> None:
    """Every module of the package, imported in a fresh interpreter, loads none of what it must not
    (an import hidden behind another module would pass the source check and fail here)."""
    import subprocess
    import sys

    modules = sorted(p.stem for p in (REPO / VERIFIER).glob("*.py") if p.stem != "__init__")
    probe = (
        f"import importlib, sys\nfor m in {modules!r}: importlib.import_module('hybrid_store.verifier.' + m)\n"
        "print('\\n'.join(sorted(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True,
                          cwd=REPO)  # fmt: skip
    loaded = done.stdout.split()
    assert "hybrid_store.verifier.verdicts" in loaded and "hybrid_store.verifier.receipts" in loaded
    assert [m for m in loaded if _within(m, VERIFIER_NOT_LOADED)] == []


@pytest.mark.parametrize(
    "source",
    [
        "from web3 import Web3",
        "import eth_account.signers.local",
        "x = chain.w3.eth.block_number",
        "chain.contract.functions.batchCount().call()",
        "signer = chain.account.address",
    ],
)
def test_the_chain_check_catches_a_reach_in(source: str) -> None:
    assert chain_reach_ins(ast.parse(source))


@pytest.mark.parametrize(
    "source",
    [
        "session.add(Commitment(instrument_id=1))",
        "conn.execute(insert(table(Commitment)), rows)",
        "conn.execute(sa.insert(Commitment).values(x=1))",
        "conn.execute(update(Parcel).values(head_instrument_id=5))",
        "parcel.head_instrument_id = 7",
        "cur.execute('INSERT INTO commitments (instrument_id) VALUES (1)')",
        "cur.execute('update parcels  set head_instrument_id = 1')",
    ],
)
def test_the_history_check_catches_a_second_writer(source: str) -> None:
    assert history_writes(ast.parse(source), source)


def test_no_class_or_function_grows_past_250_lines() -> None:
    long = [
        f"{rel}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for rel, tree, _ in product_modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > 250
    ]
    assert long == [], "split it by concern"


def test_private_names_stay_in_their_module() -> None:
    """A leading underscore is a promise: no other module imports it (ruff's PLC2701 checks the
    same inside the product; this also covers the benchmarks)."""
    offenders = []
    for path in sorted((REPO / "bench").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PRODUCT:
                offenders += [f"{path.name}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    assert offenders == []


def test_the_checks_read_real_files() -> None:
    rels = {rel for rel, _, _ in product_modules()}
    assert {HISTORY_WRITER, "hybrid_store/chain/client.py", "hybrid_store/core/commitment.py"} <= rels
    assert Path(REPO / HISTORY_WRITER).exists()


@pytest.mark.subprocess
def test_the_command_line_loads_no_chain_library_until_a_command_needs_it() -> None:
    """`landreg --help` stays quick, and the hashing processes that `migrate run` and `reconcile`
    spawn (which import the command line's module again) stay small: nothing imports web3 at the
    top of ``registry_service.cli``."""
    import subprocess
    import sys

    probe = (
        "import sys, registry_service.cli.main; print(sorted(m for m in ('web3', 'eth_account') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"


#: what an offline `landreg verify` never loads: the database library, the web framework, the chain
#: library and its hashing backends, progress bars, the abstract verifier (a bundle is not one), and the
#: operators' commands (registry_service.cli.group builds them when named)
OFFLINE_VERIFY_NOT_LOADED = ("sqlalchemy", "fastapi", "starlette", "web3", "hybrid_store.db", "eth_utils",
                             "eth_account", "Crypto", "rich.progress", "hybrid_store.verifier.abstracts",
                             "hybrid_store.chain", "typer._adapters", "registry_service.cli.chain",
                             "registry_service.cli.migration", "registry_service.cli.trust")  # fmt: skip


def offline_verify(bundle: Path, *args: str, not_loaded: tuple[str, ...]) -> str:
    """``landreg verify BUNDLE ARGS`` in a fresh interpreter (no registry on the machine): its exit
    status, which of ``not_loaded`` it loaded, and whether it loaded the verifier."""
    import subprocess
    import sys
    import tempfile

    probe = (
        "import json, runpy, sys, tempfile\n"
        f"doc = json.load(open({str(bundle)!r}))['bundle']\n"
        "path = tempfile.mktemp(suffix='.json'); json.dump(doc, open(path, 'w'))\n"
        f"sys.argv = ['landreg', 'verify', path, *{list(args)!r}]\n"
        "try:\n    runpy.run_module('registry_service.cli.main', run_name='__main__')\n"
        "except SystemExit as exc:\n    code = exc.code\n"
        f"print(code, sorted(m for m in {not_loaded!r} if m in sys.modules), "
        "'hybrid_store.verifier.verdicts' in sys.modules)"
    )
    with tempfile.TemporaryDirectory() as home:
        env = {"PATH": "/usr/bin:/bin", "LANDREG_HOME": home, "PYTHONPATH": str(REPO)}
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env=env,
                              cwd=REPO)  # fmt: skip
    return done.stdout.strip().splitlines()[-1] + "\n" + done.stdout + done.stderr


@pytest.mark.subprocess
def test_landreg_verify_loads_only_the_verifier() -> None:
    """An auditor's `landreg verify` (offline, no trust root, no registry on the machine) imports the
    verifier and neither the database library, the web framework nor the chain library; the chain
    adapter comes only with --rpc (docs/benchmarks.md has the start-up times)."""
    said = offline_verify(
        REPO / "tests" / "vectors" / "bundle" / "valid-deed.json", not_loaded=OFFLINE_VERIFY_NOT_LOADED
    )
    assert said.startswith("3 [] True\n"), said


@pytest.mark.subprocess
def test_landreg_verify_against_a_trust_root_loads_no_validation_library(sqlite_db, chain, tmp_path) -> None:
    """With the trust root given, nothing of pydantic either: the settings are not read, and the
    options are plain values (registry_service.cli.plain_values), issue 24's start-up target."""
    from hybrid_store.deployment import attach
    from tests.conftest import trust_of

    attach(sqlite_db, chain)
    root = tmp_path / "root.json"
    root.write_text(json.dumps(trust_of(sqlite_db).document))
    said = offline_verify(REPO / "tests" / "vectors" / "bundle-v2" / "valid-deed.json", "--trust", str(root),
                          not_loaded=(*OFFLINE_VERIFY_NOT_LOADED, "pydantic", "pydantic_settings"))  # fmt: skip
    assert said.startswith("3 [] True\n"), said


@pytest.mark.subprocess
def test_landreg_help_loads_no_command_s_libraries() -> None:
    """`landreg --help` builds every command's options and nothing else: no database, settings,
    chain or hashing library, and no progress bars (issue 24: it took 17x a bare Python start)."""
    import subprocess
    import sys

    probe = (
        "import runpy, sys\nsys.argv = ['landreg', '--help']\n"
        "try:\n    runpy.run_module('registry_service.cli.main', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('sqlalchemy', 'pydantic_settings', 'hybrid_store.settings', 'eth_utils', 'Crypto', "
        "'web3', 'rich.progress', 'hybrid_store.core.trust', 'migration_tools') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=REPO,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})  # fmt: skip
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout + done.stderr


def test_a_database_refusal_is_told_in_words_though_the_command_line_loads_the_library_late() -> None:
    import typer
    from sqlalchemy.exc import DBAPIError

    from registry_service.cli.common import friendly

    class Refused(Exception):
        sqlstate = "42501"  # insufficient_privilege

    @friendly
    def command() -> None:
        raise DBAPIError("INSERT INTO api_keys ...", {}, Refused("permission denied for table api_keys"))

    with pytest.raises(typer.Exit) as exc:
        command()
    assert exc.value.exit_code == 1

    @friendly
    def broken() -> None:
        raise DBAPIError("SELECT", {}, Exception("syntax error"))

    with pytest.raises(DBAPIError):  # not a refusal: not turned into one
        broken()


def lazy_exports(tree: ast.Module) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """A package's lazily imported names (its ``_WHERE``: name -> submodule), the names it imports
    for the type checker (name -> submodule), and its ``__all__``."""
    where: dict[str, str] = {}
    typed: dict[str, str] = {}
    exported: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id == "_WHERE":
                where = ast.literal_eval(node.value)
            elif node.targets[0].id == "__all__" and isinstance(node.value, ast.List):
                exported = ast.literal_eval(node.value)
        elif isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for imp in node.body:
                if isinstance(imp, ast.ImportFrom) and imp.module:
                    typed.update({a.name: imp.module.rsplit(".", 1)[-1] for a in imp.names})
    return where, typed, exported


def test_lazily_imported_names_are_visible_to_the_type_checker() -> None:
    """A module ``__getattr__`` alone makes mypy see every name it serves as ``Any``: the package
    imports the same names, from the same modules, under ``TYPE_CHECKING`` (and lists them)."""
    where, typed, exported = lazy_exports(ast.parse((REPO / "hybrid_store/anchoring/__init__.py").read_text()))
    assert "Anchorer" in where and where == typed
    assert sorted(exported) == sorted(where)
