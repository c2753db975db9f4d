"""CerklHook retries, errors that are not retried, and token renewal, with sandbox faults."""

from __future__ import annotations

import pytest
from cerkl.exceptions import (
    CerklApiError,
    CerklAuthError,
    CerklConflictError,
    CerklNotFoundError,
    CerklRetryError,
)

from tests.plugins.cerkl.helpers import FakeClock, RecordingSleep, subscriber

SUBSCRIBERS = "^/v3/subscriber$"


def list_calls(hook) -> int:
    return hook.api_calls["GET subscriber"]


def test_retry_429_waits_retry_after(make_hook, cerkl_controls):
    hook = make_hook(jitter=lambda: 0.0)
    cerkl_controls.add_fault(
        path=SUBSCRIBERS, method="GET", status=429, error_code="RATE_LIMITED", retry_after=3,
        count=2,
    )  # fmt: skip

    assert list(hook.iter_subscribers()) == []

    assert list_calls(hook) == 3
    assert hook.test_sleep.waits == [3.0, 3.0]


def test_retry_503_burst_backs_off_exponentially(make_hook, cerkl_controls):
    hook = make_hook(jitter=lambda: 1.0, extras={"backoff_initial_seconds": 0.5})
    cerkl_controls.add_fault(path=SUBSCRIBERS, method="GET", status=503, count=3)

    assert list(hook.iter_subscribers()) == []

    assert list_calls(hook) == 4
    assert hook.test_sleep.waits == [0.5, 1.0, 2.0]


def test_retry_wait_has_jitter_and_cap(make_hook, cerkl_controls):
    hook = make_hook(
        jitter=lambda: 0.0,
        extras={"backoff_initial_seconds": 4, "backoff_max_seconds": 10, "max_attempts": 5},
    )
    cerkl_controls.add_fault(path=SUBSCRIBERS, method="GET", status=500, count=4)

    list(hook.iter_subscribers())

    # Jitter 0 halves each wait; the cap of 10 s applies before the halving.
    assert hook.test_sleep.waits == [2.0, 4.0, 5.0, 5.0]


def test_retry_exhausts_max_attempts(make_hook, cerkl_controls):
    hook = make_hook(extras={"max_attempts": 4})
    cerkl_controls.add_fault(
        path=SUBSCRIBERS, method="GET", status=503, error_code="UNAVAILABLE", count=10
    )

    with pytest.raises(CerklRetryError) as info:
        list(hook.iter_subscribers())

    assert info.value.attempts == 4
    assert "HTTP 503 UNAVAILABLE" in str(info.value)
    assert "GET subscriber" in str(info.value)
    assert list_calls(hook) == 4
    assert cerkl_controls.counters()["by_endpoint"]["GET subscriber"] == 4


def test_retry_stops_at_deadline(make_hook, cerkl_controls):
    clock = FakeClock()
    hook = make_hook(
        clock=clock,
        sleep=RecordingSleep(clock),
        jitter=lambda: 1.0,
        extras={"backoff_initial_seconds": 2, "retry_deadline_seconds": 10, "max_attempts": 20},
    )
    cerkl_controls.add_fault(path=SUBSCRIBERS, method="GET", status=503, count=50)

    with pytest.raises(CerklRetryError, match="retry deadline 10 s"):
        list(hook.iter_subscribers())

    # Waits 2 + 4 use 6 s; the next wait of 8 s would pass the 10 s deadline.
    assert hook.test_sleep.waits == [2.0, 4.0]
    assert list_calls(hook) == 3


def test_retry_after_beyond_deadline_fails_at_once(make_hook, cerkl_controls):
    hook = make_hook(extras={"retry_deadline_seconds": 20})
    cerkl_controls.add_fault(path=SUBSCRIBERS, method="GET", status=429, retry_after=60, count=5)

    with pytest.raises(CerklRetryError) as info:
        list(hook.iter_subscribers())

    assert "Retry-After 60 s" in str(info.value)
    assert "deadline of 20 s" in str(info.value)
    assert hook.test_sleep.waits == []
    assert list_calls(hook) == 1


def test_retry_on_read_timeout(make_hook, cerkl_controls):
    hook = make_hook(extras={"read_timeout": 0.3})
    cerkl_controls.add_fault(
        path=SUBSCRIBERS, method="GET", action="timeout", delay_seconds=1.5, count=1
    )

    assert list(hook.iter_subscribers()) == []

    assert list_calls(hook) == 2
    assert len(hook.test_sleep.waits) == 1


