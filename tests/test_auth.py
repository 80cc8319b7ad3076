"""Failed-authentication limits as an attacker meets them: guessing is slowed per address and per
address and key id, a known key id never locks its holder out, and the good-key cache stays bounded."""

from __future__ import annotations

import secrets

import pytest
from fastapi.testclient import TestClient

from hybrid_store.db.engine import Database
from registry_service.auth import KEY_PREFIX, Actor, FailureLimiter, KeyVerifier, Role, Unauthenticated, create_key
from tests.test_api import make_service

ADMIN = Actor("test-suite", Role.ADMIN)
PROXY = "10.0.0.1"  # the service believes X-Forwarded-For from 10.0.0.0/8, as behind a real proxy


@pytest.fixture
def behind_proxy(tmp_path, db, chain):
    """The service behind a trusted proxy, so each request can come from an address of its own."""
    service = make_service(tmp_path, db, chain, trusted_proxies=["10.0.0.0/8"], auth_failures_global=100_000)
    with TestClient(service.client.app, client=(PROXY, 40000)) as client:
        service.client = client
        yield service


def _get(svc, key: str, address: str) -> int:
    headers = {"Authorization": f"Bearer {key}", "X-Forwarded-For": address}
    return svc.client.get("/api/v1/status", headers=headers).status_code


def _key_id(key: str) -> str:
    return key.split("_")[1]


def _wrong_secret(key: str) -> str:
    return f"{KEY_PREFIX}_{_key_id(key)}_{secrets.token_urlsafe(32)}"


def test_guessing_a_known_key_id_from_many_addresses_does_not_lock_out_its_holder(behind_proxy):
    svc = behind_proxy
    clerk = svc.keys["clerk"]
    codes = [_get(svc, _wrong_secret(clerk), f"203.0.113.{n // 2 + 1}") for n in range(120)]  # 60 addresses
    assert _get(svc, clerk, "198.51.100.77") == 200  # the genuine clerk, from an address that never failed
    assert codes == [401] * 120  # two tries an address is no reason to slow anyone


def test_one_address_guessing_one_key_id_is_slowed_and_others_are_not(behind_proxy):
    svc = behind_proxy
    clerk, attacker = svc.keys["clerk"], "203.0.113.50"
    codes = [_get(svc, _wrong_secret(clerk), attacker) for _ in range(11)]
    assert codes == [401] * 10 + [429]  # auth_failures_per_address_and_key
    # that address may still try other key ids until its own allowance (20) is spent
    others = [_get(svc, _wrong_secret(svc.keys["auditor"]), attacker) for _ in range(11)]
    assert others == [401] * 10 + [429]
    assert [_get(svc, f"{KEY_PREFIX}_{n:010x}_{'x' * 43}", attacker) for n in range(2)] == [429, 429]
    assert _get(svc, clerk, attacker) == 429  # an address that used up its failures waits, whatever it sends
    assert _get(svc, clerk, "198.51.100.77") == 200


def test_past_the_global_ceiling_failures_slow_everyone_but_a_right_key_gets_in(tmp_path, db, chain):
    svc = make_service(tmp_path, db, chain, trusted_proxies=["10.0.0.0/8"], auth_failures_global=60)
    with TestClient(svc.client.app, client=(PROXY, 40000)) as client:
        svc.client = client
        clerk = svc.keys["clerk"]
        assert [_get(svc, _wrong_secret(clerk), f"203.0.113.{n}") for n in range(1, 61)] == [401] * 60
        # under attack, a fresh address may fail 20 // 4 = 5 times instead of 20 ...
        fresh = [_get(svc, f"{KEY_PREFIX}_{n:010x}_{'x' * 43}", "198.51.100.9") for n in range(6)]
        assert fresh == [401] * 5 + [429]
        # ... and the genuine holder is let in, from a clean address and from one that mistyped once
        assert _get(svc, clerk, "198.51.100.77") == 200
        assert _get(svc, _wrong_secret(clerk), "198.51.100.78") == 401
        assert _get(svc, clerk, "198.51.100.78") == 200


def test_the_good_key_cache_never_outgrows_its_bound(tmp_path, db: Database):
    bound = 3
    verifier = KeyVerifier(db, cache_s=60, max_cached=bound,
                           limiter=FailureLimiter(per_address=10**6, per_address_and_key=10**6, global_ceiling=10**6))  # fmt: skip
    good = [create_key(db, role=Role.CLERK, name=f"clerk {n}", by=ADMIN)[0] for n in range(8)]
    sizes = []
    for n in range(200):
        wrong = f"{KEY_PREFIX}_{secrets.token_hex(5)}_{secrets.token_urlsafe(32)}"
        for presented in (wrong, _wrong_secret(good[n % len(good)])):
            with pytest.raises(Unauthenticated, match="unknown or revoked"):
                verifier.actor_for(presented, f"192.0.2.{n % 250}")
        sizes.append(verifier.cached)
        verifier.actor_for(good[n % len(good)], "192.0.2.1")
        sizes.append(verifier.cached)
    assert max(sizes) == bound  # filled, and never past the bound
    assert sizes[:4] == [0, 1, 1, 2]  # wrong keys never take a place; good ones do


def test_the_failure_limiter_forgets_the_oldest_addresses_first():
    limiter = FailureLimiter(per_address=2, per_address_and_key=2, max_tracked=50)
    for n in range(1000):
        limiter.failed(f"192.0.2.{n}", f"{n:010x}")
        assert limiter.tracked <= 50
