"""Starlette app that serves the Cerkl API v3 contract under ``/v3/`` plus sandbox controls.

``create_app(data_dir)`` keeps its data in ``<data_dir>/cerkl.sqlite3`` and the control
settings in ``<data_dir>/cerkl_*.json``. docs/sandbox-cerkl.md lists every route, error code
and the choices this server makes where the public Cerkl documentation is silent.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import os
import re
import secrets
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from include.sandbox.cerkl.store import (
    DATETIME_PATTERN,
    FILTER_OPERATORS,
    PRIVACY_LEVELS,
    SEGMENT_FILTER_FIELDS,
    SUBSCRIBER_FILTER_FIELDS,
    SUBSCRIBER_STATUSES,
    UNSUBSCRIBE_FILTER_FIELDS,
    CerklApiError,
    CerklStore,
    Filter,
    is_valid_email,
)
from include.sandbox.controls import ControlInputError, Controls, read_json_object

logger = logging.getLogger(__name__)

API_PREFIX = "/v3/"
TEMPLATE_VERSION = "3.0"
MAX_NAME_LENGTH = 255
UNSUBSCRIBE_SOURCES = ("admin", "integration")
_NUMERIC_SEGMENT = re.compile(r"^\d+$")


@dataclass(frozen=True)
class CerklSandboxSettings:
    """Settings of the Cerkl sandbox server; :meth:`from_env` reads overrides."""

    client_id: str = "sandbox-client-id"
    client_secret: str = "sandbox-client-secret"
    token_lifetime_seconds: int = 43_200
    default_page_size: int = 100
    max_page_size: int = 1_000
    max_create_batch: int = 100
    # Cerkl's CSV import fills a missing first name from the part of the email before "@".
    # The sandbox does the same on API creates, unless this is True and they get 422.
    require_first_name: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CerklSandboxSettings:
        """Build settings from ``CERKL_SANDBOX_CLIENT_ID``, ``CERKL_SANDBOX_CLIENT_SECRET``
        and ``CERKL_SANDBOX_TOKEN_LIFETIME_SECONDS``; unset variables keep the defaults.

        :raises ValueError: when the token lifetime is not a positive whole number.
        """
        env = os.environ if environ is None else environ
        defaults = cls()
        lifetime_text = env.get("CERKL_SANDBOX_TOKEN_LIFETIME_SECONDS")
        lifetime = defaults.token_lifetime_seconds
        if lifetime_text:
            if not lifetime_text.isdigit() or int(lifetime_text) <= 0:
                raise ValueError(
                    f"invalid CERKL_SANDBOX_TOKEN_LIFETIME_SECONDS {lifetime_text!r}:"
                    " use a whole number of seconds > 0"
                )
            lifetime = int(lifetime_text)
        return cls(
            client_id=env.get("CERKL_SANDBOX_CLIENT_ID", defaults.client_id),
            client_secret=env.get("CERKL_SANDBOX_CLIENT_SECRET", defaults.client_secret),
            token_lifetime_seconds=lifetime,
        )


def endpoint_key(method: str, path: str) -> str | None:
    """Return the counter key ``"<METHOD> <path after /v3/>"`` with numeric ids as ``{id}``.

    Paths outside ``/v3/`` are not counted and return None.
    """
    if not path.startswith(API_PREFIX):
        return None
    segments = path[len(API_PREFIX) :].strip("/").split("/")
    template = "/".join("{id}" if _NUMERIC_SEGMENT.match(part) else part for part in segments)
    return f"{method.upper()} {template}"


def render_error(status: int, code: str, message: str) -> Response:
    """Build the Cerkl error body ``{"error": {"code": ..., "message": ...}}``."""
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def envelope(data: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """Wrap ``data`` in the API v3 template envelope."""
    return {"template": {"version": TEMPLATE_VERSION, "data": data, **extra}}


def serialize_subscriber(row: Mapping[str, Any]) -> dict[str, Any]:
    """Format a subscriber row as the API returns it."""
    status_id = row["subscriber_status_id"]
    privacy_id = row["subscriber_privacy_level_id"]
    return {
        "id": row["id"],
        "email": row["email"],
        "first_name": row["first_name"],
        "last_name": row["last_name"],
        "subscriber_status": {"id": status_id, "description": SUBSCRIBER_STATUSES.get(status_id)},
        "subscriber_privacy_level": {
            "id": privacy_id,
            "description": PRIVACY_LEVELS.get(privacy_id),
        },
        "engagement_score": row["engagement_score"],
        "date_created_utc": row["date_created_utc"],
        "date_modified_utc": row["date_modified_utc"],
    }


def serialize_unsubscribe(row: Mapping[str, Any]) -> dict[str, Any]:
    """Format an unsubscribe row as the API returns it."""
    return {
        "id": row["id"],
        "email": row["email"],
        "first_name": row["first_name"],
        "last_name": row["last_name"],
        "date_unsubscribed_utc": row["date_unsubscribed_utc"],
        "self_unsubscribed": bool(row["self_unsubscribed"]),
        "source": row["source"],
    }


def serialize_segment(row: Mapping[str, Any]) -> dict[str, Any]:
    """Format a segment row as the API returns it."""
    return {
        "id": row["id"],
        "description": row["description"],
        "external_id": row["external_id"],
        "date_created_utc": row["date_created_utc"],
        "date_modified_utc": row["date_modified_utc"],
        "subscriber_count": row.get("subscriber_count", 0),
    }


class TokenRegistry:
    """Issued OAuth access tokens and their expiry by the sandbox clock (in memory)."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._expiry: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def issue(self, lifetime_seconds: int) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._expiry[token] = self._clock() + timedelta(seconds=lifetime_seconds)
        return token

    def is_valid(self, token: str) -> bool:
        with self._lock:
            expiry = self._expiry.get(token)
        return expiry is not None and self._clock() < expiry

    def expire_all(self) -> int:
        """Expire every token now; return how many there were."""
        with self._lock:
            count = len(self._expiry)
            self._expiry.clear()
        return count


