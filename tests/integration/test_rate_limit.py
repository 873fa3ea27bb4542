"""The per-key rate limit and the failed-authentication throttle (ADR 0031): a token
bucket per API key, taken after the key is authenticated; 429 problem details with
the whole seconds to wait in Retry-After; time is a fake monotonic clock the test moves."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from collections_es.api.rate_limit import TokenBuckets
from collections_es.application.clock import FixedClock
from collections_es.config import Settings

from ..conftest import START, make_services
from .conftest import CUSTOMER, Api, invoice

# 6 a minute: one token every 10 s; 3 at once.
LIMITS = {
    "COLLECTIONS_RATE_LIMIT_PER_MINUTE": 6,
    "COLLECTIONS_RATE_LIMIT_BURST": 3,
    "COLLECTIONS_AUTH_FAILURES_PER_MINUTE": 2,
    "COLLECTIONS_AUTH_FAILURE_BURST": 2,
}


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 5_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def ticks() -> FakeMonotonic:
    return FakeMonotonic()


@pytest.fixture
def limited(database_url: str, ticks: FakeMonotonic) -> Iterator[Api]:
    services = make_services(database_url, FixedClock(START), **LIMITS)
    yield Api(services, monotonic=ticks)
    services.close()


def assert_429(response, retry_after: int) -> dict[str, Any]:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["retry-after"] == str(retry_after)
    body = response.json()
    assert body["status"] == 429 and body["title"] == "Too many requests"
    assert f"try again in {retry_after} s" in body["detail"]
    return body


def burst(api: Api, who: str, count: int) -> None:
    for _ in range(count):
        response = api.as_(who).get("/policy")
        assert response.status_code == 200, response.text


def test_a_key_gets_its_burst_then_429_with_the_seconds_until_its_next_token(limited, ticks):
    burst(limited, "collector", 3)
    assert "rate limit of this API key" in assert_429(limited.as_("collector").get("/policy"), 10)["detail"]
    ticks.advance(4)
    assert_429(limited.as_("collector").get("/policy"), 6)
    ticks.advance(5.5)
    assert_429(limited.as_("collector").get("/policy"), 1)
    ticks.advance(0.5)  # exactly the Retry-After it was given: its token is there
    burst(limited, "collector", 1)
    assert_429(limited.as_("collector").get("/policy"), 10)


def test_the_bucket_refills_with_time_up_to_the_burst_and_no_further(limited, ticks):
    burst(limited, "collector", 3)
    assert_429(limited.as_("collector").get("/policy"), 10)
    ticks.advance(20)
    burst(limited, "collector", 2)
    assert_429(limited.as_("collector").get("/policy"), 10)
    ticks.advance(3600)
    burst(limited, "collector", 3)
    assert_429(limited.as_("collector").get("/policy"), 10)


def test_keys_have_buckets_of_their_own_even_for_the_same_role(limited, ticks):
    burst(limited, "supervisor", 3)
    assert_429(limited.as_("supervisor").get("/policy"), 10)
    burst(limited, "supervisor-2", 3)
    burst(limited, "auditor", 3)
    assert_429(limited.as_("supervisor-2").get("/policy"), 10)


def test_a_command_refused_by_the_limit_is_not_applied_and_its_idempotency_key_not_spent(limited, ticks):
    assert limited.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
    assert limited.as_("service").post("/receivables", json=invoice("INV-RL-1")).status_code == 201
    history = limited.as_("auditor").get("/receivables/INV-RL-1/history").json()
    burst(limited, "service", 2)
    pay = {"amount": "100.00", "method": "cash", "paid_on": "2026-03-02", "reference": "R-1"}
    key = {"Idempotency-Key": "pay-1"}
    assert_429(limited.as_("service").post("/receivables/INV-RL-1/record-payment", json=pay, headers=key), 10)
    assert limited.as_("auditor").get("/receivables/INV-RL-1/history").json() == history
    assert limited.as_("auditor").get("/receivables/INV-RL-1").json()["balance"] == "1200.50"
    ticks.advance(10)
    applied = limited.as_("service").post("/receivables/INV-RL-1/record-payment", json=pay, headers=key)
    assert applied.status_code == 200, applied.text
    assert applied.json()["balance"] == "1100.50"
    assert len(limited.as_("auditor").get("/receivables/INV-RL-1/history").json()) == len(history) + 1


def test_requests_without_a_valid_key_take_nothing_from_any_key(limited, ticks):
    for _ in range(10):
        assert limited.client.get("/policy").status_code == 401
    burst(limited, "collector", 3)
    assert_429(limited.as_("collector").get("/policy"), 10)


def test_too_many_invalid_tokens_from_an_address_are_429_before_any_lookup(limited, ticks):
    wrong = {"Authorization": "Bearer ces_guess"}
    for _ in range(2):
        assert limited.client.get("/policy", headers=wrong).status_code == 401
    body = assert_429(limited.client.get("/policy", headers=wrong), 30)
    assert "too many invalid tokens" in body["detail"]
    # The address is held off before its token is looked up, whatever the token.
    assert_429(limited.as_("collector").get("/policy"), 30)
    assert limited.client.get("/policy").status_code == 401, "no token at all is no guess"
    ticks.advance(30)
    burst(limited, "collector", 3)
    assert limited.client.get("/policy", headers=wrong).status_code == 401
    assert_429(limited.client.get("/policy", headers=wrong), 30)


def test_a_burst_of_zero_turns_the_limits_off(database_url, ticks):
    services = make_services(
        database_url, FixedClock(START), COLLECTIONS_RATE_LIMIT_BURST=0, COLLECTIONS_AUTH_FAILURE_BURST=0
    )
    try:
        api = Api(services, monotonic=ticks)
        burst(api, "collector", 25)
        for _ in range(25):
            assert api.client.get("/policy", headers={"Authorization": "Bearer ces_guess"}).status_code == 401
    finally:
        services.close()


def test_the_defaults_limit_each_key_and_address_generously():
    settings = Settings(DATABASE_URL="sqlite:///unused.db")
    assert (settings.rate_limit_per_minute, settings.rate_limit_burst) == (600, 200)
    assert (settings.auth_failures_per_minute, settings.auth_failure_burst) == (30, 30)


def test_buckets_that_have_refilled_are_forgotten_so_memory_stays_bounded():
    ticks = FakeMonotonic()
    buckets = TokenBuckets(60, 2, monotonic=ticks, max_keys=100)
    for i in range(1000):
        assert buckets.take(f"address-{i}") == 0
        ticks.advance(0.01)
    assert len(buckets._buckets) <= 100
    assert buckets.take("address-999") == 0, "its second token"
    assert buckets.take("address-999") == 1, "a bucket still in use is kept, not forgotten as full"
