"""The Salesforce client the sync's tasks use: queries, sObject Collections writes, describes.

Every call goes through the Airflow provider's ``SalesforceHook``. The hook's
``simple_salesforce.Salesforce`` object does the login and supplies the instance URL, API
version and auth headers, and this client sends the REST requests on the hook's
``requests.Session`` itself. It does not call simple-salesforce's request methods because
their own handling of an expired session logs in again up to three times per call
(``Salesforce.query``) or without bound (``SFType`` methods), and their exceptions drop the
response headers (``Retry-After``, ``Sforce-Limit-Info``).

Failure handling, per request:

- HTTP 401 (``INVALID_SESSION_ID``): the hook's cached connection is dropped, a fresh one
  logs in, and the request is sent once more. A second 401 right after that raises
  :class:`SalesforceAuthError`. One expiry costs exactly one login.
- ``REQUEST_LIMIT_EXCEEDED``: raises :class:`SalesforceApiLimitError` at once.
- HTTP 429, HTTP 5xx, a request-level ``UNABLE_TO_LOCK_ROW`` or ``API_TEMPORARILY_UNAVAILABLE``,
  a dropped connection or a timeout: retried with exponential backoff (or ``Retry-After``) up
  to ``max_attempts`` attempts, for reads and for the idempotent writes (update by Id, upsert
  by external Id, delete). A create is retried only after a 429 or a connect timeout, where
  Salesforce has not processed it. Otherwise its outcome is unknown, and it raises
  :class:`SalesforceWriteOutcomeUnknownError` instead of risking duplicate records.
- Any other error status raises :class:`SalesforceRequestError` with the error code.

No log line or exception message contains a value from a record or a query. They carry
sObject and field names, record Ids, input positions, counts, endpoint keys and error codes.

simple-salesforce and the Airflow provider are imported when first needed, because importing
them takes about a second and DAG files import this module at parse time.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import requests
from cerkl.redaction import QueryRedactingFilter, install_log_redaction
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from include.cerkl_sync.salesforce_io.endpoints import (
    RequestCounter,
    endpoint_key,
    install_request_counter,
)
from include.cerkl_sync.salesforce_io.errors import (
    SalesforceApiLimitError,
    SalesforceAuthError,
    SalesforceRequestError,
    SalesforceSyncError,
    SalesforceWriteOutcomeUnknownError,
    WriteResult,
)
from include.cerkl_sync.salesforce_io.soql import (
    MAX_REQUEST_URI_BYTES,
    pack_in_statements,
    split_template,
)

if TYPE_CHECKING:
    from airflow.providers.salesforce.hooks.salesforce import SalesforceHook
    from simple_salesforce import Salesforce

logger = logging.getLogger(__name__)

COLLECTION_BATCH_SIZE = 200
TRANSIENT_ERROR_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "API_TEMPORARILY_UNAVAILABLE"})
MIN_PAGE_SIZE = 200
MAX_PAGE_SIZE = 2000
DEFAULT_MAX_ATTEMPTS = 4
DEFAULT_REQUEST_TIMEOUT = 120.0
BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 30.0
RETRY_AFTER_MAX_SECONDS = 60.0

_TRANSPORT_LOGGER = "include.cerkl_sync.salesforce_transport"
_REDACTION_FILTER = QueryRedactingFilter()


class _RetryPolicy(enum.Enum):
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


def _is_retryable(policy: _RetryPolicy, exc: BaseException) -> bool:
    if isinstance(exc, _TransientResponse):
        return policy is not _RetryPolicy.CREATE or exc.status == 429
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        return policy is not _RetryPolicy.CREATE
    return False


def _retry_wait(retry_state: RetryCallState) -> float:
    """Wait ``Retry-After`` when the server sent one, else back off exponentially."""
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    if isinstance(exc, _TransientResponse) and exc.retry_after is not None:
        return min(exc.retry_after, RETRY_AFTER_MAX_SECONDS)
    backoff = BACKOFF_FIRST_SECONDS * 2 ** (retry_state.attempt_number - 1)
    return min(backoff, BACKOFF_MAX_SECONDS)


def _without_attributes(value: Any) -> Any:
    """Drop the ``attributes`` entries of a record and of its nested records."""
    if isinstance(value, Mapping):
        return {
            key: _without_attributes(item) for key, item in value.items() if key != "attributes"
        }
    if isinstance(value, list):
        return [_without_attributes(item) for item in value]
    return value


def _check_api_name(value: object, what: str) -> str:
    """Raise ValueError unless ``value`` is an sObject or field API name."""
    if not isinstance(value, str) or not value.isascii() or not value.replace("_", "a").isalnum():
        raise ValueError(
            f"invalid {what} {value!r}: use the API name, letters, digits and underscores only, "
            "such as Contact or Cerkl_Subscriber_Id__c"
        )
    if not value[0].isalpha():
        raise ValueError(f"invalid {what} {value!r}: an API name starts with a letter")
    return value


def _is_record_id(value: object) -> bool:
    return isinstance(value, str) and len(value) in (15, 18) and value.isascii() and value.isalnum()


def _field_value(record: Mapping[str, Any], field: str) -> Any:
    """Return the value of ``field`` in ``record``, matching the name case-insensitively."""
    wanted = field.lower()
    for key, value in record.items():
        if key.lower() == wanted:
            return value
    return None


class SalesforceClient:
    """Salesforce REST access for the sync, with retries, session renewal and call counting.

    Creating a client makes no request. The first call logs in through the hook.

    :param conn_id: Airflow connection id of type ``salesforce``.
    :param session: the ``requests.Session`` the hook sends every request on. By default
        :func:`include.cerkl_sync.salesforce_transport.build_salesforce_session` builds one.
        The client wraps the adapters mounted on it to count requests, so give each client
        its own session.
    :param lock_retry_delays: seconds to wait before each re-send of the records of a
        collection call that failed with ``UNABLE_TO_LOCK_ROW`` or
        ``API_TEMPORARILY_UNAVAILABLE``. Its length is the number of re-sends.
    :param sleep: the function that waits, for both lock retries and request retries.
    :param max_attempts: attempts per request for 429, 5xx, dropped connections and timeouts.
    :param request_timeout: seconds to wait for a response before the attempt times out.
    """

    def __init__(
        self,
        conn_id: str = "salesforce_default",
        *,
        session: requests.Session | None = None,
        lock_retry_delays: Sequence[float] = (2.0, 5.0, 15.0),
        sleep: Callable[[float], None] = time.sleep,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        from airflow.providers.salesforce.hooks.salesforce import SalesforceHook

        delays = tuple(float(delay) for delay in lock_retry_delays)
        if any(delay < 0 for delay in delays):
            raise ValueError(f"lock_retry_delays {delays!r} contains a negative delay")
        if max_attempts < 1:
            raise ValueError(f"max_attempts {max_attempts!r} is below 1: use 1 for no retries")

        if session is None:
            from include.cerkl_sync.salesforce_transport import build_salesforce_session

            session = build_salesforce_session()

        self.conn_id = conn_id
        self.hook: SalesforceHook = SalesforceHook(salesforce_conn_id=conn_id, session=session)
        self._session = session
        self._lock_retry_delays = delays
        self._sleep = sleep
        self._max_attempts = max_attempts
        self._request_timeout = request_timeout
        self._counter = RequestCounter()
        self._connection_lock = threading.RLock()
        self._describe_cache: dict[str, dict[str, dict]] = {}

        install_request_counter(session, self._counter)
        # urllib3 and the sandbox transport log request paths, query strings included, at
        # DEBUG. A SOQL lookup by email carries addresses there, so both get the filter that
        # strips query strings and addresses.
        install_log_redaction()
        transport_logger = logging.getLogger(_TRANSPORT_LOGGER)
        if _REDACTION_FILTER not in transport_logger.filters:
            transport_logger.addFilter(_REDACTION_FILTER)

    @property
    def api_calls(self) -> Counter[str]:
        """Requests this client sent, login included, by endpoint key (a snapshot copy)."""
        return self._counter.snapshot()

    @property
    def api_usage(self) -> tuple[int, int] | None:
        """``(used, max)`` API requests from the last ``Sforce-Limit-Info`` header, or None."""
        return self._counter.api_usage

    # -- queries ---------------------------------------------------------------------------

    def iter_query_pages(
        self, soql: str, *, include_deleted: bool = False, page_size: int | None = None
    ) -> Iterator[list[dict]]:
        """Run a SOQL query and yield its records one page at a time.

        The first page comes from ``query`` (or ``queryAll``), the others from each page's
        ``nextRecordsUrl``, so only one page is in memory at a time. Records come without
        their ``attributes`` entries, nested relationship records included.

        :param soql: the SOQL statement.
        :param include_deleted: use ``queryAll``, which also returns deleted and archived
            records (``IsDeleted = true``).
        :param page_size: requested records per page, 200 to 2000, sent as
            ``Sforce-Query-Options: batchSize=N``. Salesforce may return smaller pages.
        :return: an iterator of pages, each a list of record dicts. A query with no match
            yields one empty page.
        :raises ValueError: when ``soql`` is empty or ``page_size`` is out of range.
        :raises SalesforceSyncError: when a request fails (see the module docstring).
        """
        if not isinstance(soql, str) or not soql.strip():
            raise ValueError(
                "soql is empty: pass a SOQL statement such as 'SELECT Id FROM Contact'"
            )
        headers: dict[str, str] | None = None
        if page_size is not None:
            if not MIN_PAGE_SIZE <= page_size <= MAX_PAGE_SIZE:
                raise ValueError(
                    f"page_size {page_size!r} is out of range: Salesforce accepts "
                    f"{MIN_PAGE_SIZE} to {MAX_PAGE_SIZE} records per page"
                )
            headers = {"Sforce-Query-Options": f"batchSize={page_size}"}
        return self._iter_pages(_query_resource(include_deleted), soql, headers)

    def query_in_batches(
        self, soql_template: str, values: Iterable[str], *, include_deleted: bool = False
    ) -> Iterator[list[dict]]:
        """Query for many values at once and yield the pages of every statement.

        The values are deduplicated, quoted and escaped as SOQL string literals, and packed
        in input order into as few statements as fit. Each statement stays within 100,000
        characters, and the URL-encoded request URL (scheme and host included) within
        16,384 bytes. The pages of each statement are followed as in
        :meth:`iter_query_pages`.

        :param soql_template: SOQL with one ``{values}`` placeholder where the IN list goes,
            e.g. ``"SELECT Id, Email FROM Contact WHERE Email IN {values}"``.
        :param values: the strings to look up. Empty input makes no request.
        :param include_deleted: use ``queryAll``.
        :return: an iterator of pages of records without ``attributes``.
        :raises ValueError: when the template lacks the placeholder or a value is not a
            string, is over 4,000 characters, or cannot fit in one statement. The message
            names the value's position, never the value.
        :raises SalesforceSyncError: when a request fails.
        """
        split_template(soql_template)
        unique = list(dict.fromkeys(values))
        return self._iter_batched(soql_template, unique, include_deleted)

    def _iter_batched(
        self, soql_template: str, values: list[str], include_deleted: bool
    ) -> Iterator[list[dict]]:
        if not values:
            return
        resource = _query_resource(include_deleted)
        base_url = self._resolve_url(self._connection(), resource)
        statements = 0
        for statement in pack_in_statements(
            soql_template, values, uri_prefix=f"{base_url}?q=", max_uri_bytes=MAX_REQUEST_URI_BYTES
        ):
            statements += 1
            yield from self._iter_pages(resource, statement, None)
        logger.info("Looked up %d values in %d SOQL statements", len(values), statements)

    def _iter_pages(
        self, resource: str, soql: str, headers: dict[str, str] | None
    ) -> Iterator[list[dict]]:
        response = self._request(
            "GET", resource, policy=_RetryPolicy.READ, params={"q": soql}, headers=headers
        )
        pages = 0
        records = 0
        while True:
            body = _json_body(response)
            page = [_without_attributes(record) for record in body.get("records", [])]
            pages += 1
            records += len(page)
            yield page

            next_url = body.get("nextRecordsUrl")
            if body.get("done", True) or not next_url:
                break
            response = self._request("GET", next_url, policy=_RetryPolicy.READ, headers=headers)
        logger.debug("SOQL query returned %d records in %d pages", records, pages)

    # -- sObject Collections writes ---------------------------------------------------------

    def create(self, sobject: str, records: Sequence[dict]) -> list[WriteResult]:
        """Insert records with sObject Collections, 200 a request, ``allOrNone`` false.

        A create is not idempotent: when a request's outcome is unknown (the connection
        dropped, a timeout, a 5xx) it raises :class:`SalesforceWriteOutcomeUnknownError`
        and does not re-send. To make a create safe to repeat, give the records an external
        Id field and call :meth:`upsert` on it.

        :param sobject: the sObject API name, e.g. ``Contact``.
        :param records: field values by API name, without ``Id``.
        :return: one result per input record, in input order, with ``created`` True on
            success. Records rejected by Salesforce have ``success`` False.
        :raises ValueError: when a record has an ``Id`` or a name is invalid.
        :raises SalesforceSyncError: when a request fails. ``partial_results`` holds the
            results of the batches done before.
        """
        _check_api_name(sobject, "sObject name")
        bodies = [
            self._record_body(sobject, record, position) for position, record in enumerate(records)
        ]
        for position, body in enumerate(bodies):
            if _field_value(body, "Id") is not None:
                raise ValueError(
                    f"record at position {position} has an Id: Salesforce rejects an Id on "
                    "create, so use update() for existing records"
                )
        return self._write("create", sobject, bodies)

    def update(self, sobject: str, records: Sequence[dict]) -> list[WriteResult]:
        """Update records by ``Id`` with sObject Collections, 200 a request, ``allOrNone`` false.

        :param sobject: the sObject API name.
        :param records: each with ``Id`` and the fields to change.
        :return: one result per input record, in input order, with ``created`` False on
            success.
        :raises ValueError: when a record lacks an ``Id`` or a name is invalid.
        :raises SalesforceSyncError: when a request fails after retries.
        """
        _check_api_name(sobject, "sObject name")
        bodies = [
            self._record_body(sobject, record, position) for position, record in enumerate(records)
        ]
        for position, body in enumerate(bodies):
            if not _is_record_id(_field_value(body, "Id")):
                raise ValueError(
                    f"record at position {position} has no valid Id: update needs the 15- or "
                    "18-character Id of the record to change"
                )
        return self._write("update", sobject, bodies)

    def upsert(
        self, sobject: str, external_id_field: str, records: Sequence[dict]
    ) -> list[WriteResult]:
        """Insert or update records matched on an external Id field, 200 a request.

        Repeating an upsert leaves the same records, which makes it the safe way to create
        records when a request may have to be re-sent.

        :param sobject: the sObject API name.
        :param external_id_field: API name of a field marked External ID on ``sobject``.
        :param records: each with a non-empty value for ``external_id_field``.
        :return: one result per input record, in input order, with ``created`` as
            Salesforce reports it.
        :raises ValueError: when a record lacks the external Id or a name is invalid.
        :raises SalesforceSyncError: when a request fails after retries.
        """
        _check_api_name(sobject, "sObject name")
        _check_api_name(external_id_field, "external Id field")
        bodies = [
            self._record_body(sobject, record, position) for position, record in enumerate(records)
        ]
        for position, body in enumerate(bodies):
            if _field_value(body, external_id_field) in (None, ""):
                raise ValueError(
                    f"record at position {position} has no {external_id_field} value: upsert "
                    "matches records on it, so every record needs one"
                )
        return self._write("upsert", sobject, bodies, external_id_field=external_id_field)

    def delete(self, ids: Sequence[str]) -> list[WriteResult]:
        """Delete records by Id with sObject Collections, 200 a request, ``allOrNone`` false.

        Deleted records go to the recycle bin, where ``queryAll`` still finds them.

        :param ids: 15- or 18-character record Ids, of any sObjects.
        :return: one result per input Id, in input order, with ``created`` None.
        :raises ValueError: when an entry is not a record Id.
        :raises SalesforceSyncError: when a request fails after retries.
        """
        for position, record_id in enumerate(ids):
            if not _is_record_id(record_id):
                raise ValueError(
                    f"entry at position {position} is not a record Id: pass 15- or "
                    "18-character Salesforce Ids"
                )
        return self._write("delete", None, list(ids))

    @staticmethod
    def _record_body(sobject: str, record: Mapping[str, Any], position: int) -> dict[str, Any]:
        if not isinstance(record, Mapping):
            raise ValueError(
                f"record at position {position} is a {type(record).__name__}, not a dict of "
                "field values"
            )
        body: dict[str, Any] = {"attributes": {"type": sobject}}
        body.update((key, value) for key, value in record.items() if key != "attributes")
        return body

    def _write(
        self,
        operation: str,
        sobject: str | None,
        items: list[Any],
        *,
        external_id_field: str | None = None,
    ) -> list[WriteResult]:
        results: list[WriteResult | None] = [None] * len(items)
        for start in range(0, len(items), COLLECTION_BATCH_SIZE):
            positions = list(range(start, min(start + COLLECTION_BATCH_SIZE, len(items))))
            try:
                self._write_batch(operation, sobject, items, positions, results, external_id_field)
            except SalesforceSyncError as exc:
                exc.partial_results = [result for result in results if result is not None]
                raise

        done = [result for result in results if result is not None]
        failures = Counter(result.error_code for result in done if not result.success)
        if failures:
            logger.warning(
                "Salesforce %s %s: %d of %d records failed, by error code: %s",
                operation,
                sobject or "records",
                sum(failures.values()),
                len(done),
                dict(failures),
            )
        else:
            logger.info("Salesforce %s %s: %d records", operation, sobject or "records", len(done))
        return done

    def _write_batch(
        self,
        operation: str,
        sobject: str | None,
        items: list[Any],
        positions: list[int],
        results: list[WriteResult | None],
        external_id_field: str | None,
    ) -> None:
        """Send one batch, then re-send only its records that failed with a transient code."""
        delays = iter(self._lock_retry_delays)
        pending = positions
        while True:
            try:
                raw_results = self._send_collection(
                    operation, sobject, [items[position] for position in pending], external_id_field
                )
            except SalesforceWriteOutcomeUnknownError as exc:
                exc.record_indices = list(pending)
                raise

            retry: list[int] = []
            for position, raw in zip(pending, raw_results, strict=True):
                result = _write_result(position, raw, operation)
                results[position] = result
                if not result.success and result.error_code in TRANSIENT_ERROR_CODES:
                    retry.append(position)
            if not retry:
                return

            delay = next(delays, None)
            if delay is None:
                logger.warning(
                    "Salesforce %s: %d records still failed with a transient error after %d "
                    "re-sends, first positions %s",
                    operation,
                    len(retry),
                    len(self._lock_retry_delays),
                    retry[:10],
                )
                return
            logger.warning(
                "Salesforce %s: re-sending %d records that failed with %s in %.1f s, "
                "first positions %s",
                operation,
                len(retry),
                sorted({results[position].error_code for position in retry}),  # type: ignore[union-attr]
                delay,
                retry[:10],
            )
            self._sleep(delay)
            pending = retry

    def _send_collection(
        self,
        operation: str,
        sobject: str | None,
        items: list[Any],
        external_id_field: str | None,
    ) -> list[Mapping[str, Any]]:
        if operation == "create":
            response = self._request(
                "POST",
                "composite/sobjects",
                policy=_RetryPolicy.CREATE,
                json_body={"allOrNone": False, "records": items},
            )
        elif operation == "update":
            response = self._request(
                "PATCH",
                "composite/sobjects",
                policy=_RetryPolicy.IDEMPOTENT_WRITE,
                json_body={"allOrNone": False, "records": items},
            )
        elif operation == "upsert":
            response = self._request(
                "PATCH",
                f"composite/sobjects/{sobject}/{external_id_field}",
                policy=_RetryPolicy.IDEMPOTENT_WRITE,
                json_body={"allOrNone": False, "records": items},
            )
        else:
            response = self._request(
                "DELETE",
                "composite/sobjects",
                policy=_RetryPolicy.IDEMPOTENT_WRITE,
                params={"ids": ",".join(items), "allOrNone": "false"},
            )

        body = _json_body(response)
        if not isinstance(body, list) or len(body) != len(items):
            endpoint = endpoint_key(response.request.method or "", response.url)
            got = len(body) if isinstance(body, list) else type(body).__name__
            raise SalesforceRequestError(
                f"Salesforce returned {got} results for {len(items)} records on {endpoint}",
                endpoint=endpoint,
                status=response.status_code,
                error_code=None,
            )
        return body

    # -- describe --------------------------------------------------------------------------

    def describe_fields(self, sobject: str) -> dict[str, dict]:
        """Return the field describes of an sObject by field API name, cached per client.

        :param sobject: the sObject API name.
        :return: a new dict mapping each field name to its describe (``type``, ``length``,
            ``updateable``, ``externalId`` and so on).
        :raises SalesforceRequestError: with ``NOT_FOUND`` when the sObject does not exist.
        """
        _check_api_name(sobject, "sObject name")
        fields = self._describe_cache.get(sobject)
        if fields is None:
            response = self._request(
                "GET", f"sobjects/{sobject}/describe", policy=_RetryPolicy.READ
            )
            fields = {field["name"]: field for field in _json_body(response).get("fields", [])}
            self._describe_cache[sobject] = fields
        return dict(fields)

    def check_fields(self, sobject: str, names: Iterable[str]) -> None:
        """Raise unless ``sobject`` has every field in ``names`` (matched case-insensitively).

        :raises SalesforceSyncError: naming every missing field and how to add it, or naming
            the sObject when it does not exist.
        """
        wanted = list(dict.fromkeys(names))
        for name in wanted:
            _check_api_name(name, "field name")
        try:
            existing = {name.lower() for name in self.describe_fields(sobject)}
        except SalesforceRequestError as exc:
            if exc.status == 404:
                raise SalesforceSyncError(
                    f"sObject {sobject} was not found in Salesforce ({exc.error_code}): check "
                    "the name and that the sync user's profile can read it"
                ) from exc
            raise
        missing = [name for name in wanted if name.lower() not in existing]
        if missing:
            raise SalesforceSyncError(
                f"{sobject} lacks the field(s) {', '.join(missing)} that the sync needs: create "
                f"them as custom fields on {sobject} (Setup > Object Manager > {sobject} > "
                "Fields & Relationships) and give the sync user read and edit access"
            )

    # -- requests --------------------------------------------------------------------------

    def _connection(self) -> Salesforce:
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
            self._connection()

    @staticmethod
    def _resolve_url(connection: Salesforce, target: str) -> str:
        if target.startswith("https://"):
            return target
        if target.startswith("/"):
            return f"https://{connection.sf_instance}{target}"
        return connection.base_url + target

    def _request(
        self,
        method: str,
        target: str,
        *,
        policy: _RetryPolicy,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send one REST request with retries and at most one session renewal.

        :param target: a path relative to ``/services/data/vXX.X/``, a path from the host
            root (``nextRecordsUrl``) or an absolute URL.
        """
        endpoint = endpoint_key(method, self._resolve_url(self._connection(), target))
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
                    self._send_once, method, target, endpoint, params, json_body, headers
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
                raise self._final_transport_error(policy, endpoint, exc) from exc

    def _send_once(
        self,
        method: str,
        target: str,
        endpoint: str,
        params: Mapping[str, str] | None,
        json_body: Any,
        headers: Mapping[str, str] | None,
    ) -> requests.Response:
        connection = self._connection()
        request_headers = dict(connection.headers)
        if headers:
            request_headers.update(headers)
        response = connection.session.request(
            method,
            self._resolve_url(connection, target),
            params=params,
            json=json_body,
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
            usage = self.api_usage
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
        self, policy: _RetryPolicy, endpoint: str, exc: _TransientResponse
    ) -> SalesforceRequestError:
        code = exc.error_code or "(no error code)"
        if policy is _RetryPolicy.CREATE and exc.status != 429:
            return SalesforceWriteOutcomeUnknownError(
                f"Salesforce answered {endpoint} with HTTP {exc.status} {code}, so it is unknown "
                "which records were created. The request was not re-sent. Query for the records "
                "before creating them again, or create them with upsert on an external Id",
                endpoint=endpoint,
                status=exc.status,
                error_code=exc.error_code,
                record_indices=(),
            )
        attempts = self._max_attempts if _is_retryable(policy, exc) else 1
        return SalesforceRequestError(
            f"Salesforce answered {endpoint} with HTTP {exc.status} {code} on {attempts} "
            "attempt(s): try the run again later",
            endpoint=endpoint,
            status=exc.status,
            error_code=exc.error_code,
        )

    def _final_transport_error(
        self, policy: _RetryPolicy, endpoint: str, exc: requests.RequestException
    ) -> SalesforceRequestError:
        if policy is _RetryPolicy.CREATE and not isinstance(exc, requests.ConnectTimeout):
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


def _query_resource(include_deleted: bool) -> str:
    return "queryAll" if include_deleted else "query"


def _json_body(response: requests.Response) -> Any:
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


def _write_result(position: int, raw: Mapping[str, Any], operation: str) -> WriteResult:
    success = bool(raw.get("success"))
    errors = raw.get("errors") or []
    first_error = errors[0] if errors and isinstance(errors[0], Mapping) else {}
    created: bool | None = None
    if success:
        if operation == "create":
            created = True
        elif operation == "update":
            created = False
        elif operation == "upsert":
            created = raw.get("created")
    return WriteResult(
        index=position,
        success=success,
        id=raw.get("id"),
        created=created,
        error_code=None
        if success
        else first_error.get("statusCode") or first_error.get("errorCode"),
        error_message=None if success else first_error.get("message"),
    )


def _is_transient_login_error(exc: BaseException) -> bool:
    from simple_salesforce.exceptions import SalesforceAuthenticationFailed

    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        return True
    # A login answered with a 5xx and no SOAP fault carries the HTTP status as its code.
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
