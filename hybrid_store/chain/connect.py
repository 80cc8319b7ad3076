"""Building a ``RegistryChain`` for the configured backend."""

from __future__ import annotations

import requests
from web3 import Web3
from web3.providers.rpc import HTTPProvider
from web3.providers.rpc.utils import ExceptionRetryConfiguration

from hybrid_store.chain import keys
from hybrid_store.chain.client import RegistryChain, account_from_key
from hybrid_store.errors import ChainUnavailable
from hybrid_store.settings import Settings

#: a client that is not handed settings (a verifier's ``node_at``, the managed node's status)
RPC_TIMEOUT_S = 20.0
RETRY_BACKOFF_S = 0.25  # between tries of one call: a reset connection, a proxy's 502 that a second try may clear


class RpcProvider(HTTPProvider):
    """HTTP JSON-RPC whose transport failures (refused, reset, timed out, a proxy's 5xx) raise
    ``ChainUnavailable``: an unreachable node is never mistaken for a node that answered.

    web3 retries a failed call itself (five tries of each, each with its full timeout, by default:
    a stopped node took minutes to give up); here the tries are ``attempts``, and a call that timed
    out is not tried again, so a hung node costs one timeout per call."""

    def __init__(self, url: str, timeout_s: float, attempts: int):
        retry = None
        if attempts > 1:
            retry = ExceptionRetryConfiguration(errors=(requests.ConnectionError, requests.HTTPError),
                                                retries=attempts, backoff_factor=RETRY_BACKOFF_S)  # fmt: skip
        super().__init__(url, request_kwargs={"timeout": timeout_s}, exception_retry_configuration=retry)
        self.timeout_s = timeout_s

    def make_request(self, method, params):
        try:
            return super().make_request(method, params)
        except requests.Timeout:
            raise ChainUnavailable(f"the node at {_shown(self.endpoint_uri)} did not answer {method} within "
                                   f"{self.timeout_s:g} s (LANDREG_CHAIN__RPC_TIMEOUT_S)") from None  # fmt: skip
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else "an error"
            raise ChainUnavailable(f"the node at {_shown(self.endpoint_uri)} answered {method} with HTTP {status} "
                                   "instead of a result") from None  # fmt: skip
        except (requests.RequestException, OSError) as exc:
            raise ChainUnavailable(f"the node at {_shown(self.endpoint_uri)} did not answer {method}: "
                                   f"{exc.__class__.__name__}") from None  # fmt: skip


def _shown(url: object) -> str:
    """A node URL without its path and query, where hosted providers put their API keys."""
    from urllib.parse import urlsplit

    parts = urlsplit(str(url))
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def http_web3(url: str, timeout_s: float = RPC_TIMEOUT_S, attempts: int = 2) -> Web3:
    return Web3(RpcProvider(url, timeout_s, attempts))


def node_at(url: str) -> RegistryChain:
    """A read-only connection to the node at ``url``, no contract attached (a verifier's)."""
    return RegistryChain(http_web3(url), description=f"the node at {_shown(url)}")


def eth_tester_chain(*, poll_interval_s: float = 0.0) -> RegistryChain:
    """A fresh in-process chain (py-evm); its first funded test account is the registrar."""
    from web3 import EthereumTesterProvider

    provider = EthereumTesterProvider()
    tester = provider.ethereum_tester
    if tester is None:  # pragma: no cover - the provider always builds one
        raise RuntimeError("EthereumTesterProvider built no tester")
    keys = tester.backend.account_keys
    return RegistryChain(
        Web3(provider),
        account_from_key(keys[0].to_hex()),
        poll_interval_s=poll_interval_s,
        description="the in-process eth-tester chain",
        estimate_gas=False,
        role_addresses={"admin": account_from_key(keys[1].to_hex()).address,
                        "pauser": account_from_key(keys[2].to_hex()).address},
    )  # fmt: skip


def eth_tester_role_key(chain: RegistryChain, role: str) -> str:
    """The in-process chain's test key for ``role`` (registrar 0, admin 1, pauser 2). Tests only."""
    keys = chain.w3.provider.ethereum_tester.backend.account_keys  # type: ignore[attr-defined]
    return str(keys[{"registrar": 0, "admin": 1, "pauser": 2}[role]].to_hex())


def rpc_url(settings: Settings) -> str:
    c = settings.chain
    if c.backend == "rpc":
        assert c.rpc_url is not None  # checked by ChainSettings
        return c.rpc_url
    return f"http://{c.anvil_host}:{c.anvil_port}"


def open_chain(settings: Settings, *, read_only: bool = False) -> RegistryChain:
    """The configured chain with the registrar key (unless ``read_only``); no contract attached yet."""
    c = settings.chain
    if c.backend == "eth-tester":
        return eth_tester_chain(poll_interval_s=c.poll_interval_s)
    url = rpc_url(settings)
    account = None if read_only else account_from_key(keys.registrar_key_hex(settings))
    what = "the managed anvil node" if c.backend == "anvil" else "the JSON-RPC node"
    roles = {r: a for r in ("admin", "pauser") if (a := keys.role_address(settings, r))}
    return RegistryChain(
        http_web3(url, c.rpc_timeout_s, c.rpc_attempts),
        account,
        c.contract_address,
        poll_interval_s=c.poll_interval_s,
        receipt_timeout_s=c.receipt_timeout_s,
        description=f"{what} at {_shown(url)}",
        role_addresses=roles,
    )


def role_signer(settings: Settings, chain: RegistryChain, role: str) -> RegistryChain:
    """``chain`` signing with the key of ``role`` (admin or pauser), for `landreg chain` commands."""
    from hybrid_store.errors import ConfigurationError

    if settings.chain.backend == "eth-tester":
        key = eth_tester_role_key(chain, role)
    else:
        key = keys.role_key_hex(settings, role) or ""
    if not key:
        var = f"LANDREG_CHAIN__{role.upper()}"
        raise ConfigurationError(f"no {role} key: set {var}_KEYSTORE (+ _PASSWORD) or {var}_KEY for this command")
    return chain.with_signer(account_from_key(key), f"{chain.description} as {role}")
