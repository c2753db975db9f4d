"""The Salesforce client the sync's tasks use: queries, writes and describes.

Writes go through sObject Collections, and large updates and upserts through Bulk API 2.0
ingest jobs (see :mod:`include.cerkl_sync.salesforce_io.bulk`).

Every request goes through the Airflow provider's ``SalesforceHook``: the hook logs in,
and :class:`~include.cerkl_sync.salesforce_io.rest.RestSession` sends the REST requests on
its session with the retry and session-renewal rules described there.

No log line or exception message contains a value from a record or a query. They carry
sObject and field names, record Ids, input positions, counts, endpoint keys and error codes.

simple-salesforce and the Airflow provider are imported when first needed, because DAG files
import this module at parse time and importing simple-salesforce 1.12.10 alone took 1.1 s
(``python -X importtime`` on a 2-core machine).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import requests
from cerkl.redaction import QueryRedactingFilter, install_log_redaction

from include.cerkl_sync.salesforce_io import bulk
from include.cerkl_sync.salesforce_io.endpoints import (
    RequestCounter,
    endpoint_key,
    install_request_counter,
)
from include.cerkl_sync.salesforce_io.errors import (
    SalesforceRequestError,
    SalesforceSyncError,
    SalesforceWriteOutcomeUnknownError,
    WriteResult,
)
from include.cerkl_sync.salesforce_io.rest import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_REQUEST_TIMEOUT,
    TRANSIENT_ERROR_CODES,
    RestSession,
    RetryPolicy,
    json_body,
)
from include.cerkl_sync.salesforce_io.soql import (
    MAX_REQUEST_URI_BYTES,
    check_string_value,
    pack_in_statements,
    split_template,
)

if TYPE_CHECKING:
    from airflow.providers.salesforce.hooks.salesforce import SalesforceHook

logger = logging.getLogger(__name__)

COLLECTION_BATCH_SIZE = 200
# A job costs 4 calls with one poll and no failed record (create, upload, close, poll), one
# more to read failed results, one more per extra poll, and an upsert one more for the
# successful results. Above 1,000 records Collections take 6 calls or more, so a job that
# finishes within a poll or two costs no more, and the saving grows with the size.
DEFAULT_BULK_THRESHOLD = 1000
DEFAULT_BULK_JOB_TIMEOUT = 1800.0
MIN_PAGE_SIZE = 200
MAX_PAGE_SIZE = 2000

_TRANSPORT_LOGGER = "include.cerkl_sync.salesforce_transport"
_REDACTION_FILTER = QueryRedactingFilter()


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
    :param bulk_threshold: :meth:`update` and :meth:`upsert` of more records than this use
        Bulk API 2.0 ingest jobs instead of sObject Collections. None or 0 turns jobs off.
    :param bulk_job_timeout: seconds a closed ingest job may take to finish before the call
        raises :class:`SalesforceWriteOutcomeUnknownError`.
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
        bulk_threshold: int | None = DEFAULT_BULK_THRESHOLD,
        bulk_job_timeout: float = DEFAULT_BULK_JOB_TIMEOUT,
    ) -> None:
        from airflow.providers.salesforce.hooks.salesforce import SalesforceHook

        delays = tuple(float(delay) for delay in lock_retry_delays)
        if any(delay < 0 for delay in delays):
            raise ValueError(f"lock_retry_delays {delays!r} contains a negative delay")
        if bulk_threshold is not None and (
            isinstance(bulk_threshold, bool)
            or not isinstance(bulk_threshold, int)
            or bulk_threshold < 0
        ):
            raise ValueError(
                f"invalid bulk_threshold {bulk_threshold!r}: use a whole number of records "
                ">= 0, or None to write with sObject Collections only"
            )
        if not bulk_job_timeout > 0:
            raise ValueError(f"invalid bulk_job_timeout {bulk_job_timeout!r}: use seconds > 0")

        if session is None:
            from include.cerkl_sync.salesforce_transport import build_salesforce_session

            session = build_salesforce_session()

        self.conn_id = conn_id
        self.hook: SalesforceHook = SalesforceHook(salesforce_conn_id=conn_id, session=session)
        self._lock_retry_delays = delays
        self._sleep = sleep
        self._bulk_threshold = bulk_threshold or 0
        self._bulk_job_timeout = float(bulk_job_timeout)
        self._counter = RequestCounter()
        self._rest = RestSession(
            self.hook,
            counter=self._counter,
            sleep=sleep,
            max_attempts=max_attempts,
            request_timeout=request_timeout,
        )
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
        in input order, each statement filled until the next value would not fit. Each
        statement stays within 100,000 characters, and the URL-encoded request URL (scheme
        and host included) within 16,384 bytes. The pages of each statement are followed as
        in :meth:`iter_query_pages`.

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
        checked = [check_string_value(position, value) for position, value in enumerate(values)]
        unique = list(dict.fromkeys(checked))
        return self._iter_batched(soql_template, unique, include_deleted)

    def _iter_batched(
        self, soql_template: str, values: list[str], include_deleted: bool
    ) -> Iterator[list[dict]]:
        if not values:
            return
        resource = _query_resource(include_deleted)
        base_url = self._rest.url(resource)
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
        response = self._rest.request(
            "GET", resource, policy=RetryPolicy.READ, params={"q": soql}, headers=headers
        )
        pages = 0
        records = 0
        while True:
            body = json_body(response)
            page = [_without_attributes(record) for record in body.get("records", [])]
            pages += 1
            records += len(page)
            yield page

            next_url = body.get("nextRecordsUrl")
            if body.get("done", True) or not next_url:
                break
            response = self._rest.request("GET", next_url, policy=RetryPolicy.READ, headers=headers)
        logger.debug("SOQL query returned %d records in %d pages", records, pages)

    # -- writes -----------------------------------------------------------------------------

    def create(self, sobject: str, records: Sequence[dict]) -> list[WriteResult]:
        """Insert records with sObject Collections, 200 a request, ``allOrNone`` false.

        A create is not idempotent: when a request's outcome is unknown (the connection
        dropped, a timeout, a 5xx) it raises :class:`SalesforceWriteOutcomeUnknownError`
        and does not re-send. To make a create safe to repeat, give the records an external
        Id field and call :meth:`upsert` on it. Creates never use Bulk API 2.0, because a
        job whose state cannot be read leaves an unknown set of records created, and the
        whole job would then be unsafe to send again.

        :param sobject: the sObject API name, e.g. ``Contact``.
        :param records: field values by API name, without ``Id``.
        :return: one result per input record, in input order, with ``created`` True on
            success. Records rejected by Salesforce have ``success`` False.
        :raises ValueError: when a record has an ``Id`` or a name is invalid.
        :raises SalesforceSyncError: when a request fails. ``partial_results`` contains the
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
        """Update records by ``Id``, with ``allOrNone`` false.

        Up to ``bulk_threshold`` records go through sObject Collections, 200 a request, and
        more through Bulk API 2.0 ingest jobs (see :meth:`_write_large`).

        :param sobject: the sObject API name.
        :param records: each with ``Id`` and the fields to change. A value of None clears
            the field, and a field left out stays as it is.
        :return: one result per input record, in input order, with ``created`` False on
            success.
        :raises ValueError: when a record lacks an ``Id`` or a name is invalid.
        :raises SalesforceWriteOutcomeUnknownError: when an ingest job's outcome cannot be
            read. ``record_indices`` lists that job's input positions.
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
        if self._uses_bulk(len(bodies)):
            return self._write_large("update", sobject, bodies, None)
        return self._write("update", sobject, bodies)

    def upsert(
        self, sobject: str, external_id_field: str, records: Sequence[dict]
    ) -> list[WriteResult]:
        """Insert or update records matched on an external Id field.

        Repeating an upsert leaves the same records, which makes it the safe way to create
        records when a request may have to be re-sent. Up to ``bulk_threshold`` records go
        through sObject Collections, 200 a request, and more through Bulk API 2.0 ingest
        jobs (see :meth:`_write_large`).

        :param sobject: the sObject API name.
        :param external_id_field: API name of a field marked External ID on ``sobject``.
        :param records: each with a non-empty value for ``external_id_field``.
        :return: one result per input record, in input order, with ``created`` as
            Salesforce reports it.
        :raises ValueError: when a record lacks the external Id or a name is invalid.
        :raises SalesforceWriteOutcomeUnknownError: when an ingest job's outcome cannot be
            read. ``record_indices`` lists that job's input positions.
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
        if self._uses_bulk(len(bodies)):
            return self._write_large("upsert", sobject, bodies, external_id_field)
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
        _log_write_summary(operation, sobject, done)
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

            delay = self._next_resend_delay(operation, delays, retry, results)
            if delay is None:
                return
            self._sleep(delay)
            pending = retry

    def _next_resend_delay(
        self,
        operation: str,
        delays: Iterator[float],
        retry: list[int],
        results: list[WriteResult | None],
    ) -> float | None:
        """Return the wait before re-sending ``retry``, or None when the delays ran out."""
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
            return None
        logger.warning(
            "Salesforce %s: re-sending %d records that failed with %s in %.1f s, "
            "first positions %s",
            operation,
            len(retry),
            sorted({results[position].error_code for position in retry}),  # type: ignore[union-attr]
            delay,
            retry[:10],
        )
        return delay

    # -- Bulk API 2.0 writes ----------------------------------------------------------------

    def _uses_bulk(self, record_count: int) -> bool:
        return bool(self._bulk_threshold) and record_count > self._bulk_threshold

    def _write_large(
        self,
        operation: str,
        sobject: str,
        bodies: list[dict[str, Any]],
        external_id_field: str | None,
    ) -> list[WriteResult]:
        """Update or upsert many records with Bulk API 2.0 ingest jobs.

        Results match what :meth:`_write` returns, one per record in input order. Records
        that a job did not process fail with ``BULK_JOB_FAILED`` or ``BULK_JOB_ABORTED``.
        Records that fail with a transient code are re-sent after each of
        ``lock_retry_delays``, by a job when there are more than ``bulk_threshold`` of them
        and by sObject Collections when fewer. A job that ends before it is closed wrote
        nothing, so its records go through sObject Collections instead.

        Collections take the whole call when the records repeat a match key (``Id`` or the
        external Id) or a value has no CSV form, because job results are matched by key.
        """
        records = [{k: v for k, v in body.items() if k != "attributes"} for body in bodies]
        key_field = external_id_field or "Id"
        try:
            encoded = bulk.encode_records(operation, records, key_field)
        except bulk.NotEncodableError as exc:
            logger.info(
                "Salesforce %s %s: sending %d records with sObject Collections, because %s",
                operation,
                sobject,
                len(records),
                exc,
            )
            return self._write(operation, sobject, bodies, external_id_field=external_id_field)

        ids = [_field_value(record, "Id") for record in records]
        results: list[WriteResult | None] = [None] * len(records)
        delays = iter(self._lock_retry_delays)
        pending = list(range(len(records)))
        try:
            while True:
                if self._uses_bulk(len(pending)):
                    self._send_jobs(
                        operation,
                        sobject,
                        external_id_field,
                        bodies,
                        encoded,
                        ids,
                        pending,
                        results,
                    )
                else:
                    self._send_collections_once(
                        operation, sobject, bodies, pending, results, external_id_field
                    )
                retry = [
                    position
                    for position in pending
                    if not results[position].success  # type: ignore[union-attr]
                    and results[position].error_code in TRANSIENT_ERROR_CODES  # type: ignore[union-attr]
                ]
                if not retry:
                    break
                delay = self._next_resend_delay(operation, delays, retry, results)
                if delay is None:
                    break
                self._sleep(delay)
                pending = retry
        except SalesforceSyncError as exc:
            exc.partial_results = [result for result in results if result is not None]
            raise

        done = [result for result in results if result is not None]
        _log_write_summary(operation, sobject, done)
        return done

    def _send_jobs(
        self,
        operation: str,
        sobject: str,
        external_id_field: str | None,
        bodies: list[dict[str, Any]],
        encoded: bulk.EncodedRecords,
        ids: list[Any],
        positions: list[int],
        results: list[WriteResult | None],
    ) -> None:
        header = bulk.header_line(encoded.header)
        for job_positions in bulk.split_by_size(encoded, positions, bulk.MAX_JOB_CSV_BYTES):
            csv_data = (header + "".join(encoded.lines[p] for p in job_positions)).encode("utf-8")
            job = bulk.IngestJob(
                self._rest,
                sobject=sobject,
                operation=operation,
                external_id_field=external_id_field,
                sleep=self._sleep,
                timeout=self._bulk_job_timeout,
            )
            try:
                outcome = job.run(csv_data, encoded.key_column, len(job_positions))
            except bulk.JobNotRunError as exc:
                logger.warning(
                    "Salesforce %s %s: %s. Sending its %d records with sObject Collections",
                    operation,
                    sobject,
                    exc,
                    len(job_positions),
                )
                self._send_collections_once(
                    operation, sobject, bodies, job_positions, results, external_id_field
                )
                continue
            except SalesforceWriteOutcomeUnknownError as exc:
                exc.record_indices = list(job_positions)
                raise

            job_results = bulk.job_results(operation, outcome, job_positions, encoded.keys, ids)
            for result in job_results:
                results[result.index] = result
            logger.info(
                "Salesforce %s %s: Bulk API 2.0 job %s ended %s with %d records, %d failed",
                operation,
                sobject,
                outcome.job_id,
                outcome.state,
                len(job_positions),
                sum(1 for result in job_results if not result.success),
            )

    def _send_collections_once(
        self,
        operation: str,
        sobject: str,
        bodies: list[dict[str, Any]],
        positions: list[int],
        results: list[WriteResult | None],
        external_id_field: str | None,
    ) -> None:
        """Send the records at ``positions`` with sObject Collections, without re-sends."""
        for start in range(0, len(positions), COLLECTION_BATCH_SIZE):
            batch = positions[start : start + COLLECTION_BATCH_SIZE]
            try:
                raw_results = self._send_collection(
                    operation, sobject, [bodies[position] for position in batch], external_id_field
                )
            except SalesforceWriteOutcomeUnknownError as exc:
                exc.record_indices = list(batch)
                raise
            for position, raw in zip(batch, raw_results, strict=True):
                results[position] = _write_result(position, raw, operation)

    def _send_collection(
        self,
        operation: str,
        sobject: str | None,
        items: list[Any],
        external_id_field: str | None,
    ) -> list[Mapping[str, Any]]:
        if operation == "create":
            response = self._rest.request(
                "POST",
                "composite/sobjects",
                policy=RetryPolicy.CREATE,
                json_body={"allOrNone": False, "records": items},
            )
        elif operation == "update":
            response = self._rest.request(
                "PATCH",
                "composite/sobjects",
                policy=RetryPolicy.IDEMPOTENT_WRITE,
                json_body={"allOrNone": False, "records": items},
            )
        elif operation == "upsert":
            response = self._rest.request(
                "PATCH",
                f"composite/sobjects/{sobject}/{external_id_field}",
                policy=RetryPolicy.IDEMPOTENT_WRITE,
                json_body={"allOrNone": False, "records": items},
            )
        else:
            response = self._rest.request(
                "DELETE",
                "composite/sobjects",
                policy=RetryPolicy.IDEMPOTENT_WRITE,
                params={"ids": ",".join(items), "allOrNone": "false"},
            )

        body = json_body(response)
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
            response = self._rest.request(
                "GET", f"sobjects/{sobject}/describe", policy=RetryPolicy.READ
            )
            fields = {field["name"]: field for field in json_body(response).get("fields", [])}
            self._describe_cache[sobject] = fields
        return dict(fields)

    def check_fields(self, sobject: str, names: Iterable[str]) -> None:
        """Raise unless ``sobject`` has every field in ``names`` (matched case-insensitively).

        :raises SalesforceSyncError: naming every missing field and how to add it, or naming
            the sObject when it does not exist.
        """
        requested = list(dict.fromkeys(names))
        for name in requested:
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
        missing = [name for name in requested if name.lower() not in existing]
        if missing:
            raise SalesforceSyncError(
                f"{sobject} lacks the field(s) {', '.join(missing)} that the sync needs: create "
                f"them as custom fields on {sobject} (Setup > Object Manager > {sobject} > "
                "Fields & Relationships) and give the sync user read and edit access"
            )


def _log_write_summary(operation: str, sobject: str | None, done: list[WriteResult]) -> None:
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


def _query_resource(include_deleted: bool) -> str:
    return "queryAll" if include_deleted else "query"


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
