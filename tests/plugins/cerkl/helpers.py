"""Helpers shared by the CerklHook tests: credentials, fake clock and sleep, seed records."""

from __future__ import annotations

import json
from typing import Any

import pytest

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
