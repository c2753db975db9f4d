"""The Salesforce sandbox server: a Starlette app that serves the Salesforce APIs on loopback.

It serves the OAuth 2.0 token endpoint and the SOAP login, the REST API under
``/services/data/vXX.X/`` (59.0 and later) including sObject Collections and Bulk API 2.0,
and the ``/__sandbox__/`` control routes. State lives in ``<data_dir>/salesforce.sqlite3``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from include.sandbox.controls import Controls
from include.sandbox.salesforce import records
from include.sandbox.salesforce.auth import USER_ID as SANDBOX_USER_ID
from include.sandbox.salesforce.auth import (
    Authenticator,
    OAuthError,
    SessionManager,
    ensure_jwt_key_pair,
)
from include.sandbox.salesforce.bulk import BulkJobs
from include.sandbox.salesforce.errors import SalesforceApiError, not_found
from include.sandbox.salesforce.rest import RestApi
from include.sandbox.salesforce.settings import SalesforceSandboxSettings
from include.sandbox.salesforce.store import SalesforceStore

logger = logging.getLogger(__name__)

SERVER_NAME = "salesforce"
MIN_API_VERSION = 59.0
MAX_API_VERSION = 63.0
MAX_URI_BYTES = 16_384
API_LIMIT_KEY = "api_limit"
INGEST_RESULT_RESOURCES = ("successfulResults", "failedResults", "unprocessedrecords")
_VERSION_SEGMENT = re.compile(r"^v(\d+\.\d)$")
_BATCH_SIZE = re.compile(r"batchSize\s*=\s*(\d+)", re.IGNORECASE)


def render_error(status: int, code: str, message: str) -> Response:
    """Build a Salesforce REST error response: ``[{"message": ..., "errorCode": ...}]``."""
    return JSONResponse([{"message": message, "errorCode": code}], status_code=status)


def endpoint_key(method: str, path: str) -> str | None:
    """Return the counter key of a request, or None for paths outside ``/services/``.

    The API version is written ``vXX.X``, the SOAP version ``{version}``, and every record
    Id, external Id value, job id and query locator segment ``{id}``.
    """
    if not path.startswith("/services/"):
        return None
    if len(path) > len("/services/data/") and path.endswith("/"):
        path = path.rstrip("/")
    segments = path.split("/")
    if path.startswith("/services/Soap/u/") and len(segments) > 4:
        segments[4] = "{version}"
        return f"{method} {'/'.join(segments)}"
    if not path.startswith("/services/data/") or len(segments) < 4:
        return f"{method} {path}"
    if _VERSION_SEGMENT.match(segments[3]):
        segments[3] = "vXX.X"
    rest = segments[4:]
    for index, segment in _id_positions(rest):
        if segment:
            rest[index] = "{id}"
    return f"{method} {'/'.join(segments[:4] + rest)}"


def _id_positions(rest: list[str]) -> list[tuple[int, str]]:
    positions: list[tuple[int, str]] = []
    if len(rest) >= 2 and rest[0] in ("query", "queryAll"):
        positions.append((1, rest[1]))
    if (
        len(rest) >= 3
        and rest[0] == "sobjects"
        and rest[2] not in ("describe", "updated", "deleted", "")
    ):
        if len(rest) >= 4 and rest[3]:
            positions.append((3, rest[3]))
        else:
            positions.append((2, rest[2]))
    if len(rest) >= 3 and rest[0] == "jobs" and rest[1] in ("ingest", "query"):
        positions.append((2, rest[2]))
    return positions


class SalesforceSandbox:
    """The server's state: store, sessions, controls, REST and Bulk handlers."""

    def __init__(self, data_dir: Path, settings: SalesforceSandboxSettings) -> None:
        self.data_dir = Path(data_dir)
        self.settings = settings
        self.controls = Controls(
            server_name=SERVER_NAME,
            state_dir=self.data_dir,
            render_error=render_error,
            endpoint_key=endpoint_key,
            on_reset=self.reset,
        )
        self.clock: Callable[[], datetime] = self.controls.clock.now
        self.store = SalesforceStore(self.data_dir / "salesforce.sqlite3", self.clock)
        _, public_key_path = ensure_jwt_key_pair(self.data_dir)
        self.sessions = SessionManager(self.store, self.clock, settings.session_idle_seconds)
        self.authenticator = Authenticator(settings, self.sessions, public_key_path.read_bytes())
        self.rest = RestApi(self.store, settings.query_page_size)
        self.bulk = BulkJobs(self.store, SANDBOX_USER_ID)

    def reset(self) -> None:
        """Empty the store, sessions, cursors and the API usage (control route hook)."""
        self.store.reset()
        self.rest.cursors.clear()
        self.sessions.expire_all()
        self.store.set_meta(API_LIMIT_KEY, self._default_limit())
        self.bulk.reset_controls()

    # Daily API allowance

    def _default_limit(self) -> dict[str, Any]:
        return {"max": self.settings.api_daily_max, "used": 0, "day": self._today()}

    def _today(self) -> str:
        return self.clock().date().isoformat()

    def api_limit(self) -> dict[str, Any]:
        """Return the allowance ``{"max", "used", "day"}``, restarting the count each day.

        NOTE: Salesforce counts a rolling 24 hours, but the sandbox restarts the count at
        midnight UTC of the sandbox clock.
        """
        limit = self.store.get_meta(API_LIMIT_KEY) or self._default_limit()
        if limit.get("day") != self._today():
            limit = {"max": limit["max"], "used": 0, "day": self._today()}
            self.store.set_meta(API_LIMIT_KEY, limit)
        return limit

    def set_api_limit(self, max_requests: int | None, used: int | None) -> dict[str, Any]:
        """Change the allowance and the count of used requests."""
        limit = self.api_limit()
        if max_requests is not None:
            limit["max"] = max_requests
        if used is not None:
            limit["used"] = used
        self.store.set_meta(API_LIMIT_KEY, limit)
        return limit

    def spend_api_request(self) -> tuple[bool, str]:
        """Count one REST request and return (allowed, ``Sforce-Limit-Info`` value)."""
        limit = self.api_limit()
        if limit["used"] >= limit["max"]:
            return False, f"api-usage={limit['used']}/{limit['max']}"
        limit["used"] += 1
        self.store.set_meta(API_LIMIT_KEY, limit)
        return True, f"api-usage={limit['used']}/{limit['max']}"