def test_retry_on_dropped_connection(hook, cerkl_controls):
    cerkl_controls.add_fault(path=SUBSCRIBERS, method="GET", action="drop", count=2)

    assert list(hook.iter_subscribers()) == []

    assert list_calls(hook) == 3
    assert cerkl_controls.counters()["by_endpoint"]["GET subscriber"] == 3


def test_retry_on_dropped_token_request(hook, cerkl_controls):
    cerkl_controls.add_fault(path="^/v3/oauth/Token$", action="drop", count=1)

    assert hook.list_privacy_levels()

    assert hook.api_calls["POST oauth/Token"] == 2


@pytest.mark.parametrize(
    ("status", "code", "error_class"),
    [
        (400, "INVALID_FILTER", CerklApiError),
        (403, "FORBIDDEN", CerklAuthError),
        (404, "NOT_FOUND", CerklNotFoundError),
        (409, "DUPLICATE_EMAIL", CerklConflictError),
        (422, "INVALID_EMAIL", CerklApiError),
    ],
)
def test_client_errors_are_not_retried(hook, cerkl_controls, status, code, error_class):
    cerkl_controls.add_fault(
        path=SUBSCRIBERS, method="GET", status=status, error_code=code, message="Rejected."
    )

    with pytest.raises(error_class) as info:
        list(hook.iter_subscribers())

    assert info.value.status == status
    assert info.value.code == code
    assert info.value.message == "Rejected."
    assert info.value.path == "subscriber"
    assert list_calls(hook) == 1
    assert hook.test_sleep.waits == []


def test_real_404_is_not_retried(hook):
    with pytest.raises(CerklNotFoundError):
        hook.get_subscriber(12345)

    assert hook.api_calls["GET subscriber/{id}"] == 1


def test_real_409_is_not_retried(hook, cerkl_controls):
    [subscriber_id] = cerkl_controls.seed({"subscribers": [subscriber(1)]})["subscribers"]
    hook.unsubscribe_subscriber(subscriber_id)

    with pytest.raises(CerklConflictError):
        hook.unsubscribe_subscriber(subscriber_id)

    assert hook.api_calls["DELETE subscriber/{id}"] == 2


# -- tokens -------------------------------------------------------------------------------


def test_token_is_cached(hook):
    hook.list_privacy_levels()
    hook.list_subscriber_statuses()
    hook.find_subscriber_by_email("nobody@example.com")

    assert hook.api_calls["POST oauth/Token"] == 1


def test_token_renewed_once_after_401(hook, cerkl_controls):
    hook.list_privacy_levels()
    cerkl_controls.expire_tokens()

    levels = hook.list_privacy_levels()

    assert len(levels) == 3
    assert hook.api_calls["POST oauth/Token"] == 2
    assert hook.api_calls["GET subscriber_privacy_level"] == 3
    assert hook.test_sleep.waits == []


def test_token_renewed_after_server_clock_expiry(hook, cerkl_controls):
    hook.list_privacy_levels()
    cerkl_controls.advance_clock(43_200 + 60)

    hook.list_privacy_levels()

    assert hook.api_calls["POST oauth/Token"] == 2


def test_token_renewed_before_expiry_margin(make_hook):
    clock = FakeClock()
    hook = make_hook(clock=clock, extras={"token_renewal_margin_seconds": 600})
    hook.list_privacy_levels()

    clock.now += 43_200 - 700
    hook.list_privacy_levels()
    renewals_before_margin = hook.api_calls["POST oauth/Token"]
    clock.now += 200
    hook.list_privacy_levels()

    assert renewals_before_margin == 1
    assert hook.api_calls["POST oauth/Token"] == 2
    assert hook.api_calls["GET subscriber_privacy_level"] == 3


def test_persistent_401_raises_auth_error(hook, cerkl_controls):
    cerkl_controls.add_fault(
        path="^/v3/subscriber_privacy_level$", status=401, error_code="INVALID_TOKEN"
    )

    with pytest.raises(CerklAuthError) as info:
        hook.list_privacy_levels()

    assert info.value.status == 401
    assert hook.api_calls["GET subscriber_privacy_level"] == 2
    assert hook.api_calls["POST oauth/Token"] == 2


def test_wrong_secret_raises_auth_error_without_secret(make_hook):
    hook = make_hook(secret="definitely-wrong-secret")

    with pytest.raises(CerklAuthError) as info:
        hook.list_privacy_levels()

    assert info.value.path == "oauth/Token"
    assert "definitely-wrong-secret" not in str(info.value)
    assert hook.api_calls["POST oauth/Token"] == 1
