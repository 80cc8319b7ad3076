"""The managed local anvil node: ``landreg chain start|stop|status``.

The binary comes from npm (``@foundry-rs/anvil``). Its state lives in ``LANDREG_HOME/chain``:
``--state`` loads it at start and dumps it at a clean stop (SIGTERM), and ``--state-interval``
dumps it every few seconds, so a crash (SIGKILL, power loss) loses at most that interval. Blocks,
transactions and receipts are part of the dump, so every receipt survives a restart.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from hybrid_store.core.hashing import to_hex
from hybrid_store.errors import ChainUnavailable, ConfigurationError
from hybrid_store.settings import Settings

log = logging.getLogger(__name__)

ANVIL_CHAIN_ID = 31337
HARDFORK = "prague"  # pinned so gas figures do not move with anvil's default
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
_NPM_BINARY = Path("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")


@dataclass(frozen=True)
class NodeStatus:
    running: bool
    pid: int | None
    url: str
    block_number: int | None = None
    chain_id: int | None = None
    genesis_hash: str | None = None


class ManagedAnvil:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.dir = settings.chain_dir
        self.state_file = self.dir / "anvil-state.json"
        self.pid_file = self.dir / "anvil.pid"
        self.log_file = self.dir / "anvil.log"
        self.attached_file = self.dir / "attached.json"  # a node landreg did not start, taken with --attach
        c = settings.chain
        self.url = f"http://{c.anvil_host}:{c.anvil_port}"

    def binary(self) -> Path:
        configured = self.settings.chain.anvil_binary
        if configured:
            return configured
        package_root = Path(__file__).resolve().parents[2]
        for base in (Path.cwd(), package_root):
            if (base / _NPM_BINARY).is_file():
                return base / _NPM_BINARY
        found = shutil.which("anvil")
        if found:
            return Path(found)
        raise ConfigurationError("no anvil binary: run `npm ci` in the repository or set LANDREG_CHAIN__ANVIL_BINARY")

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        # a recycled pid is not our node: check the command line where /proc exists
        cmdline = Path(f"/proc/{pid}/cmdline")
        if cmdline.exists() and b"anvil" not in cmdline.read_bytes():
            return None
        return pid

    def start(self, *, attach: bool = False) -> NodeStatus:
        """Start the node (or find it running) and wait until it answers.

        A node this registry did not start that already answers on the port is refused (its
        ``pid`` is None in the status): landreg would otherwise deploy onto it and anchor to it
        unnoticed. ``attach`` takes it, and remembers it (``attached.json``) so later commands take
        it too while its genesis stays the same; the caller checks that genesis against the
        registry's chain first (``refuse_foreign_genesis``)."""
        pid = self.pid()
        proc = None
        if pid is None and (foreign := self.status()).block_number is not None:
            if attach or self._attached_to(foreign):
                return foreign
            raise ForeignNode(
                f"a node landreg did not start already answers on {self.url} (chain id {foreign.chain_id}, "
                f"block {foreign.block_number}); nothing was deployed or anchored there. Stop that node, or set "
                "LANDREG_CHAIN__ANVIL_PORT to a free port, or use it on purpose with `landreg chain start --attach` "
                "(refused if its genesis is not this registry's chain)"
            )
        if pid is None:
            self.settings.ensure_home()
            drop_restart_genesis_blocks(self.state_file)
            c = self.settings.chain
            cmd = [
                str(self.binary()),
                "--host", c.anvil_host,
                "--port", str(c.anvil_port),
                "--chain-id", str(ANVIL_CHAIN_ID),
                "--hardfork", HARDFORK,
                "--state", str(self.state_file),
                "--state-interval", str(c.anvil_state_interval_s),
            ]  # fmt: skip
            with open(self.log_file, "ab") as out:
                proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            # the node outlives this process by design; Popen must not warn about (or wait for) it
            proc.returncode = 0
            self.pid_file.write_text(str(proc.pid))
            pid = proc.pid
            log.info("started anvil (pid %d) on %s with state %s", pid, self.url, self.state_file)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            status = self.status()
            if status.block_number is not None:
                return status
            if proc is not None and not _alive(proc.pid):
                break  # it exited: the log says why (a port in use, a corrupt state file, ...)
            time.sleep(0.1)
        tail = self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
        raise ChainUnavailable(f"anvil did not come up on {self.url}; its log ends:\n{tail}")

    def remember_attached(self, status: NodeStatus) -> None:
        """Take the foreign node of ``status`` from now on (``start`` without ``attach``)."""
        self.settings.ensure_home()
        self.attached_file.write_text(json.dumps({"url": status.url, "genesis": status.genesis_hash}))

    def _attached_to(self, status: NodeStatus) -> bool:
        try:
            known = json.loads(self.attached_file.read_text())
        except (OSError, ValueError):
            return False
        return bool(known.get("url") == status.url and known.get("genesis") == status.genesis_hash)

    def stop(self) -> bool:
        """Stop cleanly (SIGTERM: anvil dumps its state). Returns whether a node was running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        if _alive(pid):
            log.warning("anvil (pid %d) ignored SIGTERM for %.0f s; killing it", pid, STOP_TIMEOUT_S)
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True

    def status(self) -> NodeStatus:
        from hybrid_store.chain.connect import http_web3

        pid = self.pid()
        try:
            # one try, the configured wait: a stopped node is reported as stuck, not waited out
            w3 = http_web3(self.url, self.settings.chain.rpc_timeout_s, attempts=1)
            return NodeStatus(pid is not None, pid, self.url, int(w3.eth.block_number), int(w3.eth.chain_id),
                              to_hex(bytes(w3.eth.get_block(0)["hash"])))  # fmt: skip
        except Exception:
            return NodeStatus(pid is not None, pid, self.url)


def refuse_foreign_genesis(status: NodeStatus, pinned_genesis: str | None) -> None:
    """Refuse a node that is not this registry's chain: its genesis is not the one the registry's
    deployments were made on (``pinned_genesis``; None for a registry with no deployment yet)."""
    if pinned_genesis is not None and status.genesis_hash != pinned_genesis:
        raise ForeignNode(
            f"the node on {status.url} is another chain (genesis {status.genesis_hash}; this registry's chain has "
            f"genesis {pinned_genesis}): landreg neither attaches to it nor deploys onto it. Stop it and run "
            "`landreg chain start` to start the registry's own node"
        )


class ForeignNode(ConfigurationError):
    """A node this registry did not start answers on its port, or one that is another chain."""


def drop_restart_genesis_blocks(state_file: Path) -> int:
    """Keep only the chain's first genesis block in a state dump; returns how many it dropped.

    anvil (1.7) makes a fresh genesis block at every start, and a dump taken after a restart holds
    both it and the loaded one; which of them the next start serves as block 0 is then arbitrary, so
    the chain's genesis hash (part of its identity for reconciliation) would change at random. The
    original is the oldest: later ones are made at later starts.
    """
    if not state_file.exists():
        return 0
    state = json.loads(state_file.read_text())
    blocks = state.get("blocks") or []
    genesis = [b for b in blocks if int(b["header"]["number"], 16) == 0]
    if len(genesis) <= 1:
        return 0
    first = min(genesis, key=lambda b: int(b["header"]["timestamp"], 16))
    state["blocks"] = [b for b in blocks if b is first or int(b["header"]["number"], 16) != 0]
    tmp = state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, state_file)
    return len(genesis) - 1


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
