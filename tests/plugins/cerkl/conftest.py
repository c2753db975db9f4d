"""Fixtures for the CerklHook tests: hooks wired to the Cerkl sandbox with instant retry waits."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cerkl.hooks import CerklHook

from tests.plugins.cerkl.helpers import (
    CLIENT_ID,
    CLIENT_SECRET,
    TEST_EXTRAS,
    RecordingSleep,
    set_connection,
)

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
