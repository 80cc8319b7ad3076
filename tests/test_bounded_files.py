"""Documents landreg parses whole, from files (layouts, trust roots, bundles, receipts), are bounded
before they are parsed and refused in one line: a layout nested 100,000 levels deep printed a
RecursionError traceback, and a dotted key of 50,000 parts kept tomllib busy for over a minute;
a file of gigabytes is refused having read one byte past the bound."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hybrid_store import strict_json
from hybrid_store.core.trust import TrustRootError
from migration_tools.legacy.layout import MAX_LAYOUT_BYTES, LayoutError, load_layout

SHIPPED = Path(__file__).parents[1] / "migration_tools" / "legacy" / "layouts"
GIGABYTES = 8 * 2**30

# what each hostile layout is, and the words the refusal gives
HOSTILE = {
    "deep-array": ("name = " + "[" * 100_000, "nested deeper than 32 levels"),
    "deep-inline-table": ("name = " + "{ a = " * 20_000, "nested deeper than 32 levels"),
    "long-dotted-key": ("k" + ".k" * 50_000 + " = 1", "dotted key of more than 32 parts"),
    # a multi-line string closed by four quotes ends one quote later than a naive scan thinks
    "quote-run": ('name = ["""x"""", ' + "[" * 40 + "]" * 40 + ', "y"]', "nested deeper than 32 levels"),
}


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ('a = ["' + "[" * 1000 + '"]', True),  # brackets in strings and comments do not nest
        ("a = ['" + "{" * 1000 + "']", True),
        ('a = """' + "[" * 1000 + '\n"""', True),
        ("# " + "[" * 1000 + "\na = 1", True),
        ("[a.b.c]\nx = 1.5\n[[d]]\ny = [1, [2, [3]]]\nz = { p.q = 1 }", True),
        ('a = "\\"[[[["', True),  # an escaped quote does not end the string
        ("a = " + "[" * 32 + "]" * 32, True),
        ("a = " + "[" * 33 + "]" * 33, False),
        ("k" + ".k" * 31 + " = 1", True),  # 32 parts
        ("k" + ".k" * 32 + " = 1", False),
        *[(text, False) for text, _ in HOSTILE.values()],
    ],
)
def test_toml_nesting_and_dotted_keys_are_bounded_before_parsing(text, ok):
    if ok:
        strict_json.check_toml_bounds(text)
    else:
        with pytest.raises(strict_json.InvalidJSON):
            strict_json.check_toml_bounds(text)


def test_the_shipped_layouts_are_within_the_bounds():
    for path in SHIPPED.glob("*.toml"):
        strict_json.check_toml_bounds(path.read_text())
        assert path.stat().st_size < MAX_LAYOUT_BYTES // 50


@pytest.mark.parametrize("kind", HOSTILE)
def test_a_hostile_layout_is_refused_in_one_line_and_at_once(tmp_path, kind):
    text, words = HOSTILE[kind]
    path = tmp_path / f"{kind}.toml"
    path.write_text(text)
    began = time.monotonic()
    with pytest.raises(LayoutError) as caught:
        load_layout(path)
    assert time.monotonic() - began < 10  # generous: the machine is shared
    assert words in str(caught.value) and "\n" not in str(caught.value)


def sparse(path: Path, size: int = GIGABYTES) -> Path:
    """A file of ``size`` bytes that takes no disk space (reading it all would take minutes)."""
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def test_a_huge_file_is_refused_having_read_one_byte_past_the_bound(tmp_path):
    from hybrid_store.verifier.trust import load
    from hybrid_store.verifier.verdicts import verify_file

    huge = sparse(tmp_path / "huge")
    began = time.monotonic()
    with pytest.raises(strict_json.InvalidJSON, match="larger than 1000 bytes"):
        strict_json.read_file(huge, max_bytes=1000)
    with pytest.raises(LayoutError, match="larger than 256000 bytes"):
        load_layout(sparse(tmp_path / "huge.toml"))
    with pytest.raises(TrustRootError, match="larger than 1000000 bytes"):
        load(huge)
    verdict = verify_file(huge)
    assert not verdict.valid and "larger than 1000000 bytes" in verdict.reason
    assert time.monotonic() - began < 10


def test_a_layout_that_is_not_utf8_is_refused_in_one_line(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'name = "K\xf8benhavn"\n')
    with pytest.raises(LayoutError, match="not UTF-8 text"):
        load_layout(path)


@pytest.mark.slow
@pytest.mark.subprocess
def test_the_cli_refuses_hostile_files_in_one_line(tmp_path):
    from tests.conftest import landreg_environment
    from tests.processes import landreg

    env = {**landreg_environment(tmp_path), "LANDREG_JURISDICTION": "nyc", "COUNTY_DB": "sqlite://"}
    deep = tmp_path / "deep.toml"
    deep.write_text(HOSTILE["deep-array"][0])
    huge = sparse(tmp_path / "huge.json")
    runs = {
        "attach": landreg(env, "legacy", "attach", "--layout", str(deep), "--url-env", "COUNTY_DB"),
        "verify": landreg(env, "verify", str(huge)),
        "receipt": landreg(env, "receipt", "verify", str(huge), "--bundle", str(huge)),
        "trust": landreg(env, "trust", "show", str(huge)),
    }
    for name, done in runs.items():
        out = done.stdout + done.stderr
        assert done.returncode == 1 and "Traceback" not in out, (name, out)
    assert "nested deeper than 32 levels" in runs["attach"].stderr
    for name in ("verify", "receipt", "trust"):
        assert "larger than 1000000 bytes" in runs[name].stdout + runs[name].stderr, name
