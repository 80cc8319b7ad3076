"""Fault injection for the crash tests: ``crashpoint(name)`` kills the process with SIGKILL when
``LANDREG_CRASHPOINT`` names it (``name``: the first time; ``name@n``: the n-th time). A real
kill, at an exact step, with no cleanup of any kind.

This is a test seam, read once at import; in normal operation the variable is unset and every
crashpoint is a no-op.
"""

from __future__ import annotations

import os
import signal

_NAME, _, _NTH = os.environ.get("LANDREG_CRASHPOINT", "").partition("@")
_LEFT = int(_NTH or 1)


def crashpoint(name: str) -> None:
    global _LEFT
    if _NAME and name == _NAME:
        _LEFT -= 1
        if _LEFT <= 0:
            os.kill(os.getpid(), signal.SIGKILL)
