"""Settings of the Salesforce sandbox: credentials, instance URL, session and API limits."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

ENV_PREFIX = "SALESFORCE_SANDBOX_"


@dataclass(frozen=True)
class SalesforceSandboxSettings:
    """Credentials the sandbox accepts and its limits, each with a documented default.

    Each field can be overridden by an environment variable named ``SALESFORCE_SANDBOX_``
    plus the field name in upper case, for example ``SALESFORCE_SANDBOX_PASSWORD``.
    """

    username: str = "sync.user@sandbox.example"
    password: str = "sandbox-password"
    security_token: str = "sandbox-token"
    consumer_key: str = "sandbox-consumer-key"
    consumer_secret: str = "sandbox-consumer-secret"
    instance_url: str = "https://sandbox.my.salesforce.com"
    session_idle_seconds: float = 7200.0
    api_daily_max: int = 100_000
    query_page_size: int = 2000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SalesforceSandboxSettings:
        """Build settings from the defaults and ``SALESFORCE_SANDBOX_*`` variables.

        :raises ValueError: when a numeric variable does not hold a number.
        """
        source = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for setting in fields(cls):
            name = ENV_PREFIX + setting.name.upper()
            raw = source.get(name)
            if raw is None or raw == "":
                continue
            if setting.type in ("float", float):
                values[setting.name] = _number(name, raw, float)
            elif setting.type in ("int", int):
                values[setting.name] = _number(name, raw, int)
            else:
                values[setting.name] = raw
        return cls(**values)


def _number(name: str, raw: str, kind: type) -> Any:
    try:
        return kind(raw)
    except ValueError as exc:
        raise ValueError(f"invalid {name}={raw!r}: use a {kind.__name__} number") from exc
