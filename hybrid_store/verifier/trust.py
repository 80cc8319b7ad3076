"""A trust root as a verifier takes it: from a file (its pinned copy, obtained out of band) or an
http(s) URL, bounded, parsed strictly and checked to be self-signed; and the versions published
after it, each checked against the one before. The registry's database is never consulted: it is
what the auditor does not trust. (Building and publishing a trust root is ``hybrid_store.trust``.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hybrid_store import strict_json
from hybrid_store.core import trust as core

#: a trust root is a few KB
MAX_TRUST_BYTES = 1_000_000


def read_file(path: Path) -> bytes:
    """A trust root file's bytes, refused unread past ``MAX_TRUST_BYTES``."""
    try:
        return strict_json.read_file(path, max_bytes=MAX_TRUST_BYTES)
    except strict_json.InvalidJSON as exc:
        raise core.TrustRootError(f"{path}: not a trust root: {exc}") from None


def read_json(raw: bytes, where: str) -> Any:
    try:
        return strict_json.loads(raw, max_bytes=MAX_TRUST_BYTES)
    except strict_json.InvalidJSON as exc:
        raise core.TrustRootError(f"{where}: not a trust root: {exc}") from None


def _fetch(url: str) -> bytes:
    import httpx

    try:
        response = httpx.get(url, timeout=10, follow_redirects=False)
    except httpx.HTTPError as exc:
        raise core.TrustRootError(f"cannot fetch {url}: {exc}") from None
    if response.status_code != 200:
        raise core.TrustRootError(f"cannot fetch {url}: HTTP {response.status_code}")
    return response.content


def load(location: str | Path) -> core.TrustRoot:
    """A trust root from a file or an http(s) URL, parsed and checked to be self-signed."""
    text = str(location)
    if text.startswith(("http://", "https://")):
        raw = _fetch(text)
    else:
        try:
            raw = read_file(Path(text))
        except OSError as exc:
            raise core.TrustRootError(f"cannot read trust root {text}: {exc.strerror}") from None
    root = core.parse(read_json(raw, text))
    core.check_self_signed(root)
    return root


def load_updates(pinned: core.TrustRoot, base_url: str) -> core.TrustRoot:
    """Follow published versions after ``pinned`` at ``base_url`` (…/N.json), each checked against the
    one before it; stops at the first version that is not published."""
    current = pinned
    while True:
        url = f"{base_url.rstrip('/')}/{current.version + 1}.json"
        try:
            raw = _fetch(url)
        except core.TrustRootError:
            return current
        update = core.parse(read_json(raw, url))
        core.check_update(current, update)
        current = update
