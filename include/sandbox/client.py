"""HTTP client of the ``/__sandbox__/`` control routes, one method per route."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import requests


class SandboxControlError(RuntimeError):
    """A control route returned an error status; the message includes the response body."""


class SandboxControlClient:
    """Client of one sandbox server's control routes.

    :param base_url: the server's root URL (``http://127.0.0.1:8702``); a Cerkl API base URL
        ending in ``/v3`` is accepted too and trimmed to the root.
    :param timeout: seconds to wait for each control request.
    """

    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        root = base_url.rstrip("/")
        if root.endswith("/v3"):
            root = root[: -len("/v3")]
        self.base_url = root
        self.timeout = timeout
        self.session = requests.Session()

    def __enter__(self) -> SandboxControlClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the underlying HTTP session."""
        self.session.close()

    def request(self, method: str, path: str, json: Any = None) -> Any:
        """Send a control request and return the decoded JSON body.

        :param path: a path under ``/__sandbox__/``, such as ``/__sandbox__/reset``.
        :raises SandboxControlError: when the server returns a status of 400 or more.
        """
        response = self.session.request(
            method, f"{self.base_url}{path}", json=json, timeout=self.timeout
        )
        if response.status_code >= 400:
            raise SandboxControlError(
                f"{method} {path} failed with {response.status_code}: {response.text[:500]}"
            )
        return response.json() if response.content else None

    # Shared controls

    def reset(self) -> dict[str, Any]:
        """Empty the store and clear faults, latency, rate limit, counters and clock offset."""
        return self.request("POST", "/__sandbox__/reset")

    def seed(self, records: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        """Insert records (the server's seed shapes) and return the assigned ids."""
        return self.request("POST", "/__sandbox__/seed", {"records": records})

    def clock(self) -> dict[str, Any]:
        """Return ``{"now", "offset_seconds", "frozen"}`` of the server clock."""
        return self.request("GET", "/__sandbox__/clock")

    def set_clock(
        self,
        now: datetime | str | None = None,
        *,
        offset_seconds: float | None = None,
        frozen: bool = False,
    ) -> dict[str, Any]:
        """Set the server clock to ``now`` or to real time plus ``offset_seconds``.

        With neither the clock goes back to real time.
        """
        body: dict[str, Any] = {}
        if now is not None:
            body["now"] = now.isoformat() if isinstance(now, datetime) else now
        if offset_seconds is not None:
            body["offset_seconds"] = offset_seconds
        if frozen:
            body["frozen"] = True
        return self.request("PUT", "/__sandbox__/clock", body)

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        """Move the server clock forward by ``seconds``."""
        return self.request("POST", "/__sandbox__/clock/advance", {"seconds": seconds})

    def set_latency(self, fixed_ms: float = 0, jitter_ms: float = 0) -> dict[str, Any]:
        """Delay counted requests by ``fixed_ms`` plus up to ``jitter_ms``; zeros turn it off."""
        return self.request(
            "PUT", "/__sandbox__/latency", {"fixed_ms": fixed_ms, "jitter_ms": jitter_ms}
        )

    def set_rate_limit(self, requests_per_second: float | None) -> dict[str, Any]:
        """Limit counted requests per second; None turns the limit off."""
        return self.request(
            "PUT", "/__sandbox__/rate_limit", {"requests_per_second": requests_per_second}
        )

    def add_fault(
        self,
        *,
        path: str = ".*",
        method: str | None = None,
        action: str = "error",
        status: int = 503,
        error_code: str | None = None,
        message: str | None = None,
        retry_after: int | None = None,
        delay_seconds: float | None = None,
        count: int | None = None,
        fraction: float | None = None,
    ) -> int:
        """Add a fault rule and return its id (fields as in the ``/__sandbox__/faults`` route)."""
        body: dict[str, Any] = {"path": path, "method": method, "action": action, "status": status}
        optional = {
            "error_code": error_code,
            "message": message,
            "retry_after": retry_after,
            "delay_seconds": delay_seconds,
            "count": count,
            "fraction": fraction,
        }
        body.update({name: value for name, value in optional.items() if value is not None})
        return int(self.request("POST", "/__sandbox__/faults", body)["id"])

    def faults(self) -> list[dict[str, Any]]:
        """Return the fault rules with how often each fired."""
        return self.request("GET", "/__sandbox__/faults")["faults"]

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        self.request("DELETE", "/__sandbox__/faults")

    def counters(self) -> dict[str, Any]:
        """Return ``{"total": n, "by_endpoint": {key: n}}``."""
        return self.request("GET", "/__sandbox__/counters")

    def reset_counters(self) -> None:
        """Set the request counters back to zero."""
        self.request("DELETE", "/__sandbox__/counters")

    # Cerkl server

    def expire_tokens(self) -> int:
        """Expire every Cerkl access token now; return how many were issued."""
        return int(self.request("POST", "/__sandbox__/tokens/expire")["expired"])

    def self_unsubscribe(self, subscriber_id: int) -> dict[str, Any]:
        """Unsubscribe a Cerkl subscriber as if the person clicked the unsubscribe link."""
        return self.request("POST", "/__sandbox__/self_unsubscribe", {"id": subscriber_id})

    def edit_subscriber(self, subscriber_id: int, **fields: Any) -> dict[str, Any]:
        """Edit a Cerkl subscriber as an admin in the Cerkl UI would.

        :param fields: any of ``first_name``, ``last_name``, ``email``, ``engagement_score``
            and ``interests`` (a list of ``{"category_id", "rank", "score"}``).
        """
        return self.request("PUT", f"/__sandbox__/subscriber/{subscriber_id}", fields)

    # Salesforce server

    def expire_sessions(self) -> Any:
        """Expire every Salesforce session now."""
        return self.request("POST", "/__sandbox__/sessions/expire")

    def set_api_limit(self, max_requests: int, used: int = 0) -> Any:
        """Set the Salesforce daily API allowance and how much of it is spent."""
        return self.request("PUT", "/__sandbox__/api_limit", {"max": max_requests, "used": used})

    def merge(self, sobject: str, master_id: str, merged_ids: list[str]) -> Any:
        """Merge Salesforce records into ``master_id`` as a user merge would."""
        return self.request(
            "POST",
            "/__sandbox__/merge",
            {"sobject": sobject, "master_id": master_id, "merged_ids": merged_ids},
        )

    def add_record_fault(
        self, sobject: str, ids: list[str], error_code: str, times: int = 1
    ) -> Any:
        """Make writes of these Salesforce records fail with ``error_code`` ``times`` times."""
        return self.request(
            "POST",
            "/__sandbox__/record_faults",
            {"sobject": sobject, "ids": ids, "error_code": error_code, "times": times},
        )
