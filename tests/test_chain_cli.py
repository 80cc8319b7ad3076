"""`landreg chain` key lifecycle on a real anvil node: three distinct roles, pause and unpause,
rotating the registrar key, and the audit log of each."""

from __future__ import annotations

import pytest

from tests.processes import landreg

pytestmark = [pytest.mark.anvil, pytest.mark.slow]

#: anvil's public development account 3 (development only): the registrar key rotated to
NEW_REGISTRAR_KEY = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6"
NEW_REGISTRAR = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"


def test_roles_pause_and_registrar_rotation(landreg_env):
    env = landreg_env
    try:
        started = landreg(env, "chain", "start")
        assert started.returncode == 0, started.stderr
        roles = landreg(env, "chain", "roles").stdout
        holders = {line.split(":")[0]: line.split()[1] for line in roles.splitlines() if "holds the role" in line}
        assert set(holders) == {"admin", "registrar", "pauser"} and len(set(holders.values())) == 3, roles
        assert "paused: no" in roles

        assert landreg(env, "legacy", "import", "synthetic", "--instruments", "30").returncode == 0
        paused = landreg(env, "chain", "pause")
        assert paused.returncode == 0, paused.stderr
        assert "paused: yes" in landreg(env, "chain", "roles").stdout
        assert landreg(env, "chain", "unpause").returncode == 0

        rotated = landreg(env, "chain", "rotate-registrar", NEW_REGISTRAR)
        assert rotated.returncode == 0, rotated.stderr
        assert (
            "registrar: 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266 (does NOT hold the role)"
            in landreg(env, "chain", "roles").stdout
        )
        # the old key anchors nothing more; the new one does
        old = landreg(env, "migrate", "plan", "all")
        assert old.returncode == 0, old.stderr
        refused = landreg(env, "migrate", "run", "all")
        assert refused.returncode != 0 and "AccessControlUnauthorizedAccount" in refused.stderr + refused.stdout
        new_env = {**env, "LANDREG_CHAIN__REGISTRAR_KEY": NEW_REGISTRAR_KEY}
        ran = landreg(new_env, "migrate", "resume", "all")
        assert ran.returncode == 0, ran.stderr + ran.stdout

        keys = landreg(env, "signing-keys", "list").stdout
        assert "trust-root" in keys and "active" in keys
        import sqlite3
        from pathlib import Path

        with sqlite3.connect(Path(env["LANDREG_HOME"]) / "landreg.db") as conn:
            actions = [row[0] for row in conn.execute("SELECT action FROM audit_log ORDER BY id")]
        assert [a for a in actions if a.startswith("chain.")] == [
            "chain.pause",
            "chain.unpause",
            "chain.rotate-registrar",
        ]
    finally:
        landreg(env, "chain", "stop")