def _error_response(exc: SalesforceApiError) -> Response:
    return JSONResponse(exc.rest_body(), status_code=exc.status)


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SalesforceApiError(
            400, "JSON_PARSER_ERROR", f"Invalid JSON at position {exc.pos}: {exc.msg}"
        ) from exc


def _batch_size(request: Request) -> int | None:
    header = request.headers.get("sforce-query-options")
    match = _BATCH_SIZE.search(header or "")
    return int(match.group(1)) if match else None


def _split_list(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _json_dict(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise SalesforceApiError(400, "JSON_PARSER_ERROR", "The request body must be an object")
    return body


async def _dispatch_rest(
    sandbox: SalesforceSandbox, request: Request, version: str, parts: list[str]
) -> Response:
    rest = sandbox.rest
    method = request.method
    query = request.query_params
    head = parts[0] if parts else ""

    if not parts and method == "GET":
        base = f"/services/data/v{version}"
        resources = ["sobjects", "query", "queryAll", "limits", "composite", "jobs"]
        return JSONResponse({name: f"{base}/{name}" for name in resources})
    if head == "limits" and len(parts) == 1 and method == "GET":
        limit = sandbox.api_limit()
        return JSONResponse(
            {
                "DailyApiRequests": {
                    "Max": limit["max"],
                    "Remaining": max(0, limit["max"] - limit["used"]),
                }
            }
        )
    if head in ("query", "queryAll") and method == "GET":
        if len(parts) == 1:
            statement = query.get("q")
            if statement is None:
                raise SalesforceApiError(400, "MALFORMED_QUERY", "The q parameter is required")
            status, body = rest.query(
                statement,
                include_deleted=head == "queryAll",
                api_version=version,
                batch_size=_batch_size(request),
            )
            return JSONResponse(body, status_code=status)
        if len(parts) == 2:
            status, body = rest.query_more(parts[1], version, _batch_size(request))
            return JSONResponse(body, status_code=status)
    if head == "sobjects":
        return await _dispatch_sobjects(sandbox, request, version, parts[1:])
    if head == "composite" and len(parts) >= 2 and parts[1] == "sobjects":
        return await _dispatch_collections(sandbox, request, version, parts[2:])
    if head == "jobs" and len(parts) >= 2 and parts[1] in ("ingest", "query"):
        return await _dispatch_jobs(sandbox, request, version, parts[1], parts[2:])
    raise not_found()


async def _dispatch_sobjects(
    sandbox: SalesforceSandbox, request: Request, version: str, parts: list[str]
) -> Response:
    rest = sandbox.rest
    method = request.method
    query = request.query_params
    status: int
    body: Any
    if not parts and method == "GET":
        status, body = rest.describe_global()
    elif len(parts) == 1 and method == "GET":
        status, body = rest.basic_info(parts[0])
    elif len(parts) == 1 and method == "POST":
        status, body = rest.create(parts[0], _json_dict(await _json_body(request)))
    elif len(parts) == 2 and parts[1] == "describe" and method == "GET":
        status, body = rest.describe(parts[0])
    elif len(parts) == 2 and parts[1] == "updated" and method == "GET":
        status, body = rest.updated(parts[0], query.get("start"), query.get("end"))
    elif len(parts) == 2 and parts[1] == "deleted" and method == "GET":
        status, body = rest.deleted(parts[0], query.get("start"), query.get("end"))
    elif len(parts) == 2 and method == "GET":
        status, body = rest.retrieve(parts[0], parts[1], _split_list(query.get("fields")), version)
    elif len(parts) == 2 and method == "PATCH":
        status, body = rest.update(parts[0], parts[1], _json_dict(await _json_body(request)))
    elif len(parts) == 2 and method == "DELETE":
        status, body = rest.delete(parts[0], parts[1])
    elif len(parts) == 3 and method == "GET":
        status, body = rest.retrieve_by_external_id(parts[0], parts[1], parts[2], version)
    elif len(parts) == 3 and method == "PATCH":
        status, body = rest.upsert(
            parts[0], parts[1], parts[2], _json_dict(await _json_body(request))
        )
    else:
        raise not_found()
    if body is None:
        return Response(status_code=status)
    return JSONResponse(body, status_code=status)


async def _dispatch_collections(
    sandbox: SalesforceSandbox, request: Request, version: str, parts: list[str]
) -> Response:
    rest = sandbox.rest
    method = request.method
    query = request.query_params
    if not parts and method in ("POST", "PATCH"):
        status, body = rest.collection_write(method, await _json_body(request))
    elif not parts and method == "DELETE":
        all_or_none = query.get("allOrNone", "false").lower() == "true"
        status, body = rest.collection_delete(_split_list(query.get("ids")), all_or_none)
    elif len(parts) == 1 and method in ("GET", "POST"):
        ids = _split_list(query.get("ids"))
        fields = _split_list(query.get("fields"))
        if method == "POST":
            payload = _json_dict(await _json_body(request))
            ids = list(payload.get("ids") or [])
            fields = list(payload.get("fields") or [])
        status, body = rest.collection_retrieve(parts[0], ids, fields, version)
    elif len(parts) == 2 and method == "PATCH":
        status, body = rest.collection_upsert(parts[0], parts[1], await _json_body(request))
    else:
        raise not_found()
    return JSONResponse(body, status_code=status)


async def _dispatch_jobs(
    sandbox: SalesforceSandbox, request: Request, version: str, kind: str, parts: list[str]
) -> Response:
    bulk = sandbox.bulk
    method = request.method
    job_type = "V2Ingest" if kind == "ingest" else "V2Query"
    if not parts and method == "POST":
        body = _json_dict(await _json_body(request))
        if kind == "ingest":
            return JSONResponse(bulk.create_ingest(body, version))
        return JSONResponse(bulk.create_query(body, version))
    if len(parts) == 1:
        job_id = parts[0]
        if method == "GET":
            return JSONResponse(bulk.get_job(job_id, job_type))
        if method == "PATCH":
            body = _json_dict(await _json_body(request))
            return JSONResponse(bulk.set_state(job_id, job_type, str(body.get("state"))))
        if method == "DELETE":
            bulk.delete_job(job_id, job_type)
            return Response(status_code=204)
    if len(parts) == 2 and kind == "ingest":
        job_id, resource = parts
        if resource == "batches" and method == "PUT":
            bulk.upload(job_id, await request.body())
            return Response(status_code=201)
        # Salesforce documents "unprocessedrecords"; simple-salesforce 1.12 sends
        # "unprocessedRecords", and both reach the same resource.
        results = {name.lower(): name for name in INGEST_RESULT_RESOURCES}
        if resource.lower() in results and method == "GET":
            csv_text = bulk.ingest_results(job_id, results[resource.lower()])
            return Response(csv_text, media_type="text/csv")
    if len(parts) == 2 and kind == "query" and parts[1] == "results" and method == "GET":
        max_records_text = request.query_params.get("maxRecords")
        max_records = int(max_records_text) if max_records_text else None
        if max_records is not None and max_records < 1:
            raise SalesforceApiError(400, "INVALIDJOB", "maxRecords must be a positive number")
        text, count, locator = bulk.query_results(
            parts[0], request.query_params.get("locator"), max_records
        )
        return Response(
            text,
            media_type="text/csv",
            headers={"Sforce-NumberOfRecords": str(count), "Sforce-Locator": locator},
        )
    raise not_found()


def _bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() in ("bearer", "oauth") and token:
        return token.strip()
    return request.headers.get("x-sfdc-session")


def _make_rest_endpoint(sandbox: SalesforceSandbox) -> Callable[[Request], Awaitable[Response]]:
    async def rest_endpoint(request: Request) -> Response:
        version_text = request.path_params["version"]
        try:
            version = float(version_text)
        except ValueError:
            version = 0.0
        if not MIN_API_VERSION <= version <= MAX_API_VERSION or "." not in version_text:
            return _error_response(not_found())

        token = _bearer_token(request)
        if token is None or not sandbox.sessions.touch(token):
            return render_error(401, "INVALID_SESSION_ID", "Session expired or invalid")

        allowed, limit_info = sandbox.spend_api_request()
        if not allowed:
            response = render_error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        else:
            parts = [part for part in request.path_params.get("rest", "").split("/") if part]
            try:
                response = await _dispatch_rest(sandbox, request, version_text, parts)
            except SalesforceApiError as exc:
                logger.info("REST %s returned %s", request.method, exc.error_code)
                response = _error_response(exc)
        response.headers["Sforce-Limit-Info"] = limit_info
        return response

    return rest_endpoint


def _make_auth_endpoints(
    sandbox: SalesforceSandbox,
) -> tuple[Callable[[Request], Awaitable[Response]], Callable[[Request], Awaitable[Response]]]:
    async def token_endpoint(request: Request) -> Response:
        form = await request.form()
        fields = {key: str(value) for key, value in form.items()}
        try:
            body = sandbox.authenticator.token_response(
                fields, request.headers.get("authorization")
            )
        except OAuthError as exc:
            logger.info("OAuth token request rejected: %s", exc.error)
            return JSONResponse(
                {"error": exc.error, "error_description": exc.description}, status_code=400
            )
        return JSONResponse(body)

    async def soap_endpoint(request: Request) -> Response:
        status, envelope = sandbox.authenticator.soap_login(
            await request.body(), request.path_params["version"]
        )
        if status != 200:
            logger.info("SOAP login rejected")
        return Response(envelope, status_code=status, media_type="text/xml")

    return token_endpoint, soap_endpoint


async def _versions_endpoint(request: Request) -> Response:
    versions = []
    version = MIN_API_VERSION
    while version <= MAX_API_VERSION:
        versions.append(
            {
                "label": f"API {version:.1f}",
                "url": f"/services/data/v{version:.1f}",
                "version": f"{version:.1f}",
            }
        )
        version += 1.0
    return JSONResponse(versions)


def _control_routes(sandbox: SalesforceSandbox) -> list[Route]:
    def guarded(
        handler: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except SalesforceApiError as exc:
                logger.info("Control route %s failed: %s", request.url.path, exc.error_code)
                return _error_response(exc)
            except (KeyError, ValueError, TypeError) as exc:
                logger.info("Control route %s rejected an invalid body", request.url.path)
                return render_error(400, "INVALID_CONTROL_REQUEST", f"invalid request body: {exc}")

        return endpoint

    async def expire_sessions(request: Request) -> Response:
        return JSONResponse({"expired": sandbox.sessions.expire_all()})

    async def api_limit(request: Request) -> Response:
        if request.method == "PUT":
            body = _json_dict(await _json_body(request))
            for name in ("max", "used"):
                value = body.get(name)
                if value is not None and (
                    isinstance(value, bool) or not isinstance(value, int) or value < 0
                ):
                    raise ValueError(f"invalid {name} {value!r}: use a whole number >= 0")
            return JSONResponse(sandbox.set_api_limit(body.get("max"), body.get("used")))
        return JSONResponse(sandbox.api_limit())

    async def merge(request: Request) -> Response:
        body = _json_dict(await _json_body(request))
        with records.transaction(sandbox.store):
            merged = records.merge_records(
                sandbox.store,
                str(body["sobject"]),
                str(body["master_id"]),
                [str(item) for item in body["merged_ids"]],
            )
        return JSONResponse({"merged_ids": merged})

    async def record_faults(request: Request) -> Response:
        if request.method == "DELETE":
            sandbox.store.record_faults.clear()
        elif request.method == "POST":
            body = _json_dict(await _json_body(request))
            times = body.get("times", 1)
            if isinstance(times, bool) or not isinstance(times, int) or times < 1:
                raise ValueError(f"invalid times {times!r}: use a whole number >= 1")
            ids = records.add_record_fault(
                sandbox.store,
                str(body["sobject"]),
                [str(item) for item in body["ids"]],
                str(body.get("error_code") or "UNABLE_TO_LOCK_ROW"),
                times,
            )
            return JSONResponse({"ids": ids})
        faults = [
            {"sobject": key[0], "id": key[1], "error_code": value[0], "remaining": value[1]}
            for key, value in sandbox.store.record_faults.items()
        ]
        return JSONResponse({"record_faults": faults})

    async def bulk_ingest(request: Request) -> Response:
        if request.method == "PUT":
            body = _json_dict(await _json_body(request))
            return JSONResponse(
                sandbox.bulk.set_ingest_controls(
                    body.get("in_progress_polls"), body.get("result_order")
                )
            )
        return JSONResponse(sandbox.bulk.ingest_controls())

    async def seed(request: Request) -> Response:
        body = _json_dict(await _json_body(request))
        seeded = {}
        for sobject, items in _json_dict(body.get("records", {})).items():
            seeded[sobject] = sandbox.store.insert_records(sobject, items)
        return JSONResponse({"ids": seeded})

    return [
        Route("/__sandbox__/sessions/expire", guarded(expire_sessions), methods=["POST"]),
        Route("/__sandbox__/api_limit", guarded(api_limit), methods=["GET", "PUT"]),
        Route("/__sandbox__/merge", guarded(merge), methods=["POST"]),
        Route(
            "/__sandbox__/record_faults",
            guarded(record_faults),
            methods=["GET", "POST", "DELETE"],
        ),
        Route("/__sandbox__/seed", guarded(seed), methods=["POST"]),
        Route("/__sandbox__/bulk_ingest", guarded(bulk_ingest), methods=["GET", "PUT"]),
    ]


def _uri_length_guard(app: ASGIApp) -> ASGIApp:
    """Return 414 for a request URI (path and query) longer than Salesforce's 16,384 bytes."""

    async def guarded_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw_path = scope.get("raw_path") or scope["path"].encode()
            query_string = scope.get("query_string", b"")
            length = len(raw_path) + (len(query_string) + 1 if query_string else 0)
            if length > MAX_URI_BYTES:
                response = render_error(
                    414,
                    "URI_TOO_LONG",
                    f"The request URI is {length} bytes, over the limit of {MAX_URI_BYTES}. "
                    "Send fewer values per request.",
                )
                await response(scope, receive, send)
                return
        await app(scope, receive, send)

    return guarded_app


def create_app(data_dir: Path, *, settings: SalesforceSandboxSettings | None = None) -> Starlette:
    """Build the Salesforce sandbox app on a data folder.

    :param data_dir: folder of ``salesforce.sqlite3``, the JWT key pair and control settings;
        created when missing.
    :param settings: credentials and limits; default :meth:`SalesforceSandboxSettings.from_env`.
    :return: the ASGI app; ``app.state.sandbox`` is the :class:`SalesforceSandbox`.
    """
    sandbox = SalesforceSandbox(Path(data_dir), settings or SalesforceSandboxSettings.from_env())
    token_endpoint, soap_endpoint = _make_auth_endpoints(sandbox)
    methods = ["GET", "POST", "PATCH", "PUT", "DELETE"]
    routes = [
        *sandbox.controls.routes(_control_routes(sandbox)),
        Route("/services/oauth2/token", token_endpoint, methods=["POST"]),
        Route("/services/Soap/u/{version}", soap_endpoint, methods=["POST"]),
        Route("/services/data", _versions_endpoint, methods=["GET"]),
        Route("/services/data/", _versions_endpoint, methods=["GET"]),
        Route("/services/data/v{version}", _make_rest_endpoint(sandbox), methods=methods),
        Route(
            "/services/data/v{version}/{rest:path}", _make_rest_endpoint(sandbox), methods=methods
        ),
    ]
    app = Starlette(routes=routes)
    app.state.sandbox = sandbox
    app.add_middleware(_ControlsMiddleware, sandbox=sandbox)
    logger.info("Salesforce sandbox app created on %s", data_dir)
    return app


class _ControlsMiddleware:
    """Starlette middleware adapter: the URI guard inside the shared controls middleware."""

    def __init__(self, app: ASGIApp, sandbox: SalesforceSandbox) -> None:
        self.app = sandbox.controls.middleware(_uri_length_guard(app))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


__all__ = ["SalesforceSandbox", "create_app", "endpoint_key", "render_error"]
