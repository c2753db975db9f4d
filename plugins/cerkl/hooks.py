"""Airflow hook for the Cerkl API v3.

:class:`CerklHook` reads its Airflow connection once, keeps one pooled
:class:`requests.Session` per thread, fetches and renews the OAuth client-credentials token,
paces requests with a token bucket and a concurrency limit, and retries 429, 5xx, timeouts
and dropped connections with exponential backoff. docs/cerkl-hook.md describes the
connection, its extras and the rate-limit rule for a deployment.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests
import tenacity
from airflow.providers.http.hooks.http import HttpHook
from requests.adapters import HTTPAdapter
from requests.auth import HTTPBasicAuth
from requests_toolbelt.adapters.socket_options import TCPKeepAliveAdapter

from cerkl.exceptions import (
    CerklApiError,
    CerklConfigError,
    CerklConflictError,
    CerklError,
    CerklNotFoundError,
    CerklRetryError,
    api_error_class,
)
from cerkl.redaction import install_log_redaction, redact_emails, redact_query
from cerkl.settings import (
    MAX_PAGE_SIZE,
    CerklHookSettings,
    base_url_from_connection,
)
from cerkl.throttle import TokenBucket

log = logging.getLogger(__name__)

#: Lifetime assumed when the token response carries no ``expires_in`` (Cerkl: 12 hours).
DEFAULT_TOKEN_LIFETIME_SECONDS = 43_200

# Error codes of a single-record create that belong to the record, not to the request.
_RECORD_ERROR_STATUSES = (400, 409, 422)


@dataclass(frozen=True)
class SubscriberCreateResult:
    """Outcome of creating one subscriber.

    Exactly one of ``subscriber`` and ``error_code`` is set.

    :param subscriber: the created subscriber, with logical field names.
    :param error_code: Cerkl's error code for this record, e.g. ``DUPLICATE_EMAIL``.
    :param error_message: Cerkl's message for this record, email addresses redacted.
    :param found_after_retry: True when Cerkl returned ``DUPLICATE_EMAIL`` to a create that
        had been retried after an attempt with an unknown outcome (timeout, dropped
        connection, 5xx). ``subscriber`` is then the subscriber found by email, most likely
        the one the lost attempt created, but possibly one that existed before.
    """

    subscriber: dict[str, Any] | None = None
    error_code: str | None = None
    error_message: str | None = None
    found_after_retry: bool = False

    @property
    def ok(self) -> bool:
        """Whether the record is a subscriber in Cerkl after the call."""
        return self.subscriber is not None


@dataclass
class _RequestHistory:
    """Whether any attempt of one logical request failed with an unknown outcome."""

    outcome_unknown: bool = False


@dataclass(frozen=True)
class _ConnectionConfig:
    conn_id: str
    base_url: str
    client_id: str = field(repr=False)
    client_secret: str = field(repr=False)
    settings: CerklHookSettings


@dataclass(frozen=True)
class _AccessToken:
    value: str = field(repr=False)
    expires_at: float


class _RetryableFailure(Exception):
    """An attempt failed in a way that may succeed later (429, 5xx, timeout, dropped)."""

    def __init__(
        self, reason: str, *, retry_after: float | None = None, outcome_unknown: bool
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.outcome_unknown = outcome_unknown


class CerklHook(HttpHook):
    """Client of the Cerkl API v3 on top of the HTTP provider's :class:`HttpHook`.

    The connection's host is the base URL (``https://api.cerkl.com/v3``), login and password
    are the OAuth client id and secret, and the extras hold client settings (see
    :class:`cerkl.settings.CerklHookSettings`). The hook is thread-safe: threads share the
    token, the rate budget and the concurrency limit, and each thread has its own session.

    :param cerkl_conn_id: Airflow connection id.
    :param sleep: function used for retry waits, in seconds; tests pass one that returns
        at once. The rate budget always sleeps in real time.
    :param clock: monotonic clock in seconds for the retry deadline and token expiry.
    :param jitter: function returning a number in [0, 1) that spreads retry waits.
    :param tcp_keep_alive: enable TCP keep-alive on the connections, as in :class:`HttpHook`.
    :param tcp_keep_alive_idle: seconds of idle time before the first keep-alive probe.
    :param tcp_keep_alive_count: keep-alive probes before the connection is dropped.
    :param tcp_keep_alive_interval: seconds between keep-alive probes.
    :param kwargs: passed to :class:`HttpHook`; an ``adapter`` given there is mounted on
        every thread's session in place of the keep-alive adapter.
    """

    conn_name_attr = "cerkl_conn_id"
    default_conn_name = "cerkl_default"
    conn_type = "http"
    hook_name = "Cerkl"

    def __init__(
        self,
        cerkl_conn_id: str = default_conn_name,
        *,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] | None = None,
        jitter: Callable[[], float] | None = None,
        tcp_keep_alive: bool = True,
        tcp_keep_alive_idle: int = 120,
        tcp_keep_alive_count: int = 20,
        tcp_keep_alive_interval: int = 30,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            method="GET",
            http_conn_id=cerkl_conn_id,
            tcp_keep_alive=tcp_keep_alive,
            tcp_keep_alive_idle=tcp_keep_alive_idle,
            tcp_keep_alive_count=tcp_keep_alive_count,
            tcp_keep_alive_interval=tcp_keep_alive_interval,
            **kwargs,
        )
        self._keep_alive = (
            (tcp_keep_alive_idle, tcp_keep_alive_count, tcp_keep_alive_interval)
            if tcp_keep_alive
            else None
        )
        self.cerkl_conn_id = cerkl_conn_id
        self._sleep = sleep or time.sleep
        self._clock = clock or time.monotonic
        self._jitter = jitter or random.random
        self._config_lock = threading.Lock()
        self._config: _ConnectionConfig | None = None
        self._bucket: TokenBucket | None = None
        self._slots: threading.BoundedSemaphore | None = None
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._token_lock = threading.Lock()
        self._token: _AccessToken | None = None
        self._counter_lock = threading.Lock()
        self._api_calls: Counter[str] = Counter()
        self._defaults_lock = threading.Lock()
        self._new_subscriber_refs: tuple[int, int] | None = None
        install_log_redaction()

    # -- connection, session and counters -------------------------------------------------

    @property
    def settings(self) -> CerklHookSettings:
        """Client settings parsed from the connection extras (reads the connection once)."""
        return self._load_config().settings

    @property
    def api_calls(self) -> Counter[str]:
        """Copy of the per-endpoint request counts, keyed ``"<METHOD> <path template>"``.

        Every HTTP request sent is counted, retries and token requests included, with the
        same keys the Cerkl sandbox uses (numeric ids written ``{id}``).
        """
        with self._counter_lock:
            return Counter(self._api_calls)

    def get_conn(
        self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None
    ) -> requests.Session:
        """Return this thread's pooled session, creating it on the thread's first call.

        :param headers: headers to add to the session; Cerkl's settings already hold the
            connection's ``headers`` extra.
        :param extra_options: not supported; the extras are read from the connection.
        :raises CerklConfigError: when ``extra_options`` is given.
        """
        if extra_options:
            raise CerklConfigError(
                "CerklHook.get_conn does not take extra_options; set client options in the "
                f"extras of connection {self.cerkl_conn_id!r}."
            )
        session = self._session()
        if headers:
            session.headers.update(headers)
        return session

    def close(self) -> None:
        """Close every session this hook opened, in all threads."""
        with self._config_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
        self._local = threading.local()

    def _load_config(self) -> _ConnectionConfig:
        if self._config is not None:
            return self._config
        with self._config_lock:
            if self._config is None:
                conn = self.get_connection(self.cerkl_conn_id)
                conn_id = self.cerkl_conn_id
                base_url = base_url_from_connection(conn.conn_type, conn.host, conn_id=conn_id)
                if conn.port:
                    raise CerklConfigError(
                        f"Connection {conn_id!r} sets port {conn.port} apart from the host; put "
                        "the port into the base URL in host, e.g. 'http://127.0.0.1:8702/v3'."
                    )
                if not conn.login or not conn.password:
                    raise CerklConfigError(
                        f"Connection {conn_id!r} needs the OAuth client id as login and the "
                        "client secret as password."
                    )
                settings = CerklHookSettings.from_extras(conn.extra_dejson, conn_id=conn_id)
                self.base_url = base_url
                self._base_url_initialized = True
                self._bucket = TokenBucket(settings.requests_per_second)
                self._slots = threading.BoundedSemaphore(settings.max_concurrent_requests)
                self._config = _ConnectionConfig(
                    conn_id=conn_id,
                    base_url=base_url,
                    client_id=conn.login,
                    client_secret=conn.password,
                    settings=settings,
                )
        return self._config

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is not None:
            return session
        settings = self._load_config().settings
        session = requests.Session()
        session.headers.update({"Accept": "application/json"})
        session.headers.update(settings.headers)
        session.verify = settings.verify
        adapter = self._new_adapter(settings.max_concurrent_requests)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        self._local.session = session
        with self._config_lock:
            self._sessions.append(session)
        return session

    def _new_adapter(self, pool_size: int) -> HTTPAdapter:
        # An adapter passed to the hook is shared by every thread's session, which urllib3's
        # connection pools allow.
        if self.adapter is not None:
            return self.adapter
        if self._keep_alive is None:
            return HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
        idle, count, interval = self._keep_alive
        return TCPKeepAliveAdapter(
            idle=idle,
            count=count,
            interval=interval,
            pool_connections=1,
            pool_maxsize=pool_size,
            max_retries=0,
        )

    def _count(self, key: str) -> None:
        with self._counter_lock:
            self._api_calls[key] += 1

    # -- authentication --------------------------------------------------------------------

    def _access_token(self) -> str:
        config = self._load_config()
        with self._token_lock:
            token = self._token
            margin = config.settings.token_renewal_margin_seconds
            if token is None or self._clock() >= token.expires_at - margin:
                token = self._fetch_token(config)
                self._token = token
            return token.value

    def _invalidate_token(self, value: str) -> None:
        with self._token_lock:
            if self._token is not None and self._token.value == value:
                self._token = None

    def _fetch_token(self, config: _ConnectionConfig) -> _AccessToken:
        try:
            body = self._request(
                "POST",
                config.settings.token_path,
                form={"grant_type": "client_credentials"},
                auth=HTTPBasicAuth(config.client_id, config.client_secret),
                bearer=False,
            )
        except CerklNotFoundError as exc:
            # Most often the connection's host lacks the API's base path.
            raise CerklConfigError(
                f"Cerkl returned 404 for the token request at {config.base_url!r} + "
                f"{config.settings.token_path!r}; the host of connection {config.conn_id!r} "
                "must be the API base URL including its path, such as "
                "https://api.cerkl.com/v3, and the token_path extra relative to it."
            ) from exc
        if not isinstance(body, Mapping) or not isinstance(body.get("access_token"), str):
            raise CerklError(
                f"Cerkl's token endpoint {config.settings.token_path!r} returned no "
                "access_token string; check the token_path extra."
            )
        lifetime = body.get("expires_in") or DEFAULT_TOKEN_LIFETIME_SECONDS
        try:
            lifetime = float(lifetime)
        except (TypeError, ValueError):
            lifetime = DEFAULT_TOKEN_LIFETIME_SECONDS
        log.info("Fetched a Cerkl access token valid for %d s", lifetime)
        return _AccessToken(value=body["access_token"], expires_at=self._clock() + lifetime)

    # -- requests and retries --------------------------------------------------------------

    def _request(
        self,
        method: str,
        template: str,
        ids: Sequence[int] = (),
        *,
        params: Mapping[str, Any] | None = None,
        data: list[dict[str, Any]] | None = None,
        form: Mapping[str, str] | None = None,
        auth: HTTPBasicAuth | None = None,
        bearer: bool = True,
        history: _RequestHistory | None = None,
        reconcile: Callable[[], Any | None] | None = None,
    ) -> Any:
        """Send one logical request with retries and return its parsed JSON body.

        :param template: path template relative to the base URL, numeric ids as ``{id}``.
        :param ids: the ids filled into ``template`` in order.
        :param data: records sent in the request envelope.
        :param history: records whether an attempt had an unknown outcome, for the caller's
            reconciliation.
        :param reconcile: called before a retry that follows an attempt with an unknown
            outcome; a result other than None is returned instead of sending again.
        :raises CerklApiError: for an error response that is not retried.
        :raises CerklRetryError: when the retry budget runs out.
        """
        config = self._load_config()
        settings = config.settings
        path = _fill_template(template, ids)
        history = history if history is not None else _RequestHistory()
        json_body = {"template": {"version": "3.0", "data": data}} if data is not None else None
        started = self._clock()

        def stop(state: tenacity.RetryCallState) -> bool:
            if state.attempt_number >= settings.max_attempts:
                return True
            upcoming = state.upcoming_sleep or 0.0
            return self._clock() - started + upcoming > settings.retry_deadline_seconds

        def before_sleep(state: tenacity.RetryCallState) -> None:
            failure = state.outcome.exception() if state.outcome else None
            log.warning(
                "Cerkl %s %s failed (%s) on attempt %d of %d; retrying in %.2f s",
                method,
                path,
                getattr(failure, "reason", failure),
                state.attempt_number,
                settings.max_attempts,
                state.upcoming_sleep,
            )

        def give_up(state: tenacity.RetryCallState) -> None:
            failure = state.outcome.exception() if state.outcome else None
            reason = getattr(failure, "reason", str(failure))
            elapsed = self._clock() - started
            log.error(
                "Cerkl %s %s failed after %d attempts in %.1f s: %s",
                method,
                path,
                state.attempt_number,
                elapsed,
                reason,
            )
            raise CerklRetryError(
                f"Cerkl API {method} {path} failed after {state.attempt_number} attempts in "
                f"{elapsed:.1f} s (max_attempts {settings.max_attempts}, retry deadline "
                f"{settings.retry_deadline_seconds:g} s); last failure: {reason}",
                method=method,
                path=path,
                attempts=state.attempt_number,
                reason=reason,
            )

        retrying = tenacity.Retrying(
            sleep=self._sleep,
            stop=stop,
            wait=self._retry_wait,
            retry=tenacity.retry_if_exception_type(_RetryableFailure),
            before_sleep=before_sleep,
            retry_error_callback=give_up,
        )
        for attempt in retrying:
            with attempt:
                if history.outcome_unknown and reconcile is not None:
                    reconciled = reconcile()
                    if reconciled is not None:
                        log.info(
                            "Cerkl %s %s: found the result of an earlier attempt, not resending",
                            method,
                            path,
                        )
                        return reconciled
                try:
                    return self._attempt(
                        config, method, template, path, params, json_body, form, auth, bearer,
                        started,
                    )  # fmt: skip
                except _RetryableFailure as failure:
                    history.outcome_unknown = history.outcome_unknown or failure.outcome_unknown
                    raise
        raise AssertionError("tenacity ended without a result or an error")  # pragma: no cover

    def _retry_wait(self, state: tenacity.RetryCallState) -> float:
        """Exponential backoff with jitter, at least the server's ``Retry-After``."""
        settings = self._load_config().settings
        exponent = max(0, state.attempt_number - 1)
        backoff = min(settings.backoff_max_seconds, settings.backoff_initial_seconds * 2**exponent)
        wait = backoff * (0.5 + 0.5 * self._jitter())
        failure = state.outcome.exception() if state.outcome else None
        retry_after = getattr(failure, "retry_after", None)
        if retry_after is not None:
            wait = max(wait, retry_after)
        return wait

    def _attempt(
        self,
        config: _ConnectionConfig,
        method: str,
        template: str,
        path: str,
        params: Mapping[str, Any] | None,
        json_body: dict[str, Any] | None,
        form: Mapping[str, str] | None,
        auth: HTTPBasicAuth | None,
        bearer: bool,
        started: float,
    ) -> Any:
        """Send one attempt, and renew the token once if Cerkl responds with 401."""
        url = f"{config.base_url}/{path}"
        key = f"{method} {template}"
        renewed = False
        while True:
            headers: dict[str, str] = {}
            token = ""
            if bearer:
                token = self._access_token()
                headers["Authorization"] = f"Bearer {token}"
            response = self._send(
                config, key, method, url, params=params, json_body=json_body, form=form,
                auth=auth, headers=headers,
            )  # fmt: skip
            if response.status_code == 401 and bearer and not renewed:
                log.info("Cerkl returned 401 to %s %s; renewing the access token", method, path)
                self._invalidate_token(token)
                renewed = True
                continue
            return self._read_response(config, response, method, path, started)

    def _send(
        self,
        config: _ConnectionConfig,
        key: str,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None,
        json_body: dict[str, Any] | None,
        form: Mapping[str, str] | None,
        auth: HTTPBasicAuth | None,
        headers: dict[str, str],
    ) -> requests.Response:
        assert self._bucket is not None and self._slots is not None
        session = self._session()
        self._bucket.acquire()
        with self._slots:
            self._count(key)
            log.debug("Sending Cerkl request %s", key)
            try:
                return session.request(
                    method,
                    url,
                    params=params,
                    json=json_body,
                    data=form,
                    headers=headers,
                    auth=auth,
                    timeout=config.settings.timeout,
                )
            except requests.exceptions.ConnectTimeout as exc:
                # The request never reached the server, so its outcome is known.
                raise _RetryableFailure(_describe(exc), outcome_unknown=False) from None
            except (
                requests.exceptions.Timeout,
                requests.exceptions.ConnectionError,
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                raise _RetryableFailure(_describe(exc), outcome_unknown=True) from None

    def _read_response(
        self,
        config: _ConnectionConfig,
        response: requests.Response,
        method: str,
        path: str,
        started: float,
    ) -> Any:
        status = response.status_code
        if status < 400:
            if not response.content:
                return None
            try:
                return response.json()
            except ValueError:
                raise CerklError(
                    f"Cerkl API {method} {path} returned HTTP {status} with a body that is not "
                    "JSON."
                ) from None

        code, message = _error_details(response)
        if status == 429 or status >= 500:
            retry_after = _parse_retry_after(response.headers.get("Retry-After"))
            reason = f"HTTP {status} {code or ''}".rstrip()
            deadline = config.settings.retry_deadline_seconds
            if retry_after is not None and self._clock() - started + retry_after > deadline:
                raise CerklRetryError(
                    f"Cerkl API {method} {path} returned HTTP {status} with Retry-After "
                    f"{retry_after:g} s, beyond the retry deadline of {deadline:g} s "
                    "(extra 'retry_deadline_seconds'); giving up now. Retry the task later.",
                    method=method,
                    path=path,
                    attempts=0,
                    reason=reason,
                )
            raise _RetryableFailure(reason, retry_after=retry_after, outcome_unknown=status != 429)

        error_class = api_error_class(status)
        if status == 401:
            message = f"{message} (connection {config.conn_id!r})".strip()
        raise error_class(status, code, message, method=method, path=path)

    # -- envelope and field names ----------------------------------------------------------

    def _from_api(self, record: Any) -> Any:
        names = self.settings.field_names
        if not isinstance(record, dict) or all(k == v for k, v in names.items()):
            return record
        reverse = {api: logical for logical, api in names.items()}
        return {reverse.get(k, k): v for k, v in record.items()}

    def _to_api(self, record: Mapping[str, Any]) -> dict[str, Any]:
        names = self.settings.field_names
        return {names.get(k, k): v for k, v in record.items()}

    def _api_field(self, logical: str) -> str:
        return self.settings.field_names[logical]

    def _iter_pages(
        self,
        template: str,
        ids: Sequence[int] = (),
        *,
        filters: Mapping[str, Any] | None = None,
        page_size: int | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        size = self.settings.page_size if page_size is None else page_size
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_PAGE_SIZE:
            raise ValueError(
                f"page_size is {size!r}; use a whole number from 1 to {MAX_PAGE_SIZE}."
            )
        page = 1
        while True:
            params: dict[str, Any] = {"page": page, "page_size": size}
            if filters:
                params["filters_json"] = json.dumps(filters, separators=(",", ":"))
            records = _records(self._request("GET", template, ids, params=params))
            if records:
                yield [self._from_api(record) for record in records]
            if len(records) < size:
                return
            page += 1

    def _since_filter(self, logical: str, value: datetime | None) -> dict[str, Any]:
        if value is None:
            return {}
        operator = self.settings.since_filter_operator
        return {self._api_field(logical): {operator: _format_datetime(value, logical)}}

    # -- subscribers -----------------------------------------------------------------------

    def iter_subscriber_pages(
        self,
        *,
        modified_since: datetime | None = None,
        created_since: datetime | None = None,
        page_size: int | None = None,
    ) -> Iterator[list[dict]]:
        """Yield subscribers page by page, one ``GET subscriber`` request per page.

        Only one page is held at a time. Paging stops at the first page shorter than the
        page size. A datetime bound is sent with the ``since_filter_operator`` extra (default
        ``gte``) at whole-second precision, so records from the bound's second come back.

        :param modified_since: only subscribers with ``date_modified_utc`` at or after this
            aware datetime.
        :param created_since: only subscribers with ``date_created_utc`` at or after this
            aware datetime.
        :param page_size: records per request, 1 to 1,000; default the ``page_size`` extra.
        :return: iterator of non-empty lists of subscribers with logical field names.
        :raises ValueError: for a naive datetime or a page size out of range.
        """
        filters = {
            **self._since_filter("date_modified_utc", modified_since),
            **self._since_filter("date_created_utc", created_since),
        }
        yield from self._iter_pages("subscriber", filters=filters, page_size=page_size)

    def iter_subscribers(
        self,
        *,
        modified_since: datetime | None = None,
        created_since: datetime | None = None,
        page_size: int | None = None,
    ) -> Iterator[dict]:
        """Yield subscribers one by one; see :meth:`iter_subscriber_pages` for the arguments."""
        for page in self.iter_subscriber_pages(
            modified_since=modified_since, created_since=created_since, page_size=page_size
        ):
            yield from page

    def find_subscriber_by_email(self, email: str) -> dict | None:
        """Return the subscriber with this email address, or None.

        Cerkl compares emails case-insensitively and without surrounding spaces.

        :raises ValueError: when ``email`` is empty.
        :raises CerklError: when Cerkl returns more than one subscriber for the address.
        """
        if not isinstance(email, str) or not email.strip():
            raise ValueError("find_subscriber_by_email needs a non-empty email address.")
        params = {
            "page": 1,
            "page_size": 2,
            "filters_json": json.dumps({self._api_field("email"): {"eq": email.strip()}}),
        }
        records = _records(self._request("GET", "subscriber", params=params))
        if len(records) > 1:
            ids = [record.get("id") for record in records]
            raise CerklError(
                f"Cerkl returned several subscribers (ids {ids}) for one email address; "
                "subscriber emails are expected to be unique."
            )
        return self._from_api(records[0]) if records else None

    def get_subscriber(self, subscriber_id: int) -> dict:
        """Return one subscriber with logical field names.

        :raises CerklNotFoundError: when no subscriber has this id.
        """
        body = self._request("GET", "subscriber/{id}", (_check_id(subscriber_id),))
        return self._from_api(_single(body, "GET subscriber/{id}"))

    def create_subscribers(self, records: Sequence[dict]) -> list[SubscriberCreateResult]:
        """Create subscribers in batches and return one result per record, in input order.

        Records use logical field names and need ``email``. A missing
        ``subscriber_status`` or ``subscriber_privacy_level`` gets the defaults for new
        subscribers (extras ``new_subscriber_status_id`` or, when unset, the status whose
        description is ``new_subscriber_status_description``, and
        ``new_subscriber_privacy_level_id``). A status or privacy level may be an id or a
        ``{"id": n}`` object. Batches hold at most the ``create_batch_size`` extra.

        A record that Cerkl rejects (e.g. ``DUPLICATE_EMAIL``, ``SELF_UNSUBSCRIBED``,
        ``INVALID_EMAIL``) gets a result with ``error_code`` and the other records go on.
        ``DUPLICATE_EMAIL`` after a retry whose earlier attempt had an unknown outcome turns
        into a look-up by email, and the result is flagged ``found_after_retry``.

        :raises ValueError: when a record is not a mapping with an email address.
        :raises CerklApiError: when Cerkl rejects a whole batch.
        :raises CerklRetryError: when a batch outlasts the retry budget.

        When a batch fails, the batches before it are already created. The raised
        exception then has a ``partial_results`` attribute with the results of the records
        before the failing batch, in input order.
        """
        prepared = [
            self._new_subscriber_body(record, index) for index, record in enumerate(records)
        ]
        emails = [record["email"] for record in records]
        results: list[SubscriberCreateResult] = []
        batch_size = self.settings.create_batch_size
        for start in range(0, len(prepared), batch_size):
            batch = prepared[start : start + batch_size]
            try:
                results.extend(self._create_batch(batch, emails[start : start + batch_size]))
            except CerklError as exc:
                exc.partial_results = list(results)
                log.error(
                    "Create of subscribers %d to %d of %d failed; %d results before it kept on "
                    "the exception",
                    start,
                    start + len(batch) - 1,
                    len(prepared),
                    len(results),
                )
                raise

        failed = sum(1 for result in results if not result.ok)
        log.info(
            "Created %d of %d subscribers; %d rejected", len(results) - failed, len(results), failed
        )
        return results

    def _create_batch(
        self, batch: list[dict[str, Any]], emails: list[str]
    ) -> list[SubscriberCreateResult]:
        history = _RequestHistory()
        try:
            items = _records(self._request("POST", "subscriber", data=batch, history=history))
        except CerklApiError as exc:
            if len(batch) != 1 or exc.status not in _RECORD_ERROR_STATUSES:
                raise
            items = [{"error": {"code": exc.code, "message": exc.message}}]
        if len(items) != len(batch):
            raise CerklError(
                f"Cerkl returned {len(items)} results to a create of {len(batch)} "
                "subscribers; expected one result per subscriber in request order."
            )
        return [
            self._create_result(item, email, history)
            for item, email in zip(items, emails, strict=True)
        ]

    def _new_subscriber_body(self, record: Any, index: int) -> dict[str, Any]:
        if not isinstance(record, Mapping):
            raise ValueError(f"Subscriber record {index} is a {type(record).__name__}; use a dict.")
        email = record.get("email")
        if not isinstance(email, str) or not email.strip():
            raise ValueError(f"Subscriber record {index} has no 'email'; every create needs one.")
        body = dict(record)
        status_id, privacy_id = None, None
        if body.get("subscriber_status") is None or body.get("subscriber_privacy_level") is None:
            status_id, privacy_id = self._new_subscriber_refs_lookup()
        for name, default in (
            ("subscriber_status", status_id),
            ("subscriber_privacy_level", privacy_id),
        ):
            value = body.get(name)
            body[name] = {"id": default} if value is None else {"id": _reference_id(value, name)}
        return self._to_api(body)

    def _new_subscriber_refs_lookup(self) -> tuple[int, int]:
        with self._defaults_lock:
            if self._new_subscriber_refs is not None:
                return self._new_subscriber_refs
            settings = self.settings
            status_id = settings.new_subscriber_status_id
            if status_id is None:
                wanted = settings.new_subscriber_status_description
                statuses = self.list_subscriber_statuses()
                matches = [s.get("id") for s in statuses if s.get("description") == wanted]
                if not matches:
                    found = sorted(str(s.get("description")) for s in statuses)
                    raise CerklConfigError(
                        f"No Cerkl subscriber status has the description {wanted!r} (found "
                        f"{found}); set the extra 'new_subscriber_status_id' or "
                        "'new_subscriber_status_description' of connection "
                        f"{self.cerkl_conn_id!r}."
                    )
                status_id = int(matches[0])
            self._new_subscriber_refs = (status_id, settings.new_subscriber_privacy_level_id)
            return self._new_subscriber_refs

    def _create_result(
        self, item: Any, email: str, history: _RequestHistory
    ) -> SubscriberCreateResult:
        error = item.get("error") if isinstance(item, Mapping) else None
        if not isinstance(error, Mapping):
            return SubscriberCreateResult(subscriber=self._from_api(item))
        code = error.get("code")
        message = redact_emails(str(error.get("message") or ""))
        if code == "DUPLICATE_EMAIL" and history.outcome_unknown:
            existing = self.find_subscriber_by_email(email)
            if existing is not None:
                log.warning(
                    "Create of subscriber %s returned DUPLICATE_EMAIL after a retry with an "
                    "unknown outcome; using the existing subscriber",
                    existing.get("id"),
                )
                return SubscriberCreateResult(subscriber=existing, found_after_retry=True)
        return SubscriberCreateResult(error_code=code, error_message=message)

    def update_subscriber(
        self,
        subscriber_id: int,
        changes: Mapping[str, Any],
        *,
        current: Mapping[str, Any] | None = None,
    ) -> dict:
        """Update a subscriber and return it as Cerkl stores it after the update.

        Cerkl needs the status and privacy level on every update, so the subscriber's
        current ones are sent along, never the defaults for new subscribers. They come
        from ``changes`` when it sets them, else from ``current``, else from a
        ``GET subscriber/{id}``.

        :param subscriber_id: the subscriber's id.
        :param changes: fields to change, with logical field names.
        :param current: the subscriber as last read (logical field names), which saves the
            read before the update.
        :raises ValueError: when ``changes`` is empty.
        :raises CerklNotFoundError: when no subscriber has this id.
        :raises CerklConflictError: when the new email belongs to another subscriber.
        """
        subscriber_id = _check_id(subscriber_id)
        if not changes:
            raise ValueError(f"update_subscriber({subscriber_id}) needs at least one change.")
        body = dict(changes)
        for name in ("subscriber_status", "subscriber_privacy_level"):
            if body.get(name) is not None:
                body[name] = {"id": _reference_id(body[name], name)}
                continue
            if current is None:
                current = self.get_subscriber(subscriber_id)
            value = current.get(name)
            if value is None:
                raise CerklError(
                    f"Subscriber {subscriber_id} has no {name}; Cerkl needs it on every update. "
                    "Pass it in changes."
                )
            body[name] = {"id": _reference_id(value, name)}
        response_body = self._request(
            "PUT", "subscriber/{id}", (subscriber_id,), data=[self._to_api(body)]
        )
        return self._from_api(_single(response_body, "PUT subscriber/{id}"))

    def unsubscribe_subscriber(self, subscriber_id: int) -> None:
        """Unsubscribe a subscriber, marking this integration as the source.

        The marking is the query parameters of the ``integration_unsubscribe_params``
        extra. Cerkl keeps the record as an unsubscribe with the same id.

        :raises CerklNotFoundError: when no subscriber has this id.
        :raises CerklConflictError: when the subscriber is already unsubscribed.
        """
        subscriber_id = _check_id(subscriber_id)
        history = _RequestHistory()
        params = self.settings.integration_unsubscribe_params or None
        try:
            self._request(
                "DELETE", "subscriber/{id}", (subscriber_id,), params=params, history=history
            )
        except (CerklNotFoundError, CerklConflictError):
            # A lost first attempt may have unsubscribed already, and the retry then finds no
            # subscriber (404) or an unsubscribed one (409). The unsubscribe record decides.
            if not history.outcome_unknown or self.get_unsubscribe(subscriber_id) is None:
                raise
            log.info("Subscriber %s was unsubscribed by an earlier attempt", subscriber_id)
        log.info("Unsubscribed subscriber %s", subscriber_id)

    def get_subscriber_interests(self, subscriber_id: int) -> list[dict]:
        """Return a subscriber's interests ordered by rank, 1 first.

        Each item is ``{"category": {"id", "description"}, "rank", "score"}``.

        :raises CerklNotFoundError: when no subscriber has this id.
        """
        body = self._request(
            "GET", "subscriber/{id}/subscriber_interest", (_check_id(subscriber_id),)
        )
        interests = _records(body)
        return sorted(interests, key=_rank_key)

    # -- unsubscribes ----------------------------------------------------------------------

    def iter_unsubscribes(self, *, since: datetime | None = None) -> Iterator[dict]:
        """Yield unsubscribes, page by page underneath.

        :param since: only unsubscribes with ``date_unsubscribed_utc`` at or after this
            aware datetime (operator from the ``since_filter_operator`` extra).
        :raises ValueError: for a naive datetime.
        """
        filters = self._since_filter("date_unsubscribed_utc", since)
        for page in self._iter_pages("unsubscribe", filters=filters):
            yield from page

    def get_unsubscribe(self, subscriber_id: int) -> dict | None:
        """Return the unsubscribe record of a former subscriber, or None when there is none."""
        try:
            body = self._request("GET", "unsubscribe/{id}", (_check_id(subscriber_id),))
        except CerklNotFoundError:
            return None
        return self._from_api(_single(body, "GET unsubscribe/{id}"))

    # -- segments --------------------------------------------------------------------------

    def find_segment_by_external_id(self, external_id: str) -> dict | None:
        """Return the segment with this ``external_id``, or None.

        When Cerkl has several, the one with the lowest id is returned and a warning
        names the ids.

        :raises ValueError: when ``external_id`` is empty.
        """
        if not isinstance(external_id, str) or not external_id.strip():
            raise ValueError("find_segment_by_external_id needs a non-empty external_id.")
        filters = {self._api_field("external_id"): {"eq": external_id}}
        segments = [s for page in self._iter_pages("segment", filters=filters) for s in page]
        if not segments:
            return None
        segments.sort(key=lambda segment: segment.get("id") or 0)
        if len(segments) > 1:
            log.warning(
                "Cerkl has %d segments with external_id %s (ids %s); using %s",
                len(segments),
                external_id,
                [segment.get("id") for segment in segments],
                segments[0].get("id"),
            )
        return segments[0]

    def create_segment(self, description: str, external_id: str) -> dict:
        """Create a manual segment and return it.

        When an attempt with an unknown outcome is retried, the segment is first looked up
        by ``external_id``, so a lost response does not create a second segment.

        :param description: the segment's name as Cerkl shows it.
        :param external_id: the link to the source list, e.g. ``SF_<Campaign Id>``.
        :raises ValueError: when either argument is empty.
        """
        for name, value in (("description", description), ("external_id", external_id)):
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"create_segment needs a non-empty {name}, got {value!r}.")
        body = self._to_api({"description": description, "external_id": external_id})
        response_body = self._request(
            "POST",
            "segment",
            data=[body],
            reconcile=lambda: self.find_segment_by_external_id(external_id),
        )
        segment = self._from_api(_single(response_body, "POST segment"))
        log.info("Created Cerkl segment %s for external_id %s", segment.get("id"), external_id)
        return segment

    def rename_segment(self, segment_id: int, description: str) -> dict:
        """Set a segment's name and return the segment.

        :raises ValueError: when ``description`` is empty.
        :raises CerklNotFoundError: when no segment has this id.
        """
        if not isinstance(description, str) or not description.strip():
            raise ValueError(f"rename_segment needs a non-empty description, got {description!r}.")
        body = self._to_api({"description": description})
        response_body = self._request("PUT", "segment/{id}", (_check_id(segment_id),), data=[body])
        return self._from_api(_single(response_body, "PUT segment/{id}"))

    def iter_segment_members(self, segment_id: int) -> Iterator[dict]:
        """Yield the subscribers in a segment, page by page underneath.

        :raises CerklNotFoundError: when no segment has this id.
        """
        for page in self._iter_pages("segment/{id}/subscriber", (_check_id(segment_id),)):
            yield from page

    def add_segment_member(self, segment_id: int, subscriber_id: int) -> None:
        """Add one subscriber to a segment; adding a present member changes nothing.

        :raises CerklNotFoundError: when the segment or subscriber does not exist.
        """
        self._request(
            "POST",
            "segment/{id}/subscriber",
            (_check_id(segment_id),),
            data=[{"id": _check_id(subscriber_id)}],
        )

    def remove_segment_member(self, segment_id: int, subscriber_id: int) -> None:
        """Remove one subscriber from a segment.

        :raises CerklNotFoundError: when the segment does not exist or the subscriber is
            not a member, unless a retried attempt with an unknown outcome removed it.
        """
        ids = (_check_id(segment_id), _check_id(subscriber_id))
        history = _RequestHistory()
        try:
            self._request("DELETE", "segment/{id}/subscriber/{id}", ids, history=history)
        except CerklNotFoundError:
            if not history.outcome_unknown:
                raise
            log.info(
                "Subscriber %s was removed from segment %s by an earlier attempt", ids[1], ids[0]
            )

    # -- reference lists and connection test -----------------------------------------------

    def list_subscriber_statuses(self) -> list[dict]:
        """Return every subscriber status (``id``, ``description``)."""
        return [status for page in self._iter_pages("subscriber_status") for status in page]

    def list_privacy_levels(self) -> list[dict]:
        """Return every subscriber privacy level (``id``, ``description``)."""
        return [level for page in self._iter_pages("subscriber_privacy_level") for level in page]

    def test_connection(self) -> tuple[bool, str]:
        """Fetch a token and list the privacy levels; return ``(ok, message)``.

        The message names the connection and the base URL, never a credential.
        """
        try:
            config = self._load_config()
            with self._token_lock:
                self._token = None
            levels = self.list_privacy_levels()
        except Exception as exc:  # noqa: BLE001 - every failure becomes the test's message
            return False, _safe_message(exc, self._config)
        return True, (
            f"Connected to Cerkl at {config.base_url} with connection {config.conn_id!r}: "
            f"token issued, {len(levels)} privacy levels listed"
        )


def _fill_template(template: str, ids: Sequence[int]) -> str:
    parts = template.split("{id}")
    if len(parts) - 1 != len(ids):
        raise ValueError(f"Path template {template!r} needs {len(parts) - 1} ids, got {len(ids)}.")
    path = parts[0]
    for value, rest in zip(ids, parts[1:], strict=True):
        path += f"{value}{rest}"
    return path


def _check_id(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"Cerkl ids are positive integers, got {value!r}.")
    return value


def _reference_id(value: Any, name: str) -> int:
    if isinstance(value, Mapping):
        value = value.get("id")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an id or an object with an 'id', got {value!r}.")
    return value


def _unwrap(body: Any) -> Any:
    if isinstance(body, Mapping):
        template = body.get("template")
        if isinstance(template, Mapping) and "data" in template:
            return template["data"]
    return body


def _records(body: Any) -> list[dict[str, Any]]:
    """Return the records of an envelope, a bare list or a bare object."""
    data = _unwrap(body)
    if data is None:
        return []
    if isinstance(data, list):
        return data
    if isinstance(data, Mapping):
        return [dict(data)]
    raise CerklError(f"Cerkl returned a {type(data).__name__} where records were expected.")


def _single(body: Any, endpoint: str) -> dict[str, Any]:
    records = _records(body)
    if len(records) != 1:
        raise CerklError(f"Cerkl {endpoint} returned {len(records)} records; expected one.")
    return records[0]


def _rank_key(interest: Mapping[str, Any]) -> tuple[bool, Any]:
    rank = interest.get("rank")
    return (rank is None, rank if rank is not None else 0)


def _format_datetime(value: datetime, name: str) -> str:
    if not isinstance(value, datetime):
        raise ValueError(f"{name} bound must be a datetime, got {type(value).__name__}.")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{name} bound {value.isoformat()} has no time zone; pass an aware datetime such "
            "as datetime(2026, 1, 1, tzinfo=UTC)."
        )
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _parse_retry_after(value: str | None) -> float | None:
    """Return ``Retry-After`` in seconds (delta-seconds or an HTTP date), or None."""
    if value is None or not value.strip():
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _error_details(response: requests.Response) -> tuple[str | None, str]:
    """Return Cerkl's error code and message (emails redacted) from an error response."""
    try:
        body = response.json()
    except ValueError:
        return None, redact_emails(response.text[:200])
    error = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(error, Mapping):
        code = error.get("code")
        return (str(code) if code is not None else None), redact_emails(
            str(error.get("message", ""))
        )
    return None, redact_emails(json.dumps(body)[:200])


def _describe(exc: BaseException) -> str:
    """Name a transport error without the URL's query string or any email address."""
    return f"{type(exc).__name__}: {redact_emails(redact_query(str(exc)))}"


def _safe_message(exc: BaseException, config: _ConnectionConfig | None) -> str:
    message = f"{type(exc).__name__}: {redact_emails(redact_query(str(exc)))}"
    if config is not None and config.client_secret:
        message = message.replace(config.client_secret, "***")
    return message
