"""The fee schedule a registry uses: the file its settings name (``LANDREG_SERVICE__FEE_SCHEDULE``,
so a county changes its fees without a release), else the one shipped for its jurisdiction
(``jurisdictions/fees/<name>.toml``), else none (a jurisdiction without one computes no fees).

The thin loader around ``hybrid_store.fees``: it reads and parses TOML, nothing more. A file is read
again when it changes on disk (its size and modification time), so a replaced schedule takes effect
without a restart; statements already stored never change with it.
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

from hybrid_store.errors import ConfigurationError
from hybrid_store.fees import Schedule, parse_schedule
from hybrid_store.settings import Settings


@lru_cache(maxsize=8)
def shipped(jurisdiction: str) -> str | None:
    """The text of the schedule shipped for ``jurisdiction``, or None (read once per process: it is
    part of the installed package, and every filing and quote asks for it)."""
    resource = files("hybrid_store").joinpath(f"jurisdictions/fees/{jurisdiction}.toml")
    return resource.read_text(encoding="utf-8") if resource.is_file() else None


def load(settings: Settings) -> Schedule | None:
    """The registry's schedule (None: it has none); ``ConfigurationError`` for a file that is
    missing, not TOML, of another jurisdiction, or breaks a rule (naming the entry)."""
    path = settings.service.fee_schedule
    if path is None:
        text = shipped(settings.jurisdiction)
        return None if text is None else _parsed(text, f"(shipped) {settings.jurisdiction}.toml", settings.jurisdiction)
    try:
        stat = path.stat()
    except OSError as exc:
        raise ConfigurationError(f"fee schedule {path}: cannot be read ({exc.strerror}): check "
                                 "LANDREG_SERVICE__FEE_SCHEDULE") from None  # fmt: skip
    return _from_file(path, stat.st_mtime_ns, stat.st_size, settings.jurisdiction)


@lru_cache(maxsize=8)
def _from_file(path: Path, _mtime: int, _size: int, jurisdiction: str) -> Schedule:
    return _parsed(path.read_text(encoding="utf-8"), str(path), jurisdiction)


@lru_cache(maxsize=8)
def _parsed(text: str, source: str, jurisdiction: str) -> Schedule:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"fee schedule {source}: not valid TOML ({exc})") from None
    schedule = parse_schedule(data, source)
    if schedule.jurisdiction != jurisdiction:
        raise ConfigurationError(f"fee schedule {source} is {schedule.jurisdiction}'s, and this registry is "
                                 f"{jurisdiction}'s: point LANDREG_SERVICE__FEE_SCHEDULE at a schedule of its own")  # fmt: skip
    return schedule
