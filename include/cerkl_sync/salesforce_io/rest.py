"""Send Salesforce REST requests on a ``SalesforceHook`` connection, with retries.

The hook's ``simple_salesforce.Salesforce`` object does the login and supplies the instance
URL, API version and auth headers. :class:`RestSession` sends the REST requests on the hook's
``requests.Session`` itself. It does not call simple-salesforce's request methods, because
on an expired session those log in again up to three times per call (``Salesforce.query``)
or without bound (``SFType`` methods), and their exceptions drop the response headers
(``Retry-After``, ``Sforce-Limit-Info``).

Failure handling, per request:

- HTTP 401 (``INVALID_SESSION_ID``): the hook's cached connection is dropped, a fresh one
  logs in, and the request is sent once more. A second 401 right after that raises
  :class:`SalesforceAuthError`. One expiry costs exactly one login.
- ``REQUEST_LIMIT_EXCEEDED``: raises :class:`SalesforceApiLimitError` at once.
- HTTP 429, HTTP 5xx, a request-level ``UNABLE_TO_LOCK_ROW`` or ``API_TEMPORARILY_UNAVAILABLE``,
  a dropped connection or a timeout: retried up to ``max_attempts`` attempts for reads and
  idempotent writes, waiting ``Retry-After`` when the server sent one and else 1, 2, 4 ...
  seconds (at most 30). A create is retried only after a 429 or a connect timeout, because
  then Salesforce has not processed it. After a 5xx, a dropped connection or a read timeout
  its outcome is unknown, so it raises :class:`SalesforceWriteOutcomeUnknownError` instead
  of risking duplicate records.
- Any other error status raises :class:`SalesforceRequestError` with the error code.

Messages carry endpoint keys, HTTP statuses and error codes, never Salesforce's error text,
which may quote a value from the request.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from include.cerkl_sync.salesforce_io.endpoints import RequestCounter, endpoint_key
from include.cerkl_sync.salesforce_io.errors import (
    SalesforceApiLimitError,
    SalesforceAuthError,
    SalesforceRequestError,
    SalesforceWriteOutcomeUnknownError,
)

if TYPE_CHECKING:
    from airflow.providers.salesforce.hooks.salesforce import SalesforceHook
    from simple_salesforce import Salesforce

logger = logging.getLogger(__name__)

TRANSIENT_ERROR_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "API_TEMPORARILY_UNAVAILABLE"})
DEFAULT_MAX_ATTEMPTS = 4
DEFAULT_REQUEST_TIMEOUT = 120.0
BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 30.0
RETRY_AFTER_MAX_SECONDS = 60.0


class RetryPolicy(enum.Enum):
    """Kind of request, which sets the failures that it may be re-sent after."""

    READ = "read"
    IDEMPOTENT_WRITE = "idempotent write"
    CREATE = "create"


class _SessionExpired(Exception):
    def __init__(self, connection: Salesforce, endpoint: str) -> None:
        super().__init__(endpoint)
        self.connection = connection
        self.endpoint = endpoint


class _TransientResponse(Exception):
    def __init__(
        self, endpoint: str, status: int, error_code: str | None, retry_after: float | None
    ) -> None:
        super().__init__(f"HTTP {status} {error_code or ''}".strip())
        self.endpoint = endpoint
        self.status = status
        self.error_code = error_code
        self.retry_after = retry_after


def _error_code(response: requests.Response) -> str | None:
    """Return the ``errorCode`` of a REST error body, or None when there is none."""
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, list) and body and isinstance(body[0], Mapping):
        code = body[0].get("errorCode")
        return str(code) if code else None
    if isinstance(body, Mapping):
        code = body.get("errorCode") or body.get("error")
        return str(code) if code else None
    return None


def _retry_after_seconds(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _is_retryable(policy: RetryPolicy, exc: BaseException) -> bool:
    if isinstance(exc, _TransientResponse):
        return policy is not RetryPolicy.CREATE or exc.status == 429
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        return policy is not RetryPolicy.CREATE
    return False


def _retry_wait(retry_state: RetryCallState) -> float:
    """Wait ``Retry-After`` when the server sent one, else back off exponentially."""
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    if isinstance(exc, _TransientResponse) and exc.retry_after is not None:
        return min(exc.retry_after, RETRY_AFTER_MAX_SECONDS)
    backoff = BACKOFF_FIRST_SECONDS * 2 ** (retry_state.attempt_number - 1)
    return min(backoff, BACKOFF_MAX_SECONDS)


class RestSession:
    """REST requests on the connection of a ``SalesforceHook``, with the rules above.

    :param hook: the hook whose cached ``conn`` logs in and whose session sends requests.
    :param counter: where the session's requests are counted; its API usage goes into the
        message of :class:`SalesforceApiLimitError`.
    :param sleep: the function that waits between attempts.
    :param max_attempts: attempts per request and per login.
    :param request_timeout: seconds to wait for a response before the attempt times out.
    """

    def __init__(
        self,
        hook: SalesforceHook,
        *,
        counter: RequestCounter,
        sleep: Callable[[float], None],
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts {max_attempts!r} is below 1: use 1 for no retries")
        self.hook = hook
        self.conn_id: str = hook.conn_id
        self._counter = counter
        self._sleep = sleep
        self._max_attempts = max_attempts
        self._request_timeout = request_timeout
        self._connection_lock = threading.RLock()

    def url(self, target: str) -> str:
        """Return the absolute URL of ``target`` (see :meth:`request`), logging in if needed."""
        return self._resolve_url(self.connection(), target)

    def connection(self) -> Salesforce:
        """Return the hook's logged-in connection, logging in when there is none."""
        from simple_salesforce.exceptions import SalesforceAuthenticationFailed

        retrying = Retrying(
            retry=retry_if_exception(_is_transient_login_error),
            stop=stop_after_attempt(self._max_attempts),
            wait=_retry_wait,
            sleep=self._sleep,
            before_sleep=_log_login_retry,
            reraise=True,
        )
        with self._connection_lock:
            try:
                return retrying(lambda: self.hook.conn)
            except SalesforceAuthenticationFailed as exc:
                raise SalesforceAuthError(
                    f"Salesforce login failed for connection {self.conn_id!r} with code "
                    f"{exc.code}: check its username, password, security token or connected "
                    "app settings"
                ) from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                raise SalesforceAuthError(
                    f"Salesforce login for connection {self.conn_id!r} got no response after "
                    f"{self._max_attempts} attempts ({type(exc).__name__})"
                ) from exc
            except TypeError as exc:
                # simple-salesforce raises TypeError when no login method fits the arguments.
                if "login information" not in str(exc):
                    raise
                raise SalesforceAuthError(
                    f"Salesforce connection {self.conn_id!r} lacks login details: set login, "
                    "password and the security_token extra, or the consumer_key and "
                    "consumer_secret extras"
                ) from exc

    def _renew_session(self, expired: Salesforce, endpoint: str) -> None:
        """Drop the hook's cached connection, unless another thread already did, and log in."""
        with self._connection_lock:
            if self.hook.__dict__.get("conn") is expired:
                # SalesforceHook.conn is a functools.cached_property, stored in the instance
                # dict. Removing it makes the next access build a new Salesforce, which logs in.
                del self.hook.__dict__["conn"]
                logger.info("Salesforce session expired on %s, logging in again", endpoint)
            self.connection()

    @staticmethod
    def _resolve_url(connection: Salesforce, target: str) -> str:
        if target.startswith("https://"):
            return target
        if target.startswith("/"):
            return f"https://{connection.sf_instance}{target}"
        return connection.base_url + target

    def request(
        self,
        method: str,
        target: str,
        *,
        policy: RetryPolicy,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send one REST request with retries and at most one session renewal.

        :param method: the HTTP method.
        :param target: a path relative to ``/services/data/vXX.X/``, a path from the host
            root (``nextRecordsUrl``) or an absolute URL.
        :param policy: which failures the request may be re-sent after.
        :param params: query string parameters.
        :param json_body: the JSON request body.
        :param data: a raw request body, such as CSV, instead of ``json_body``. Give its
            ``Content-Type`` in ``headers``.
        :param headers: headers to add to the hook's auth and content headers.
        :return: the response, with a status below 300.
        :raises SalesforceAuthError: when login fails or the session expires twice in a row.
        :raises SalesforceApiLimitError: on ``REQUEST_LIMIT_EXCEEDED``.
        :raises SalesforceWriteOutcomeUnknownError: when a create got a 5xx or no response.
        :raises SalesforceRequestError: on any other error status, or when retries run out.
        """
        endpoint = endpoint_key(method, self._resolve_url(self.connection(), target))
        renewed = False
        while True:
            retrying = Retrying(
                retry=retry_if_exception(lambda exc: _is_retryable(policy, exc)),
                stop=stop_after_attempt(self._max_attempts),
                wait=_retry_wait,
                sleep=self._sleep,
                before_sleep=lambda state: _log_request_retry(state, endpoint, self._max_attempts),
                reraise=True,
            )
            try:
                return retrying(
                    self._send_once, method, target, endpoint, params, json_body, data, headers
                )
            except _SessionExpired as expired:
                if renewed:
                    raise SalesforceAuthError(
                        f"Salesforce session expired again on {endpoint} right after a new "
                        f"login for connection {self.conn_id!r}: check the session settings "
                        "of the sync user's profile and connected app"
                    ) from None
                self._renew_session(expired.connection, endpoint)
                renewed = True
            except _TransientResponse as exc:
                raise self._final_transient_error(policy, endpoint, exc) from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                # The requests exception can quote the URL with its SOQL query string, so it
                # is not chained.
                raise self._final_transport_error(policy, endpoint, exc) from None

    def _send_once(
        self,
        method: str,
        target: str,
        endpoint: str,
        params: Mapping[str, str] | None,
        json_body: Any,
        data: bytes | None,
        headers: Mapping[str, str] | None,
    ) -> requests.Response:
        connection = self.connection()
        request_headers = dict(connection.headers)
        if headers:
            request_headers.update(headers)
        response = connection.session.request(
            method,
            self._resolve_url(connection, target),
            params=params,
            json=json_body,
            data=data,
            headers=request_headers,
            timeout=self._request_timeout,
        )
        status = response.status_code
        if status < 300:
            return response

        error_code = _error_code(response)
        if status == 401:
            raise _SessionExpired(connection, endpoint)
        if error_code == "REQUEST_LIMIT_EXCEEDED":
            usage = self._counter.api_usage
            usage_text = f"{usage[0]}/{usage[1]}" if usage else "unknown"
            raise SalesforceApiLimitError(
                f"Salesforce API request limit exceeded on {endpoint} (REQUEST_LIMIT_EXCEEDED, "
                f"API usage {usage_text} from Sforce-Limit-Info): the org's rolling 24-hour "
                "allocation is spent, so stop and run again once usage has dropped"
            )
        if status == 429 or status >= 500 or error_code in TRANSIENT_ERROR_CODES:
            raise _TransientResponse(endpoint, status, error_code, _retry_after_seconds(response))
        raise SalesforceRequestError(
            f"Salesforce rejected {endpoint} with HTTP {status} {error_code or '(no error code)'}",
            endpoint=endpoint,
            status=status,
            error_code=error_code,
        )

    def _final_transient_error(
        self, policy: RetryPolicy, endpoint: str, exc: _TransientResponse
    ) -> SalesforceRequestError:
        code = exc.error_code or "(no error code)"
        if policy is RetryPolicy.CREATE and exc.status >= 500:
            return SalesforceWriteOutcomeUnknownError(
                f"Salesforce returned HTTP {exc.status} {code} for {endpoint}, so it is unknown "
                "which records were created. The request was not re-sent. Query for the records "
                "before creating them again, or create them with upsert on an external Id",
                endpoint=endpoint,
                status=exc.status,
                error_code=exc.error_code,
                record_indices=(),
            )
        attempts = self._max_attempts if _is_retryable(policy, exc) else 1
        return SalesforceRequestError(
            f"Salesforce returned HTTP {exc.status} {code} for {endpoint} on {attempts} "
            "attempt(s): try the run again later",
            endpoint=endpoint,
            status=exc.status,
            error_code=exc.error_code,
        )

    def _final_transport_error(
        self, policy: RetryPolicy, endpoint: str, exc: requests.RequestException
    ) -> SalesforceRequestError:
        if policy is RetryPolicy.CREATE and not isinstance(exc, requests.ConnectTimeout):
            return SalesforceWriteOutcomeUnknownError(
                f"Salesforce sent no response to {endpoint} ({type(exc).__name__}), so it is "
                "unknown which records were created. The request was not re-sent. Query for "
                "the records before creating them again, or create them with upsert on an "
                "external Id",
                endpoint=endpoint,
                status=None,
                error_code=None,
                record_indices=(),
            )
        return SalesforceRequestError(
            f"Salesforce sent no response to {endpoint} in {self._max_attempts} attempts "
            f"({type(exc).__name__}): check the network and try again later",
            endpoint=endpoint,
            status=None,
            error_code=None,
        )


def json_body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        endpoint = endpoint_key(response.request.method or "", response.url)
        raise SalesforceRequestError(
            f"Salesforce returned a body that is not JSON on {endpoint} "
            f"(HTTP {response.status_code})",
            endpoint=endpoint,
            status=response.status_code,
            error_code=None,
        ) from None


def _is_transient_login_error(exc: BaseException) -> bool:
    from simple_salesforce.exceptions import SalesforceAuthenticationFailed

    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        return True
    # A login that gets a 5xx response without a SOAP fault carries the HTTP status as its code.
    return (
        isinstance(exc, SalesforceAuthenticationFailed)
        and isinstance(exc.code, int)
        and exc.code >= 500
    )


def _log_login_retry(retry_state: RetryCallState) -> None:
    from simple_salesforce.exceptions import SalesforceAuthenticationFailed

    exc = retry_state.outcome.exception() if retry_state.outcome else None
    reason = (
        f"code {exc.code}"
        if isinstance(exc, SalesforceAuthenticationFailed)
        else (type(exc).__name__)
    )
    logger.warning(
        "Salesforce login failed with %s, retrying in %.1f s (attempt %d)",
        reason,
        retry_state.upcoming_sleep,
        retry_state.attempt_number,
    )


def _log_request_retry(retry_state: RetryCallState, endpoint: str, max_attempts: int) -> None:
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    reason = str(exc) if isinstance(exc, _TransientResponse) else type(exc).__name__
    logger.warning(
        "Salesforce %s failed with %s, retrying in %.1f s (attempt %d of %d)",
        endpoint,
        reason,
        retry_state.upcoming_sleep,
        retry_state.attempt_number,
        max_attempts,
    )
