"""Test controls shared by the sandbox servers: clock, latency, rate limit, faults, counters.

Each sandbox server builds one :class:`Controls`, wraps its ASGI app with
:meth:`Controls.middleware` and mounts :meth:`Controls.routes` under ``/__sandbox__/``.
Requests to ``/__sandbox__/`` are never counted, delayed, rate limited or faulted.

The clock offset, latency and rate limit are written to JSON files in the state folder, so they
survive a restart. Fault rules and counters live in memory and start empty.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import random
import re
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger(__name__)

CONTROL_PREFIX = "/__sandbox__/"
FAULT_ACTIONS = ("error", "timeout", "drop")

RenderError = Callable[[int, str, str], Response]
EndpointKey = Callable[[str, str], str | None]


class ControlInputError(ValueError):
    """A control request body that is invalid; the message names the field and the fix."""


def _write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = path.with_name(path.name + ".tmp")
    tmp_path.write_text(json.dumps(payload, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp_path, path)


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        logger.warning("Ignoring unreadable control settings file %s: %s", path, exc)
        return {}
    return payload if isinstance(payload, dict) else {}


def parse_datetime(value: str) -> datetime:
    """Parse an ISO 8601 datetime; a value without a zone is taken as UTC.

    :param value: for example ``2026-01-31T12:00:00Z`` or ``2026-01-31 12:00:00``.
    :return: an aware UTC datetime.
    :raises ControlInputError: when the value is not ISO 8601.
    """
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ControlInputError(
            f"invalid datetime {value!r}: use ISO 8601 such as 2026-01-31T12:00:00Z"
        ) from exc
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


class SandboxClock:
    """Server clock: real UTC time plus an offset, or frozen; persisted in a JSON file.

    Every server-side timestamp (record dates, token and session expiry) comes from
    :meth:`now`, so tests can move time without waiting.
    """

    def __init__(self, path: Path) -> None:
        """Load the clock settings from ``path`` when it exists, else start at real time.

        :param path: JSON file that stores the offset and the frozen instant.
        """
        self._path = path
        self._lock = threading.Lock()
        stored = _read_json(path)
        self._offset = float(stored.get("offset_seconds", 0.0))
        frozen_at = stored.get("frozen_at")
        self._frozen_at = parse_datetime(frozen_at) if isinstance(frozen_at, str) else None

    def now(self) -> datetime:
        """Return the sandbox time as an aware UTC datetime."""
        with self._lock:
            if self._frozen_at is not None:
                return self._frozen_at
            return datetime.now(UTC) + timedelta(seconds=self._offset)

    @property
    def offset_seconds(self) -> float:
        """Seconds between the sandbox time and the real time (negative in the past)."""
        return (self.now() - datetime.now(UTC)).total_seconds()

    @property
    def frozen(self) -> bool:
        """True while the clock is frozen."""
        with self._lock:
            return self._frozen_at is not None

    def set(
        self,
        when: datetime | None = None,
        *,
        offset_seconds: float | None = None,
        frozen: bool = False,
    ) -> None:
        """Set the clock to an instant or an offset from real time, optionally frozen.

        With neither ``when`` nor ``offset_seconds`` the clock goes back to real time (frozen
        at the current real time when ``frozen`` is true).

        :param when: the sandbox time to set; a naive value is taken as UTC.
        :param offset_seconds: seconds to add to the real time.
        :param frozen: stop the clock at the new time until the next ``set``.
        :raises ValueError: when both ``when`` and ``offset_seconds`` are given.
        """
        if when is not None and offset_seconds is not None:
            raise ValueError("give either when or offset_seconds, not both")
        real_now = datetime.now(UTC)
        if when is not None:
            target = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
            offset = (target - real_now).total_seconds()
        else:
            offset = float(offset_seconds or 0.0)
        with self._lock:
            self._offset = offset
            self._frozen_at = real_now + timedelta(seconds=offset) if frozen else None
            self._save_locked()

    def advance(self, seconds: float) -> None:
        """Move the clock by ``seconds`` (back when negative); a frozen clock stays frozen."""
        with self._lock:
            self._offset += seconds
            if self._frozen_at is not None:
                self._frozen_at += timedelta(seconds=seconds)
            self._save_locked()

    def describe(self) -> dict[str, Any]:
        """Return the clock state as the ``/__sandbox__/clock`` route sends it."""
        now = self.now()
        return {
            "now": now.isoformat(),
            "offset_seconds": round((now - datetime.now(UTC)).total_seconds(), 3),
            "frozen": self.frozen,
        }

    def _save_locked(self) -> None:
        frozen_at = self._frozen_at.isoformat() if self._frozen_at is not None else None
        _write_json_atomic(self._path, {"offset_seconds": self._offset, "frozen_at": frozen_at})


@dataclass
class FaultRule:
    """One injected failure: which requests it matches, what it does and how often."""

    id: int
    path: str
    method: str | None
    action: str
    status: int
    error_code: str
    message: str
    retry_after: int | None
    delay_seconds: float
    count: int | None
    fraction: float | None
    fired: int = 0
    pattern: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.pattern = re.compile(self.path)

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method:
            return False
        return self.pattern.search(path) is not None

    def exhausted(self) -> bool:
        return self.count is not None and self.fired >= self.count

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path": self.path,
            "method": self.method,
            "action": self.action,
            "status": self.status,
            "error_code": self.error_code,
            "message": self.message,
            "retry_after": self.retry_after,
            "delay_seconds": self.delay_seconds,
            "count": self.count,
            "fraction": self.fraction,
            "fired": self.fired,
        }


def _optional_number(body: dict[str, Any], name: str, *, minimum: float = 0.0) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        bound = "a number" if minimum == -math.inf else f"a number >= {minimum:g}"
        raise ControlInputError(f"invalid {name} {value!r}: use {bound}")
    return float(value)


def parse_fault_rule(rule_id: int, body: dict[str, Any]) -> FaultRule:
    """Build a :class:`FaultRule` from a ``POST /__sandbox__/faults`` body.

    :param rule_id: the id to give the rule.
    :param body: ``path`` (regex searched in the request path, default ``.*``), ``method``
        (or null for any), ``action`` (``error``, ``timeout`` or ``drop``), ``status``
        (default 503), ``error_code``, ``message``, ``retry_after`` (seconds),
        ``delay_seconds`` (for ``timeout``, default 30), and at most one of ``count``
        (fire for the next n matching requests) or ``fraction`` (fire with that
        probability); with neither the rule fires on every match.
    :raises ControlInputError: naming the invalid field.
    """
    action = body.get("action", "error")
    if action not in FAULT_ACTIONS:
        raise ControlInputError(f"invalid action {action!r}: use one of {', '.join(FAULT_ACTIONS)}")

    path = body.get("path", ".*")
    if not isinstance(path, str):
        raise ControlInputError(f"invalid path {path!r}: use a regular expression string")
    try:
        re.compile(path)
    except re.error as exc:
        raise ControlInputError(f"invalid path regex {path!r}: {exc}") from exc

    method = body.get("method")
    if method is not None and not isinstance(method, str):
        raise ControlInputError(f"invalid method {method!r}: use an HTTP method name or null")

    status = body.get("status", 503)
    if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
        raise ControlInputError(f"invalid status {status!r}: use an HTTP status from 400 to 599")

    count = _optional_number(body, "count", minimum=1)
    fraction = _optional_number(body, "fraction")
    if count is not None and fraction is not None:
        raise ControlInputError("give either count or fraction, not both")
    if count is not None and count != int(count):
        raise ControlInputError(f"invalid count {count!r}: use a whole number")
    if fraction is not None and fraction > 1:
        raise ControlInputError(f"invalid fraction {fraction!r}: use a number from 0 to 1")

    retry_after = _optional_number(body, "retry_after")
    delay_seconds = _optional_number(body, "delay_seconds")
    return FaultRule(
        id=rule_id,
        path=path,
        method=method.upper() if method else None,
        action=action,
        status=status,
        error_code=str(body.get("error_code") or "SERVICE_UNAVAILABLE"),
        message=str(body.get("message") or "Injected fault from the sandbox controls."),
        retry_after=math.ceil(retry_after) if retry_after is not None else None,
        delay_seconds=delay_seconds if delay_seconds is not None else 30.0,
        count=int(count) if count is not None else None,
        fraction=fraction,
    )


class TokenBucket:
    """Rate limit by token bucket: ``rate`` tokens a second, a burst of ``max(1, rate)``."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._tokens = self.capacity
        self._updated = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> float:
        """Take one token; return 0 on success, else the seconds until one is available."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / self.rate


class Controls:
    """Test controls of one sandbox server, with its middleware and ``/__sandbox__/`` routes."""

    def __init__(
        self,
        *,
        server_name: str,
        state_dir: Path,
        render_error: RenderError,
        endpoint_key: EndpointKey,
        on_reset: Callable[[], None] | None = None,
    ) -> None:
        """Create the controls and load the persisted clock, latency and rate limit.

        :param server_name: file prefix of the state files, such as ``cerkl``.
        :param state_dir: folder of ``<server_name>_clock.json`` and
            ``<server_name>_controls.json``.
        :param render_error: builds the server's error response from (status, code, message).
        :param endpoint_key: the counter key of (method, path), or None for an uncounted path.
        :param on_reset: empties the server's store; ``POST /__sandbox__/reset`` calls it
            before :meth:`reset`.
        """
        self.server_name = server_name
        self.state_dir = Path(state_dir)
        self.render_error = render_error
        self.endpoint_key = endpoint_key
        self.on_reset = on_reset
        self.clock = SandboxClock(self.state_dir / f"{server_name}_clock.json")

        self._settings_path = self.state_dir / f"{server_name}_controls.json"
        self._lock = threading.Lock()
        self._counters: dict[str, int] = {}
        self._total = 0
        self._faults: list[FaultRule] = []
        self._next_fault_id = 1
        self._random = random.Random()

        stored = _read_json(self._settings_path)
        self.latency_fixed_ms = float(stored.get("latency_fixed_ms", 0.0))
        self.latency_jitter_ms = float(stored.get("latency_jitter_ms", 0.0))
        rate = stored.get("requests_per_second")
        self._bucket = TokenBucket(float(rate)) if rate else None

    # Counters

    def count(self, key: str) -> None:
        """Add one request to the total and to ``key``."""
        with self._lock:
            self._total += 1
            self._counters[key] = self._counters.get(key, 0) + 1

    def counters(self) -> dict[str, Any]:
        """Return ``{"total": n, "by_endpoint": {key: n}}`` since the last reset."""
        with self._lock:
            return {"total": self._total, "by_endpoint": dict(sorted(self._counters.items()))}

    def reset_counters(self) -> None:
        """Set every counter back to zero."""
        with self._lock:
            self._total = 0
            self._counters.clear()

    # Settings

    def set_latency(self, fixed_ms: float = 0.0, jitter_ms: float = 0.0) -> None:
        """Delay each counted request by ``fixed_ms`` plus a uniform 0..``jitter_ms``."""
        if fixed_ms < 0 or jitter_ms < 0:
            raise ControlInputError(
                f"invalid latency fixed_ms={fixed_ms!r} jitter_ms={jitter_ms!r}: use numbers >= 0"
            )
        self.latency_fixed_ms = float(fixed_ms)
        self.latency_jitter_ms = float(jitter_ms)
        self._save_settings()

    def set_rate_limit(self, requests_per_second: float | None) -> None:
        """Limit counted requests to a token bucket of this rate; None turns the limit off."""
        if requests_per_second is not None and requests_per_second <= 0:
            raise ControlInputError(
                f"invalid requests_per_second {requests_per_second!r}: use a number > 0 or null"
            )
        self._bucket = TokenBucket(float(requests_per_second)) if requests_per_second else None
        self._save_settings()

    @property
    def requests_per_second(self) -> float | None:
        """The rate limit in requests a second, or None when off."""
        return self._bucket.rate if self._bucket is not None else None

    def add_fault(self, body: dict[str, Any]) -> FaultRule:
        """Add a fault rule (see :func:`parse_fault_rule` for the fields) and return it."""
        with self._lock:
            rule = parse_fault_rule(self._next_fault_id, body)
            self._next_fault_id += 1
            self._faults.append(rule)
        logger.info("Added %s fault rule %d on %s", rule.action, rule.id, rule.path)
        return rule

    def faults(self) -> list[dict[str, Any]]:
        """Return every fault rule with how often it fired."""
        with self._lock:
            return [rule.to_json() for rule in self._faults]

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        with self._lock:
            self._faults.clear()

    def reset(self) -> None:
        """Clear faults, latency, rate limit and counters, and set the clock to real time."""
        self.clear_faults()
        self.reset_counters()
        self.latency_fixed_ms = 0.0
        self.latency_jitter_ms = 0.0
        self._bucket = None
        self._save_settings()
        self.clock.set()

    def _save_settings(self) -> None:
        _write_json_atomic(
            self._settings_path,
            {
                "latency_fixed_ms": self.latency_fixed_ms,
                "latency_jitter_ms": self.latency_jitter_ms,
                "requests_per_second": self.requests_per_second,
            },
        )

    def _pick_fault(self, method: str, path: str) -> FaultRule | None:
        with self._lock:
            for rule in self._faults:
                if rule.exhausted() or not rule.matches(method, path):
                    continue
                if rule.fraction is not None and self._random.random() >= rule.fraction:
                    continue
                rule.fired += 1
                return rule
        return None

    # ASGI

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """Wrap ``app`` so that counted requests pass the counters, rate limit, latency and faults.

        Works as ``controls.middleware(app)`` and as ``Middleware(controls.middleware)``.
        """

        async def controlled_app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
                await app(scope, receive, send)
                return
            key = self.endpoint_key(scope["method"], scope["path"])
            if key is None:
                await app(scope, receive, send)
                return
            await self._run_controlled(app, key, scope, receive, send)

        return controlled_app

    async def _run_controlled(
        self, app: ASGIApp, key: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        self.count(key)

        bucket = self._bucket
        if bucket is not None:
            wait_seconds = bucket.take()
            if wait_seconds > 0:
                retry_after = max(1, math.ceil(wait_seconds))
                response = self.render_error(
                    429,
                    "RATE_LIMITED",
                    f"Rate limit of {bucket.rate:g} requests per second exceeded; "
                    f"retry after {retry_after} s.",
                )
                response.headers["Retry-After"] = str(retry_after)
                await response(scope, receive, send)
                return

        delay_ms = self.latency_fixed_ms
        if self.latency_jitter_ms:
            delay_ms += self._random.uniform(0.0, self.latency_jitter_ms)
        if delay_ms > 0:
            await asyncio.sleep(delay_ms / 1000.0)

        rule = self._pick_fault(scope["method"], scope["path"])
        if rule is None:
            await app(scope, receive, send)
        elif rule.action == "error":
            response = self.render_error(rule.status, rule.error_code, rule.message)
            if rule.retry_after is not None:
                response.headers["Retry-After"] = str(rule.retry_after)
            await response(scope, receive, send)
        elif rule.action == "timeout":
            await _hold_until_disconnect(receive, rule.delay_seconds)
            response = self.render_error(
                504, "GATEWAY_TIMEOUT", f"Request held for {rule.delay_seconds:g} s."
            )
            await response(scope, receive, send)
        else:
            await _drop_connection(receive, send)

    def routes(self, extra: list[Route] | None = None) -> list[Route]:
        """Return the ``/__sandbox__/`` control routes; ``extra`` routes come first and win.

        :param extra: server-specific routes, each with a path under ``/__sandbox__/``.
        :raises ValueError: when an extra route lies outside ``/__sandbox__/``.
        """
        for route in extra or []:
            if not route.path.startswith(CONTROL_PREFIX):
                raise ValueError(f"control route {route.path!r} must start with {CONTROL_PREFIX!r}")
        shared = [
            Route("/__sandbox__/reset", self.wrap_endpoint(self._reset_route), methods=["POST"]),
            Route(
                "/__sandbox__/clock", self.wrap_endpoint(self._clock_route), methods=["GET", "PUT"]
            ),
            Route(
                "/__sandbox__/clock/advance",
                self.wrap_endpoint(self._advance_route),
                methods=["POST"],
            ),
            Route(
                "/__sandbox__/latency",
                self.wrap_endpoint(self._latency_route),
                methods=["GET", "PUT"],
            ),
            Route(
                "/__sandbox__/rate_limit",
                self.wrap_endpoint(self._rate_limit_route),
                methods=["GET", "PUT"],
            ),
            Route(
                "/__sandbox__/faults",
                self.wrap_endpoint(self._faults_route),
                methods=["GET", "POST", "DELETE"],
            ),
            Route(
                "/__sandbox__/counters",
                self.wrap_endpoint(self._counters_route),
                methods=["GET", "DELETE"],
            ),
        ]
        return list(extra or []) + shared

    def wrap_endpoint(
        self, handler: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """Wrap a control route handler so that ControlInputError becomes a 400 error body."""

        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except ControlInputError as exc:
                return self.render_error(400, "INVALID_CONTROL_REQUEST", str(exc))

        return endpoint

    async def _reset_route(self, request: Request) -> Response:
        if self.on_reset is not None:
            self.on_reset()
        self.reset()
        return JSONResponse({"reset": True})

    async def _clock_route(self, request: Request) -> Response:
        if request.method == "PUT":
            body = await read_json_object(request)
            frozen = bool(body.get("frozen", False))
            if body.get("now") is not None and body.get("offset_seconds") is not None:
                raise ControlInputError("give either now or offset_seconds, not both")
            if body.get("now") is not None:
                if not isinstance(body["now"], str):
                    raise ControlInputError(f"invalid now {body['now']!r}: use an ISO 8601 string")
                self.clock.set(parse_datetime(body["now"]), frozen=frozen)
            else:
                offset = _optional_number(body, "offset_seconds", minimum=-math.inf)
                self.clock.set(offset_seconds=offset, frozen=frozen)
        return JSONResponse(self.clock.describe())

    async def _advance_route(self, request: Request) -> Response:
        body = await read_json_object(request)
        seconds = _optional_number(body, "seconds", minimum=-math.inf)
        if seconds is None:
            raise ControlInputError('missing seconds: send {"seconds": <number>}')
        self.clock.advance(seconds)
        return JSONResponse(self.clock.describe())

    async def _latency_route(self, request: Request) -> Response:
        if request.method == "PUT":
            body = await read_json_object(request)
            self.set_latency(
                _optional_number(body, "fixed_ms") or 0.0,
                _optional_number(body, "jitter_ms") or 0.0,
            )
        return JSONResponse(
            {"fixed_ms": self.latency_fixed_ms, "jitter_ms": self.latency_jitter_ms}
        )

    async def _rate_limit_route(self, request: Request) -> Response:
        if request.method == "PUT":
            body = await read_json_object(request)
            if "requests_per_second" not in body:
                raise ControlInputError(
                    'missing requests_per_second: send {"requests_per_second": <number or null>}'
                )
            rate = body["requests_per_second"]
            if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int | float)):
                raise ControlInputError(
                    f"invalid requests_per_second {rate!r}: use a number > 0 or null"
                )
            self.set_rate_limit(rate)
        return JSONResponse({"requests_per_second": self.requests_per_second})

    async def _faults_route(self, request: Request) -> Response:
        if request.method == "POST":
            rule = self.add_fault(await read_json_object(request))
            return JSONResponse({"id": rule.id, "rule": rule.to_json()})
        if request.method == "DELETE":
            self.clear_faults()
        return JSONResponse({"faults": self.faults()})

    async def _counters_route(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.reset_counters()
        return JSONResponse(self.counters())


async def read_json_object(request: Request) -> dict[str, Any]:
    """Read a request body that must be a JSON object; an empty body reads as ``{}``.

    :raises ControlInputError: when the body is not a JSON object.
    """
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ControlInputError(f"invalid JSON body: {exc.msg} at position {exc.pos}") from exc
    if not isinstance(body, dict):
        raise ControlInputError("invalid body: send a JSON object")
    return body


async def _hold_until_disconnect(receive: Receive, seconds: float) -> None:
    """Sleep ``seconds``, ending early when the client disconnects."""

    async def wait_for_disconnect() -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return

    watcher = asyncio.ensure_future(wait_for_disconnect())
    try:
        await asyncio.wait({watcher}, timeout=seconds)
    finally:
        watcher.cancel()


async def _drop_connection(receive: Receive, send: Send) -> None:
    """Close the client connection without sending any response.

    Under uvicorn the ``receive`` callable is a method of the request cycle, which contains the
    asyncio transport, so the socket is aborted before any byte of a response; the client
    sees the connection reset (``requests`` raises ``ConnectionError``).
    """
    cycle = getattr(receive, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is not None and hasattr(transport, "abort"):
        transport.abort()
        # connection_lost runs on a later loop iteration and marks the cycle disconnected,
        # after which uvicorn neither sends a 500 nor logs an error for this request.
        for _ in range(100):
            if getattr(cycle, "disconnected", True):
                return
            await asyncio.sleep(0.001)
        return
    # NOTE: this fallback for other ASGI servers is untested. It starts a response that
    # promises a body and never sends it, so the server closes a truncated response.
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", b"1024"), (b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": b"{", "more_body": True})
    raise ConnectionAbortedError("sandbox fault: connection dropped")
