"""Small file helpers for local state under LANDREG_HOME."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _staged(path: Path, data: bytes, mode: int) -> str:
    """``data`` in a synced temporary file beside ``path``, ready to be put in place atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.write(fd, data)
        os.fchmod(fd, mode)
        os.fsync(fd)
    finally:
        os.close(fd)
    return tmp


def create_once(path: Path, data: bytes, mode: int = 0o600) -> bytes:
    """Create ``path`` holding ``data`` unless it exists, and return the file's content.

    Safe when several processes start at once: the content is written to a temporary file first
    and linked into place atomically, so nobody ever reads a half-written file, and exactly one
    writer wins."""
    if not path.exists():
        tmp = _staged(path, data, mode)
        try:
            os.link(tmp, path)  # atomic; fails if another process got there first
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    return path.read_bytes()


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically and durably: a reader sees the old file or the new
    one, never half of either, and a crash after return keeps the new one."""
    os.replace(_staged(path, data, mode), path)
