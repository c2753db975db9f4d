"""Sandbox controls: clock, latency, rate limit, faults, counters, reset and seed.

Server-level tests run against the Cerkl sandbox, which mounts the shared controls module.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from include.sandbox.cerkl.app import endpoint_key
from include.sandbox.client import SandboxControlClient, SandboxControlError
from include.sandbox.controls import (
    ControlInputError,
    SandboxClock,
    TokenBucket,
    parse_fault_rule,
)
from include.sandbox.runner import RunningSandbox, start_sandbox

from .cerkl.api_client import CerklApi, data_of

# Units without a server


def test_clock_offset_and_advance(tmp_path: Path) -> None:
    clock = SandboxClock(tmp_path / "clock.json")

    clock.set(offset_seconds=3600)
    clock.advance(60)

    expected = datetime.now(UTC) + timedelta(seconds=3660)
    assert abs((clock.now() - expected).total_seconds()) < 1
    assert clock.frozen is False


def test_clock_frozen_stands_still(tmp_path: Path) -> None:
    clock = SandboxClock(tmp_path / "clock.json")
    moment = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)

    clock.set(moment, frozen=True)
    time.sleep(0.01)
    first = clock.now()
    clock.advance(10)

    assert first == moment
    assert clock.now() == moment + timedelta(seconds=10)


def test_clock_persists_in_file(tmp_path: Path) -> None:
    moment = datetime(2031, 6, 1, tzinfo=UTC)
    SandboxClock(tmp_path / "clock.json").set(moment, frozen=True)

    reloaded = SandboxClock(tmp_path / "clock.json")

    assert reloaded.now() == moment
    assert reloaded.frozen is True


def test_clock_set_without_arguments_returns_to_real_time(tmp_path: Path) -> None:
    clock = SandboxClock(tmp_path / "clock.json")
    clock.set(offset_seconds=-86_400, frozen=True)

    clock.set()

    assert abs((clock.now() - datetime.now(UTC)).total_seconds()) < 1
    assert clock.frozen is False


def test_clock_rejects_both_instant_and_offset(tmp_path: Path) -> None:
    clock = SandboxClock(tmp_path / "clock.json")

    with pytest.raises(ValueError, match="either"):
        clock.set(datetime.now(UTC), offset_seconds=5)


def test_token_bucket_allows_burst_then_waits() -> None:
    bucket = TokenBucket(2)

    assert bucket.take() == 0
    assert bucket.take() == 0
    wait_seconds = bucket.take()

    assert 0 < wait_seconds <= 0.5


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"action": "explode"}, "action"),
        ({"path": "("}, "path"),
        ({"status": 200}, "status"),
        ({"count": 0}, "count"),
        ({"count": 1.5}, "count"),
        ({"fraction": 1.5}, "fraction"),
        ({"count": 1, "fraction": 0.5}, "count or fraction"),
        ({"delay_seconds": -1}, "delay_seconds"),
        ({"method": 5}, "method"),
    ],
)
def test_fault_rule_rejects_bad_fields(body: dict, named: str) -> None:
    with pytest.raises(ControlInputError, match=named):
        parse_fault_rule(1, body)


@pytest.mark.parametrize(
    ("method", "path", "key"),
    [
        ("POST", "/v3/oauth/Token", "POST oauth/Token"),
        ("GET", "/v3/subscriber", "GET subscriber"),
        ("GET", "/v3/subscriber/12/subscriber_interest", "GET subscriber/{id}/subscriber_interest"),
        ("POST", "/v3/segment/7/subscriber", "POST segment/{id}/subscriber"),
        ("DELETE", "/v3/segment/7/subscriber/99", "DELETE segment/{id}/subscriber/{id}"),
        ("GET", "/__sandbox__/counters", None),
        ("GET", "/health", None),
    ],
)
def test_cerkl_endpoint_keys(method: str, path: str, key: str | None) -> None:
    assert endpoint_key(method, path) == key


# Against a running server


def test_reset_clears_store_and_settings(
    cerkl_api: CerklApi, cerkl_controls: SandboxControlClient
) -> None:
    cerkl_api.create(email="reset@example.org")
    cerkl_controls.set_latency(fixed_ms=5)
    cerkl_controls.set_rate_limit(1000)
    cerkl_controls.add_fault(path="segment", count=5)
    cerkl_controls.set_clock(offset_seconds=86_400)

    cerkl_controls.reset()
    cerkl_api.authenticate()

    assert data_of(cerkl_api.call("GET", "subscriber")) == []
    assert cerkl_controls.faults() == []
    assert cerkl_controls.request("GET", "/__sandbox__/latency") == {"fixed_ms": 0, "jitter_ms": 0}
    assert cerkl_controls.request("GET", "/__sandbox__/rate_limit") == {"requests_per_second": None}
    assert abs(cerkl_controls.clock()["offset_seconds"]) < 1
    assert cerkl_controls.counters()["total"] == 2


def test_seed_returns_assigned_ids(cerkl_controls: SandboxControlClient) -> None:
    assigned = cerkl_controls.seed(
        {
            "categories": [{"description": "News"}],
            "subscribers": [{"id": 40, "email": "s40@example.org"}, {"email": "next@example.org"}],
            "unsubscribes": [{"email": "u@example.org"}],
            "segments": [{"description": "Seg", "external_id": "SF_S", "members": [40]}],
        }
    )

    assert assigned["categories"] == [1]
    assert assigned["subscribers"] == [40, 41]
    assert assigned["unsubscribes"] == [42]
    assert assigned["interests"] == 0
    assert len(assigned["segments"]) == 1


@pytest.mark.parametrize(
    "records",
    [
        {"people": []},
        {"subscribers": [{"first_name": "No email"}]},
        {"subscribers": [{"email": "d@example.org"}, {"email": "D@example.org"}]},
    ],
)
def test_seed_rejects_bad_records(cerkl_controls: SandboxControlClient, records: dict) -> None:
    with pytest.raises(SandboxControlError, match="400"):
        cerkl_controls.seed(records)


def test_clock_routes_set_offset_and_advance(cerkl_controls: SandboxControlClient) -> None:
    frozen = cerkl_controls.set_clock("2029-12-31T23:00:00Z", frozen=True)
    advanced = cerkl_controls.advance_clock(7200)
    shifted = cerkl_controls.set_clock(offset_seconds=-3600)

    assert frozen["now"] == "2029-12-31T23:00:00+00:00"
    assert frozen["frozen"] is True
    assert advanced["now"] == "2030-01-01T01:00:00+00:00"
    assert shifted["frozen"] is False
    assert abs(shifted["offset_seconds"] + 3600) < 1


@pytest.mark.parametrize(
    "body",
    [
        {"now": "yesterday"},
        {"now": "2030-01-01T00:00:00Z", "offset_seconds": 1},
        {"offset_seconds": "x"},
    ],
)
def test_clock_route_rejects_bad_body(cerkl_controls: SandboxControlClient, body: dict) -> None:
    response = cerkl_controls.session.put(
        f"{cerkl_controls.base_url}/__sandbox__/clock", json=body, timeout=10
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_CONTROL_REQUEST"


def test_advance_requires_seconds(cerkl_controls: SandboxControlClient) -> None:
    with pytest.raises(SandboxControlError, match="seconds"):
        cerkl_controls.request("POST", "/__sandbox__/clock/advance", {})


def test_latency_delays_api_not_controls(
    cerkl_api: CerklApi, cerkl_controls: SandboxControlClient
) -> None:
    cerkl_controls.set_latency(fixed_ms=500, jitter_ms=50)

    started = time.monotonic()
    cerkl_api.call("GET", "subscriber")
    api_seconds = time.monotonic() - started
    started = time.monotonic()
    cerkl_controls.counters()
    control_seconds = time.monotonic() - started

    assert 0.5 <= api_seconds < 2.5
    assert control_seconds < 0.5


def test_latency_zero_turns_it_off(
    cerkl_api: CerklApi, cerkl_controls: SandboxControlClient
) -> None:
    cerkl_controls.set_latency(fixed_ms=1000)
    cerkl_controls.set_latency(0, 0)

    started = time.monotonic()
    cerkl_api.call("GET", "subscriber")

    assert time.monotonic() - started < 1.0


def test_rate_limit_answers_429_with_retry_after(
    cerkl_api: CerklApi, cerkl_controls: SandboxControlClient
) -> None:
    cerkl_controls.set_rate_limit(2)

    responses = [cerkl_api.call("GET", "subscriber") for _ in range(5)]
    limited = [response for response in responses if response.status_code == 429]

    assert responses[0].status_code == 200
    assert len(limited) >= 2
    assert limited[0].json()["error"]["code"] == "RATE_LIMITED"
    assert int(limited[0].headers["Retry-After"]) >= 1
    assert cerkl_controls.counters()["by_endpoint"]["GET subscriber"] == 5


def test_rate_limit_spares_controls_and_turns_off(
    cerkl_api: CerklApi, cerkl_controls: SandboxControlClient
) -> None:
    cerkl_controls.set_rate_limit(1)

    for _ in range(10):
        cerkl_controls.counters()
    cerkl_controls.set_rate_limit(None)
    statuses = [cerkl_api.call("GET", "subscriber").status_code for _ in range(5)]

    assert statuses == [200] * 5


def test_rate_limit_rejects_zero(cerkl_controls: SandboxControlClient) -> None:
    with pytest.raises(SandboxControlError, match="requests_per_second"):
        cerkl_controls.set_rate_limit(0)


def test_fault_error_with_count(cerkl_api: CerklApi, cerkl_controls: SandboxControlClient) -> None:
    rule_id = cerkl_controls.add_fault(
        path=r"^/v3/subscriber$",
        status=503,
        error_code="SERVICE_UNAVAILABLE",
        message="try later",
        retry_after=2,
        count=2,
    )

    responses = [cerkl_api.call("GET", "subscriber") for _ in range(3)]

    assert [response.status_code for response in responses] == [503, 503, 200]
    assert responses[0].json() == {"error": {"code": "SERVICE_UNAVAILABLE", "message": "try later"}}
    assert responses[0].headers["Retry-After"] == "2"
    rules = cerkl_controls.faults()
    assert rules[0]["id"] == rule_id
    assert rules[0]["fired"] == 2


def test_fault_matches_method_and_path(
    cerkl_api: CerklApi, cerkl_controls: SandboxControlClient
) -> None:
    cerkl_controls.add_fault(path="segment", method="POST", status=500, error_code="BOOM")

    listed = cerkl_api.call("GET", "segment")
    other_path = cerkl_api.call("GET", "subscriber")
    created = cerkl_api.call("POST", "segment", data=[{"description": "S"}])

    assert listed.status_code == 200
    assert other_path.status_code == 200
    assert created.status_code == 500
    assert created.json()["error"]["code"] == "BOOM"


@pytest.mark.parametrize(("fraction", "expected_failures"), [(1.0, 10), (0.0, 0)])
def test_fault_fraction_extremes(
    cerkl_api: CerklApi,
    cerkl_controls: SandboxControlClient,
    fraction: float,
    expected_failures: int,
) -> None:
    cerkl_controls.add_fault(path="subscriber", status=502, fraction=fraction)

    statuses = [cerkl_api.call("GET", "subscriber").status_code for _ in range(10)]

    assert statuses.count(502) == expected_failures


def test_fault_fraction_half_fires_sometimes(
    cerkl_api: CerklApi, cerkl_controls: SandboxControlClient
) -> None:
    cerkl_controls.add_fault(path="subscriber", status=502, fraction=0.5)

    statuses = [cerkl_api.call("GET", "subscriber").status_code for _ in range(40)]

    # Binomial(40, 0.5) falls outside 5..35 with a probability below 1e-6.
    assert 5 <= statuses.count(502) <= 35
    assert cerkl_controls.faults()[0]["fired"] == statuses.count(502)


def test_fault_timeout_raises_read_timeout(
    cerkl_api: CerklApi, cerkl_controls: SandboxControlClient
) -> None:
    cerkl_controls.add_fault(path="subscriber", action="timeout", delay_seconds=5, count=1)

    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        cerkl_api.call("GET", "subscriber", timeout=(2, 0.3))
    recovered = cerkl_api.call("GET", "subscriber")

    assert recovered.status_code == 200
    assert time.monotonic() - started < 4


def test_fault_timeout_answers_504_after_delay(
    cerkl_api: CerklApi, cerkl_controls: SandboxControlClient
) -> None:
    cerkl_controls.add_fault(path="subscriber", action="timeout", delay_seconds=0.3, count=1)

    started = time.monotonic()
    response = cerkl_api.call("GET", "subscriber")

    assert response.status_code == 504
    assert response.json()["error"]["code"] == "GATEWAY_TIMEOUT"
    assert time.monotonic() - started >= 0.3


def test_fault_drop_closes_connection(
    cerkl_api: CerklApi, cerkl_controls: SandboxControlClient
) -> None:
    cerkl_controls.add_fault(path="subscriber", action="drop", count=1)

    with pytest.raises(
        (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)
    ):
        cerkl_api.call("GET", "subscriber")
    recovered = cerkl_api.call("GET", "subscriber")

    assert recovered.status_code == 200


def test_fault_drop_with_fraction(
    cerkl_api: CerklApi, cerkl_controls: SandboxControlClient
) -> None:
    cerkl_controls.add_fault(path="subscriber", action="drop", fraction=1.0)

    for _ in range(3):
        with pytest.raises(requests.exceptions.ConnectionError):
            cerkl_api.call("GET", "subscriber")

    assert cerkl_controls.faults()[0]["fired"] == 3


def test_faults_do_not_touch_controls(cerkl_controls: SandboxControlClient) -> None:
    cerkl_controls.add_fault(path=".*", action="drop")

    assert cerkl_controls.counters()["total"] == 0
    cerkl_controls.clear_faults()
    assert cerkl_controls.faults() == []


def test_add_fault_rejects_bad_action(cerkl_controls: SandboxControlClient) -> None:
    with pytest.raises(SandboxControlError, match="action"):
        cerkl_controls.add_fault(action="explode")


def test_counters_use_endpoint_keys(
    cerkl_api: CerklApi, cerkl_controls: SandboxControlClient
) -> None:
    subscriber = cerkl_api.create(email="count@example.org")
    segment = data_of(cerkl_api.call("POST", "segment", data=[{"description": "C"}]))[0]
    cerkl_api.call("GET", f"subscriber/{subscriber['id']}/subscriber_interest")
    cerkl_api.call("POST", f"segment/{segment['id']}/subscriber", data=[{"id": subscriber["id"]}])
    cerkl_api.call("DELETE", f"segment/{segment['id']}/subscriber/{subscriber['id']}")
    cerkl_controls.faults()
    cerkl_controls.clock()

    counters = cerkl_controls.counters()

    assert counters["by_endpoint"] == {
        "POST oauth/Token": 1,
        "POST subscriber": 1,
        "POST segment": 1,
        "GET subscriber/{id}/subscriber_interest": 1,
        "POST segment/{id}/subscriber": 1,
        "DELETE segment/{id}/subscriber/{id}": 1,
    }
    assert counters["total"] == 6


def test_counters_reset_by_delete(
    cerkl_api: CerklApi, cerkl_controls: SandboxControlClient
) -> None:
    cerkl_api.call("GET", "subscriber")

    cerkl_controls.reset_counters()

    assert cerkl_controls.counters() == {"total": 0, "by_endpoint": {}}


def test_settings_survive_restart(tmp_path: Path) -> None:
    with start_sandbox(tmp_path, servers=("cerkl",)) as first:
        controls = SandboxControlClient(first.cerkl_root_url)
        controls.set_clock("2032-02-02T02:02:02Z", frozen=True)
        controls.set_latency(fixed_ms=1, jitter_ms=2)
        controls.set_rate_limit(500)
        controls.seed({"subscribers": [{"email": "kept@example.org"}]})
        controls.add_fault(path="subscriber", count=3)

    with start_sandbox(tmp_path, servers=("cerkl",)) as second:
        controls = SandboxControlClient(second.cerkl_root_url)
        clock = controls.clock()
        latency = controls.request("GET", "/__sandbox__/latency")
        rate_limit = controls.request("GET", "/__sandbox__/rate_limit")
        api = CerklApi(second.cerkl_url)
        subscribers = data_of(api.call("GET", "subscriber"))
        faults = controls.faults()

    assert clock["now"] == "2032-02-02T02:02:02+00:00"
    assert clock["frozen"] is True
    assert latency == {"fixed_ms": 1, "jitter_ms": 2}
    assert rate_limit == {"requests_per_second": 500}
    assert [row["email"] for row in subscribers] == ["kept@example.org"]
    assert faults == []


def test_sandbox_fixture_serves_cerkl(sandbox: RunningSandbox) -> None:
    assert sandbox.cerkl_url is not None
    assert sandbox.cerkl_url.startswith("http://127.0.0.1:")
    assert sandbox.cerkl_url.endswith("/v3")
