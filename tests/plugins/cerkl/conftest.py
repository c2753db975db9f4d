"""Fixtures for the CerklHook tests: hooks wired to the Cerkl sandbox with instant retry waits."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cerkl.hooks import CerklHook

CLIENT_ID = "sandbox-client-id"
CLIENT_SECRET = "sandbox-client-secret"

# Fast defaults for tests: a generous rate budget and short timeouts.
TEST_EXTRAS: dict[str, Any] = {
    "requests_per_second": 1000,
    "max_concurrent_requests": 8,
    "connect_timeout": 2,
    "read_timeout": 5,
}


class RecordingSleep:
    """Retry-wait replacement that returns at once and records every wait.

    When given a :class:`FakeClock`, each wait also moves that clock forward.
    """

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.waits: list[float] = []
        self.clock = clock

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.clock is not None:
            self.clock.now += seconds


class FakeClock:
    """Monotonic clock under the test's control."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def set_connection(
    monkeypatch: pytest.MonkeyPatch, conn_id: str, connection: dict[str, Any] | str
) -> None:
    """Define an Airflow connection through its environment variable."""
    value = connection if isinstance(connection, str) else json.dumps(connection)
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", value)


MakeHook = Callable[..., CerklHook]


@pytest.fixture
def make_hook(sandbox, cerkl_controls, monkeypatch) -> Iterator[MakeHook]:
    """Return a factory of hooks on a fresh sandbox; extras override :data:`TEST_EXTRAS`.

    ``make_hook(extras={...}, conn_id=..., secret=..., sleep=..., clock=..., jitter=...)``.
    Retry waits default to a :class:`RecordingSleep`, available as ``hook.test_sleep``.
    """
    hooks: list[CerklHook] = []

    def factory(
        *,
        extras: dict[str, Any] | None = None,
        conn_id: str = "cerkl_test",
        secret: str = CLIENT_SECRET,
        **hook_kwargs: Any,
    ) -> CerklHook:
        set_connection(
            monkeypatch,
            conn_id,
            {
                "conn_type": "http",
                "host": sandbox.cerkl_url,
                "login": CLIENT_ID,
                "password": secret,
                "extra": {**TEST_EXTRAS, **(extras or {})},
            },
        )
        sleep = hook_kwargs.pop("sleep", None) or RecordingSleep(hook_kwargs.get("clock"))
        hook = CerklHook(cerkl_conn_id=conn_id, sleep=sleep, **hook_kwargs)
        hook.test_sleep = sleep
        hooks.append(hook)
        return hook

    yield factory
    for hook in hooks:
        hook.close()


@pytest.fixture
def hook(make_hook: MakeHook) -> CerklHook:
    """A hook with the test defaults on a freshly reset sandbox."""
    return make_hook()


def subscriber(index: int, **fields: Any) -> dict[str, Any]:
    """Return a seedable subscriber with a predictable email address."""
    return {
        "email": f"person{index}@example.com",
        "first_name": f"First{index}",
        "last_name": f"Last{index}",
        "subscriber_status_id": 1,
        "subscriber_privacy_level_id": 1,
        **fields,
    }