Handler = Callable[[Request], Awaitable[Response]]


class CerklSandbox:
    """The route handlers of one Cerkl sandbox server, bound to its store and controls."""

    def __init__(self, data_dir: Path, settings: CerklSandboxSettings) -> None:
        self.data_dir = Path(data_dir)
        self.settings = settings
        self.controls = Controls(
            server_name="cerkl",
            state_dir=self.data_dir,
            render_error=render_error,
            endpoint_key=endpoint_key,
            on_reset=self._reset_store,
        )
        self.store = CerklStore(self.data_dir / "cerkl.sqlite3", self.controls.clock.now)
        self.tokens = TokenRegistry(self.controls.clock.now)

    def _reset_store(self) -> None:
        self.store.reset()

    # Request plumbing

    def api(self, handler: Handler, *, authenticated: bool = True) -> Handler:
        """Wrap a handler with the bearer-token check and the error body of the API."""

        async def endpoint(request: Request) -> Response:
            try:
                if authenticated:
                    self._check_token(request)
                return await handler(request)
            except CerklApiError as exc:
                logger.debug(
                    "%s %s -> %d %s", request.method, request.url.path, exc.status, exc.code
                )
                response = render_error(exc.status, exc.code, exc.message)
                if exc.status == 401:
                    response.headers["WWW-Authenticate"] = "Bearer"
                return response
            except OverflowError:
                # SQLite integers are 64-bit, so a larger id in the path or body cannot exist.
                return render_error(400, "INVALID_ID", "An id is out of range (max 2^63 - 1).")
            except Exception:
                logger.exception("Unhandled error on %s %s", request.method, request.url.path)
                return render_error(500, "INTERNAL_ERROR", "Internal sandbox error; see its log.")

        return endpoint

    def _check_token(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise CerklApiError(
                401, "INVALID_TOKEN", "Missing bearer token: send Authorization: Bearer <token>."
            )
        if not self.tokens.is_valid(token.strip()):
            raise CerklApiError(
                401, "INVALID_TOKEN", "The access token is invalid or expired; request a new one."
            )

    async def _read_envelope(self, request: Request) -> list[Any]:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError as exc:  # JSONDecodeError, or UnicodeDecodeError for non-UTF-8 bytes
            raise CerklApiError(
                400, "INVALID_JSON", "The request body is not valid UTF-8 JSON."
            ) from exc
        template = body.get("template") if isinstance(body, dict) else None
        if not isinstance(template, dict) or not isinstance(template.get("data"), list):
            raise CerklApiError(
                400,
                "INVALID_TEMPLATE",
                'The request body must be {"template": {"version": "3.0", "data": [...]}}.',
            )
        if template.get("version") != TEMPLATE_VERSION:
            raise CerklApiError(
                400,
                "UNSUPPORTED_TEMPLATE_VERSION",
                f"Template version {template.get('version')!r} is not supported; use "
                f'"{TEMPLATE_VERSION}".',
            )
        if not template["data"]:
            raise CerklApiError(400, "EMPTY_DATA", "template.data is empty; send one object.")
        return template["data"]

    async def _read_single_object(self, request: Request) -> dict[str, Any]:
        data = await self._read_envelope(request)
        if len(data) != 1 or not isinstance(data[0], dict):
            raise CerklApiError(
                400,
                "INVALID_TEMPLATE",
                f"template.data must contain exactly one object on this endpoint, not {len(data)}.",
            )
        return data[0]

    def _paging(self, request: Request) -> tuple[int, int]:
        page = _query_int(request, "page", default=1)
        page_size = _query_int(request, "page_size", default=self.settings.default_page_size)
        if page < 1:
            raise CerklApiError(400, "INVALID_PAGE", f"Invalid page {page}: pages start at 1.")
        if not 1 <= page_size <= self.settings.max_page_size:
            raise CerklApiError(
                400,
                "INVALID_PAGE_SIZE",
                f"Invalid page_size {page_size}: use 1 to {self.settings.max_page_size}.",
            )
        return page, page_size

    def _page_response(
        self, request: Request, fetch: Callable[[int, int], list[dict[str, Any]]]
    ) -> Response:
        page, page_size = self._paging(request)
        rows = fetch((page - 1) * page_size, page_size)
        return JSONResponse(envelope(rows, page=page, page_size=page_size))

    # Authentication

    async def token(self, request: Request) -> Response:
        client_id, client_secret = _basic_credentials(request.headers.get("authorization", ""))
        id_ok = hmac.compare_digest(client_id.encode(), self.settings.client_id.encode())
        secret_ok = hmac.compare_digest(
            client_secret.encode(), self.settings.client_secret.encode()
        )
        if not (id_ok and secret_ok):
            logger.info("Rejected a token request with wrong client credentials")
            raise CerklApiError(401, "INVALID_CLIENT", "Client id or secret is wrong.")
        form = parse_qs((await request.body()).decode("utf-8", errors="replace"))
        grant_type = form.get("grant_type", [""])[0]
        if grant_type != "client_credentials":
            raise CerklApiError(
                400,
                "UNSUPPORTED_GRANT_TYPE",
                f"Unsupported grant_type {grant_type!r}: send grant_type=client_credentials.",
            )
        lifetime = self.settings.token_lifetime_seconds
        return JSONResponse(
            {
                "access_token": self.tokens.issue(lifetime),
                "token_type": "Bearer",
                "expires_in": lifetime,
            }
        )

    # Subscribers

    async def list_subscribers(self, request: Request) -> Response:
        filters = _parse_filters(request, SUBSCRIBER_FILTER_FIELDS)

        def fetch(offset: int, limit: int) -> list[dict[str, Any]]:
            rows = self.store.list_subscribers(filters, offset=offset, limit=limit)
            return [serialize_subscriber(row) for row in rows]

        return self._page_response(request, fetch)

    async def get_subscriber(self, request: Request) -> Response:
        subscriber_id = request.path_params["subscriber_id"]
        row = self.store.get_subscriber(subscriber_id)
        if row is None:
            raise CerklApiError(
                404, "SUBSCRIBER_NOT_FOUND", f"Subscriber {subscriber_id} not found."
            )
        return JSONResponse(envelope([serialize_subscriber(row)]))

    async def create_subscribers(self, request: Request) -> Response:
        data = await self._read_envelope(request)
        if len(data) > self.settings.max_create_batch:
            raise CerklApiError(
                400,
                "TOO_MANY_OBJECTS",
                f"template.data holds {len(data)} objects; send at most "
                f"{self.settings.max_create_batch} per request.",
            )
        results: list[dict[str, Any]] = []
        failures: list[CerklApiError] = []
        for index, item in enumerate(data):
            try:
                fields = self._subscriber_fields(item, creating=True, index=index)
                results.append(serialize_subscriber(self.store.create_subscriber(fields)))
            except CerklApiError as exc:
                failures.append(exc)
                results.append({"error": {"code": exc.code, "message": exc.message}})
        logger.debug("Created %d of %d subscribers", len(data) - len(failures), len(data))
        if len(data) == 1 and failures:
            raise failures[0]
        return JSONResponse(envelope(results))

    async def update_subscriber(self, request: Request) -> Response:
        subscriber_id = request.path_params["subscriber_id"]
        item = await self._read_single_object(request)
        fields = self._subscriber_fields(item, creating=False, index=0)
        row = self.store.update_subscriber(subscriber_id, fields)
        return JSONResponse(envelope([serialize_subscriber(row)]))

    async def delete_subscriber(self, request: Request) -> Response:
        subscriber_id = request.path_params["subscriber_id"]
        source = request.query_params.get("source", "admin")
        if source not in UNSUBSCRIBE_SOURCES:
            raise CerklApiError(
                400,
                "INVALID_SOURCE",
                f"Invalid source {source!r}: use one of {', '.join(UNSUBSCRIBE_SOURCES)}.",
            )
        row = self.store.unsubscribe(subscriber_id, source=source, self_unsubscribed=False)
        return JSONResponse(envelope([serialize_unsubscribe(row)]))

    def _subscriber_fields(self, item: Any, *, creating: bool, index: int) -> dict[str, Any]:
        """Validate one subscriber object of a create or update into store fields."""
        if not isinstance(item, dict):
            raise CerklApiError(
                400, "INVALID_OBJECT", f"template.data[{index}] must be a JSON object."
            )
        fields: dict[str, Any] = {}

        email = item.get("email")
        if email is None and creating:
            raise CerklApiError(422, "MISSING_REQUIRED_FIELD", "Missing required field email.")
        if email is not None:
            if not isinstance(email, str) or not is_valid_email(email.strip()):
                raise CerklApiError(
                    422,
                    "INVALID_EMAIL",
                    f"template.data[{index}].email is not a valid email address.",
                )
            fields["email"] = email.strip()

        for name in ("first_name", "last_name"):
            if name not in item:
                continue
            value = item[name]
            if value is not None and not isinstance(value, str):
                raise CerklApiError(422, "INVALID_FIELD", f"Field {name} must be a string.")
            if value is not None and len(value) > MAX_NAME_LENGTH:
                raise CerklApiError(
                    422,
                    "FIELD_TOO_LONG",
                    f"Field {name} is longer than {MAX_NAME_LENGTH} characters.",
                )
            fields[name] = value.strip() if value else None

        if creating and not fields.get("first_name"):
            if self.settings.require_first_name:
                raise CerklApiError(
                    422, "MISSING_REQUIRED_FIELD", "Missing required field first_name."
                )
            fields["first_name"] = fields["email"].split("@", 1)[0]

        fields["subscriber_status_id"] = _lookup_id(
            item, "subscriber_status", SUBSCRIBER_STATUSES, "INVALID_SUBSCRIBER_STATUS"
        )
        fields["subscriber_privacy_level_id"] = _lookup_id(
            item, "subscriber_privacy_level", PRIVACY_LEVELS, "INVALID_PRIVACY_LEVEL"
        )
        return fields

    async def list_statuses(self, request: Request) -> Response:
        data = [{"id": key, "description": text} for key, text in SUBSCRIBER_STATUSES.items()]
        return JSONResponse(envelope(data))

    async def list_privacy_levels(self, request: Request) -> Response:
        data = [{"id": key, "description": text} for key, text in PRIVACY_LEVELS.items()]
        return JSONResponse(envelope(data))

    async def list_interests(self, request: Request) -> Response:
        rows = self.store.list_interests(request.path_params["subscriber_id"])
        data = [
            {
                "category": {"id": row["category_id"], "description": row["description"]},
                "rank": row["rank"],
                "score": row["score"],
            }
            for row in rows
        ]
        return JSONResponse(envelope(data))

    # Unsubscribes

    async def list_unsubscribes(self, request: Request) -> Response:
        filters = _parse_filters(request, UNSUBSCRIBE_FILTER_FIELDS)

        def fetch(offset: int, limit: int) -> list[dict[str, Any]]:
            rows = self.store.list_unsubscribes(filters, offset=offset, limit=limit)
            return [serialize_unsubscribe(row) for row in rows]

        return self._page_response(request, fetch)

    async def get_unsubscribe(self, request: Request) -> Response:
        unsubscribe_id = request.path_params["unsubscribe_id"]
        row = self.store.get_unsubscribe(unsubscribe_id)
        if row is None:
            raise CerklApiError(
                404, "UNSUBSCRIBE_NOT_FOUND", f"Unsubscribe {unsubscribe_id} not found."
            )
        return JSONResponse(envelope([serialize_unsubscribe(row)]))

    # Segments

    async def list_segments(self, request: Request) -> Response:
        filters = _parse_filters(request, SEGMENT_FILTER_FIELDS)

        def fetch(offset: int, limit: int) -> list[dict[str, Any]]:
            rows = self.store.list_segments(filters, offset=offset, limit=limit)
            return [serialize_segment(row) for row in rows]

        return self._page_response(request, fetch)

    async def create_segment(self, request: Request) -> Response:
        item = await self._read_single_object(request)
        description = _segment_text(item, "description", required=True)
        external_id = _segment_text(item, "external_id", required=False)
        row = self.store.create_segment(description, external_id)
        logger.info("Created segment %s", row["id"])
        return JSONResponse(envelope([serialize_segment(row)]))

    async def get_segment(self, request: Request) -> Response:
        segment_id = request.path_params["segment_id"]
        row = self.store.get_segment(segment_id)
        if row is None:
            raise CerklApiError(404, "SEGMENT_NOT_FOUND", f"Segment {segment_id} not found.")
        return JSONResponse(envelope([serialize_segment(row)]))

    async def update_segment(self, request: Request) -> Response:
        item = await self._read_single_object(request)
        fields: dict[str, Any] = {}
        if "description" in item:
            fields["description"] = _segment_text(item, "description", required=True)
        if "external_id" in item:
            fields["external_id"] = _segment_text(item, "external_id", required=False)
        if not fields:
            raise CerklApiError(
                422, "MISSING_REQUIRED_FIELD", "Send description and/or external_id to change."
            )
        row = self.store.update_segment(request.path_params["segment_id"], fields)
        return JSONResponse(envelope([serialize_segment(row)]))

    async def list_segment_members(self, request: Request) -> Response:
        segment_id = request.path_params["segment_id"]

        def fetch(offset: int, limit: int) -> list[dict[str, Any]]:
            rows = self.store.list_segment_members(segment_id, offset=offset, limit=limit)
            return [serialize_subscriber(row) for row in rows]

        return self._page_response(request, fetch)

    async def add_segment_member(self, request: Request) -> Response:
        segment_id = request.path_params["segment_id"]
        item = await self._read_single_object(request)
        subscriber_id = item.get("id")
        if isinstance(subscriber_id, bool) or not isinstance(subscriber_id, int):
            raise CerklApiError(
                422,
                "MISSING_REQUIRED_FIELD",
                f"template.data[0].id must be a subscriber id (integer), not {subscriber_id!r}.",
            )
        added = self.store.add_segment_member(segment_id, subscriber_id)
        result = {"segment_id": segment_id, "subscriber_id": subscriber_id, "added": added}
        return JSONResponse(envelope([result]))

    async def remove_segment_member(self, request: Request) -> Response:
        segment_id = request.path_params["segment_id"]
        subscriber_id = request.path_params["subscriber_id"]
        self.store.remove_segment_member(segment_id, subscriber_id)
        result = {"segment_id": segment_id, "subscriber_id": subscriber_id, "removed": True}
        return JSONResponse(envelope([result]))

    # Sandbox controls specific to Cerkl

    async def seed(self, request: Request) -> Response:
        body = await read_json_object(request)
        records = body.get("records")
        if not isinstance(records, dict):
            raise ControlInputError(
                'missing records: send {"records": {"subscribers": [...], "segments": [...]}}'
            )
        try:
            assigned = seed_store(self.store, records)
        except (ValueError, KeyError, TypeError, sqlite3.Error) as exc:
            raise ControlInputError(f"invalid seed records: {exc}") from exc
        return JSONResponse(assigned)

    async def expire_tokens(self, request: Request) -> Response:
        return JSONResponse({"expired": self.tokens.expire_all()})

    async def self_unsubscribe(self, request: Request) -> Response:
        body = await read_json_object(request)
        subscriber_id = body.get("id")
        if isinstance(subscriber_id, bool) or not isinstance(subscriber_id, int):
            raise ControlInputError(f'invalid id {subscriber_id!r}: send {{"id": <subscriber id>}}')
        try:
            row = self.store.unsubscribe(subscriber_id, source="subscriber", self_unsubscribed=True)
        except CerklApiError as exc:
            return render_error(exc.status, exc.code, exc.message)
        return JSONResponse(serialize_unsubscribe(row))

    async def admin_edit_subscriber(self, request: Request) -> Response:
        subscriber_id = request.path_params["subscriber_id"]
        body = await read_json_object(request)
        fields: dict[str, Any] = {}
        try:
            for name in ("first_name", "last_name"):
                if name in body:
                    value = body[name]
                    if value is not None and not isinstance(value, str):
                        raise ControlInputError(f"invalid {name}: use a string or null")
                    if value is not None and len(value) > MAX_NAME_LENGTH:
                        raise ControlInputError(
                            f"invalid {name}: longer than {MAX_NAME_LENGTH} characters"
                        )
                    fields[name] = value
            if "email" in body:
                email = body["email"]
                if not isinstance(email, str) or not is_valid_email(email.strip()):
                    raise CerklApiError(422, "INVALID_EMAIL", "email is not a valid address.")
                fields["email"] = email.strip()
            if "engagement_score" in body:
                score = body["engagement_score"]
                is_number = isinstance(score, int | float) and not isinstance(score, bool)
                if not is_number or not 0 <= score <= 100:
                    raise ControlInputError(f"invalid engagement_score {score!r}: use 0 to 100")
                fields["engagement_score"] = score
            interests = body.get("interests")
            if interests is not None and not isinstance(interests, list):
                raise ControlInputError(
                    "invalid interests: send a list of {category_id, rank, score}"
                )
            row = self.store.update_subscriber(subscriber_id, fields, interests=interests)
        except CerklApiError as exc:
            return render_error(exc.status, exc.code, exc.message)
        except ControlInputError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise ControlInputError(
                f"invalid interests: each needs category_id, rank and score ({exc})"
            ) from exc
        return JSONResponse(serialize_subscriber(row))

    def control_routes(self) -> list[Route]:
        wrap = self.controls.wrap_endpoint
        return [
            Route("/__sandbox__/seed", wrap(self.seed), methods=["POST"]),
            Route("/__sandbox__/tokens/expire", wrap(self.expire_tokens), methods=["POST"]),
            Route("/__sandbox__/self_unsubscribe", wrap(self.self_unsubscribe), methods=["POST"]),
            Route(
                "/__sandbox__/subscriber/{subscriber_id:int}",
                wrap(self.admin_edit_subscriber),
                methods=["PUT"],
            ),
        ]

    def api_routes(self) -> list[Route]:
        api = self.api
        return [
            Route("/v3/oauth/Token", api(self.token, authenticated=False), methods=["POST"]),
            Route("/v3/subscriber", api(self.list_subscribers), methods=["GET"]),
            Route("/v3/subscriber", api(self.create_subscribers), methods=["POST"]),
            Route("/v3/subscriber/{subscriber_id:int}", api(self.get_subscriber), methods=["GET"]),
            Route(
                "/v3/subscriber/{subscriber_id:int}", api(self.update_subscriber), methods=["PUT"]
            ),
            Route(
                "/v3/subscriber/{subscriber_id:int}",
                api(self.delete_subscriber),
                methods=["DELETE"],
            ),
            Route(
                "/v3/subscriber/{subscriber_id:int}/subscriber_interest",
                api(self.list_interests),
                methods=["GET"],
            ),
            Route("/v3/subscriber_status", api(self.list_statuses), methods=["GET"]),
            Route("/v3/subscriber_privacy_level", api(self.list_privacy_levels), methods=["GET"]),
            Route("/v3/unsubscribe", api(self.list_unsubscribes), methods=["GET"]),
            Route(
                "/v3/unsubscribe/{unsubscribe_id:int}", api(self.get_unsubscribe), methods=["GET"]
            ),
            Route("/v3/segment", api(self.list_segments), methods=["GET"]),
            Route("/v3/segment", api(self.create_segment), methods=["POST"]),
            Route("/v3/segment/{segment_id:int}", api(self.get_segment), methods=["GET"]),
            Route("/v3/segment/{segment_id:int}", api(self.update_segment), methods=["PUT"]),
            Route(
                "/v3/segment/{segment_id:int}/subscriber",
                api(self.list_segment_members),
                methods=["GET"],
            ),
            Route(
                "/v3/segment/{segment_id:int}/subscriber",
                api(self.add_segment_member),
                methods=["POST"],
            ),
            Route(
                "/v3/segment/{segment_id:int}/subscriber/{subscriber_id:int}",
                api(self.remove_segment_member),
                methods=["DELETE"],
            ),
        ]


def seed_store(store: CerklStore, records: Mapping[str, Any]) -> dict[str, Any]:
    """Insert seed records into ``store`` in dependency order and return the assigned ids.

    :param records: optional lists under ``categories``, ``subscribers``, ``unsubscribes``,
        ``interests`` and ``segments`` in the shapes of the ``CerklStore.insert_*`` methods.
    :return: ids per collection, and the number of interest rows under ``interests``.
    :raises ValueError: for an unknown collection name or a record the store rejects.
    """
    known = ("categories", "subscribers", "unsubscribes", "interests", "segments")
    unknown = sorted(set(records) - set(known))
    if unknown:
        raise ValueError(f"unknown collections {unknown}: use {', '.join(known)}")
    return {
        "categories": store.insert_categories(records.get("categories") or []),
        "subscribers": store.insert_subscribers(records.get("subscribers") or []),
        "unsubscribes": store.insert_unsubscribes(records.get("unsubscribes") or []),
        "interests": store.insert_interests(records.get("interests") or []),
        "segments": store.insert_segments(records.get("segments") or []),
    }


def _basic_credentials(header: str) -> tuple[str, str]:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise CerklApiError(
            401,
            "INVALID_CLIENT",
            "Missing client credentials: send HTTP Basic auth with the client id and secret.",
        )
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise CerklApiError(
            401, "INVALID_CLIENT", "The Basic credentials are not valid base64."
        ) from exc
    client_id, separator, client_secret = decoded.partition(":")
    if not separator:
        raise CerklApiError(
            401, "INVALID_CLIENT", "The Basic credentials must be client_id:client_secret."
        )
    return client_id, client_secret


def _query_int(request: Request, name: str, *, default: int) -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError as exc:
        raise CerklApiError(
            400, f"INVALID_{name.upper()}", f"Invalid {name} {text!r}: use a whole number."
        ) from exc


def _parse_filters(request: Request, allowed_fields: tuple[str, ...]) -> list[Filter]:
    """Parse ``filters_json`` into filters on the allowed fields.

    :raises CerklApiError: 400 INVALID_FILTER naming the field, operator or value.
    """
    text = request.query_params.get("filters_json")
    if not text:
        return []
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CerklApiError(
            400, "INVALID_FILTER", f"filters_json is not valid JSON: {exc.msg}."
        ) from exc
    if not isinstance(parsed, dict):
        raise CerklApiError(
            400, "INVALID_FILTER", 'filters_json must be an object: {"<field>": {"<op>": value}}.'
        )
    filters: list[Filter] = []
    for field, conditions in parsed.items():
        if field not in allowed_fields:
            raise CerklApiError(
                400,
                "INVALID_FILTER",
                f"Field {field!r} cannot be filtered here; use one of {', '.join(allowed_fields)}.",
            )
        if not isinstance(conditions, dict) or not conditions:
            raise CerklApiError(
                400,
                "INVALID_FILTER",
                f'Filter on {field} must be an object such as {{"gt": value}}.',
            )
        for operator, value in conditions.items():
            filters.append(_parse_condition(field, operator, value))
    return filters


def _parse_condition(field: str, operator: str, value: Any) -> Filter:
    if operator not in FILTER_OPERATORS:
        raise CerklApiError(
            400,
            "INVALID_FILTER",
            f"Unknown operator {operator!r} on {field}; use one of {', '.join(FILTER_OPERATORS)}.",
        )
    if field.startswith("date_"):
        if not isinstance(value, str) or not DATETIME_PATTERN.match(value):
            raise CerklApiError(
                400,
                "INVALID_FILTER",
                f"Invalid {field} value {value!r}: use YYYY-MM-DD HH:MM:SS in UTC.",
            )
    else:
        if operator != "eq":
            raise CerklApiError(400, "INVALID_FILTER", f"Field {field} takes only the eq operator.")
        if not isinstance(value, str):
            raise CerklApiError(400, "INVALID_FILTER", f"Filter value of {field} must be a string.")
    return Filter(field=field, operator=operator, value=value)


def _lookup_id(item: Mapping[str, Any], name: str, known: Mapping[int, str], code: str) -> int:
    if name not in item or item[name] is None:
        raise CerklApiError(
            422,
            "MISSING_REQUIRED_FIELD",
            f'Missing required field {name}: send {{"{name}": {{"id": n}}}} on every create and'
            " update.",
        )
    value = item[name]
    item_id = value.get("id") if isinstance(value, dict) else None
    if isinstance(item_id, bool) or not isinstance(item_id, int) or item_id not in known:
        raise CerklApiError(
            422,
            code,
            f'Invalid {name} {value!r}: use {{"id": n}} with n in {sorted(known)}.',
        )
    return item_id


def _segment_text(item: Mapping[str, Any], name: str, *, required: bool) -> str | None:
    value = item.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise CerklApiError(422, "MISSING_REQUIRED_FIELD", f"Missing required field {name}.")
        return None
    if not isinstance(value, str):
        raise CerklApiError(422, "INVALID_FIELD", f"Field {name} must be a string.")
    if len(value) > MAX_NAME_LENGTH:
        raise CerklApiError(
            422, "FIELD_TOO_LONG", f"Field {name} is longer than {MAX_NAME_LENGTH} characters."
        )
    return value.strip()


def create_app(data_dir: Path, *, settings: CerklSandboxSettings | None = None) -> Starlette:
    """Create the Cerkl sandbox app over the data folder ``data_dir``.

    :param data_dir: folder of ``cerkl.sqlite3`` and the control settings; created if missing.
    :param settings: server settings; defaults to :meth:`CerklSandboxSettings.from_env`.
    :return: the Starlette app, with the sandbox state on ``app.state.sandbox``.
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    sandbox = CerklSandbox(data_dir, settings or CerklSandboxSettings.from_env())

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 405:
            return render_error(
                405, "METHOD_NOT_ALLOWED", f"{request.method} is not allowed on this path."
            )
        return render_error(status, "NOT_FOUND", f"No route {request.url.path}.")

    app = Starlette(
        routes=sandbox.api_routes() + sandbox.controls.routes(sandbox.control_routes()),
        middleware=[Middleware(sandbox.controls.middleware)],
        exception_handlers={HTTPException: not_found},
    )
    app.state.sandbox = sandbox
    logger.info("Cerkl sandbox serves data from %s", data_dir)
    return app
