"""Building a ``RegistryChain`` for the configured backend."""

from __future__ import annotations

from web3 import Web3
from web3.providers.rpc import HTTPProvider

from hybrid_store.chain.client import RegistryChain, account_from_key
from hybrid_store.settings import Settings

RPC_TIMEOUT_S = 30


def http_web3(url: str) -> Web3:
    return Web3(HTTPProvider(url, request_kwargs={"timeout": RPC_TIMEOUT_S}))


def eth_tester_chain(*, poll_interval_s: float = 0.0) -> RegistryChain:
    """A fresh in-process chain (py-evm); its first funded test account is the registrar."""
    from web3 import EthereumTesterProvider

    provider = EthereumTesterProvider()
    key = provider.ethereum_tester.backend.account_keys[0]
    return RegistryChain(
        Web3(provider),
        account_from_key(key.to_hex()),
        poll_interval_s=poll_interval_s,
        description="the in-process eth-tester chain",
    )


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
    account = None if read_only else account_from_key(settings.registrar_key_hex())
    what = "the managed anvil node" if c.backend == "anvil" else "the JSON-RPC node"
    return RegistryChain(
        http_web3(url),
        account,
        c.contract_address,
        poll_interval_s=c.poll_interval_s,
        receipt_timeout_s=c.receipt_timeout_s,
        description=f"{what} at {url}",
    )
