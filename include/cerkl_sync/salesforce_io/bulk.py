"""Bulk API 2.0 ingest jobs, the large-write path of ``SalesforceClient.update`` and ``upsert``.

:func:`encode_records` turns records into CSV rows, :class:`IngestJob` runs one job through
the client's :class:`RestSession` (create, upload, close, poll, read results), and
:func:`job_results` matches the result rows back to input positions. Salesforce returns
result rows in no guaranteed order, so rows are matched on the ``Id`` column (update) or the
external Id column (upsert), which must be unique within a call.

simple-salesforce 1.12.10 has its own Bulk API 2.0 handler (``Salesforce.bulk2``). It is not
used, for these reasons found in its ``bulk2.py``:

- It writes records with ``csv.DictWriter``, which writes ``None`` as an empty cell. An empty
  cell leaves the field unchanged, so a ``None`` would not clear it.
- ``update`` and ``upsert`` wait with the module's own ``time.sleep``, every ``wait`` seconds
  (5 by default), for up to 24 hours. The wait can be neither replaced in tests nor given a
  shorter deadline per call.
- Its requests go through ``call_salesforce`` with the session Id fixed when ``sf.bulk2`` is
  read. So a 429, 5xx or dropped connection is not retried, and a 401 raises instead of
  logging in again.
- ``update`` and ``upsert`` return counts per job, not a result per record.

No log line or exception message contains a value from a record: they carry job Ids, sObject
and field names, counts, positions and error codes.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from include.cerkl_sync.salesforce_io.endpoints import endpoint_key
from include.cerkl_sync.salesforce_io.errors import (
    SalesforceRequestError,
    SalesforceSyncError,
    SalesforceWriteOutcomeUnknownError,
    WriteResult,
)
from include.cerkl_sync.salesforce_io.rest import RestSession, RetryPolicy, json_body

logger = logging.getLogger(__name__)

# In Bulk API 2.0 CSV, #N/A sets a field to null and an empty cell leaves it unchanged.
NULL_VALUE = "#N/A"
# Salesforce accepts at most 150 MB of CSV per upload, counted after it encodes the data in
# base64, and recommends at most 100 MB of raw CSV ("Upload Job Data", Bulk API 2.0 and
# Bulk API Developer Guide). Jobs are split by encoded size well below that.
MAX_JOB_CSV_BYTES = 50 * 1024 * 1024
POLL_FIRST_SECONDS = 1.0
POLL_MAX_SECONDS = 30.0
TERMINAL_STATES = frozenset({"JobComplete", "Failed", "Aborted"})

# Error codes of records that a job did not process. They are not Salesforce codes.
BULK_JOB_FAILED = "BULK_JOB_FAILED"
BULK_JOB_ABORTED = "BULK_JOB_ABORTED"
# A record in none of the job's result sets: its outcome is unknown.
BULK_RESULT_MISSING = "BULK_RESULT_MISSING"


class NotEncodableError(ValueError):
    """Records that a CSV job cannot carry as the Collections path would send them."""


class JobNotRunError(Exception):
    """A job that ended before it was closed, so none of its records were written.

    :ivar job_id: the job Id, or None when the job was not created.
    """

    def __init__(self, message: str, *, job_id: str | None) -> None:
        super().__init__(message)
        self.job_id = job_id


@dataclass
class EncodedRecords:
    """Records of one call as CSV: the header, one encoded line per record and its match key."""

    header: list[str]
    key_column: str
    lines: list[str]
    keys: list[str]


@dataclass
class JobOutcome:
    """Final state and result rows of one ingest job, keyed by match key."""

    job_id: str
    state: str
    error_message: str | None
    failed: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    succeeded: dict[str, tuple[str | None, bool | None]] = field(default_factory=dict)
    unprocessed: set[str] = field(default_factory=set)


def match_key(operation: str, value: str) -> str:
    """Return the key that matches a result row to a record.

    A record Id is matched on its first 15 characters, the case-sensitive Id that its
    15- and 18-character forms share. An external Id is compared case-insensitively, so
    that two values differing only in case, which Salesforce may match to one record,
    count as a repeated key.
    """
    return value[:15] if operation == "update" else value.casefold()


def encode_value(value: Any) -> str | None:
    """Return the CSV cell of a field value, or None when a CSV job cannot carry it.

    ``None`` and ``""`` become ``#N/A``, because REST clears a field for both and an empty
    CSV cell would leave it unchanged. A string that is ``#N/A`` itself would clear the field
    instead of storing the text, so it cannot be carried.
    """
    if value is None or value == "":
        return NULL_VALUE
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # ``str`` may write an exponent (``1e-05``). Salesforce reads double fields in CSV as
        # W3C XML Schema doubles, which allow one ("Valid CSV Record Rows", Bulk API 2.0 and
        # Bulk API Developer Guide).
        return str(value) if math.isfinite(value) else None
    if isinstance(value, str):
        return None if value == NULL_VALUE else value
    return None


def encode_records(
    operation: str, records: Sequence[Mapping[str, Any]], key_field: str
) -> EncodedRecords:
    """Encode update or upsert records as CSV lines with the ``csv`` module.

    The header is the union of the field names, in order of first appearance, with names
    that differ only in case merged under the first spelling. A record without a field gets
    an empty cell, which leaves the field unchanged, as leaving it out of the JSON does.

    :param operation: ``update`` or ``upsert``.
    :param records: field values by API name, without ``attributes``.
    :param key_field: ``Id`` for update, the external Id field for upsert.
    :raises NotEncodableError: when a value has no CSV form (see :func:`encode_value`), a
        record has two names for one field, or two records share a match key.
    """
    columns: dict[str, str] = {}
    lowered_records: list[dict[str, Any]] = []
    for position, record in enumerate(records):
        lowered: dict[str, Any] = {}
        for name, value in record.items():
            lower = name.lower()
            if lower in lowered:
                raise NotEncodableError(f"record at position {position} names {name} twice")
            lowered[lower] = value
            columns.setdefault(lower, name)
        lowered_records.append(lowered)
    key_lower = key_field.lower()
    header = list(columns.values())
    key_index = list(columns).index(key_lower)

    buffer = io.StringIO()
    # The csv module quotes a field only for the characters of its line terminator, so a
    # lone CR would go out unquoted and split the row. Rows are written with CRLF, which
    # quotes fields with CR or LF, and end in the job's LF.
    writer = csv.writer(buffer, lineterminator="\r\n")
    lines: list[str] = []
    keys: list[str] = []
    seen: set[str] = set()
    for position, lowered in enumerate(lowered_records):
        row: list[str] = []
        for lower in columns:
            if lower not in lowered:
                row.append("")
                continue
            cell = encode_value(lowered[lower])
            if cell is None:
                raise NotEncodableError(
                    f"record at position {position} has a {type(lowered[lower]).__name__} "
                    f"value in {columns[lower]} that CSV cannot carry"
                )
            row.append(cell)
        key = match_key(operation, row[key_index])
        if key in seen:
            raise NotEncodableError(f"record at position {position} repeats a {key_field} value")
        seen.add(key)
        keys.append(key)

        buffer.seek(0)
        buffer.truncate()
        writer.writerow(row)
        lines.append(buffer.getvalue().removesuffix("\r\n") + "\n")
    return EncodedRecords(header, columns[key_lower], lines, keys)


def header_line(header: Sequence[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(header)
    return buffer.getvalue()


def split_by_size(
    encoded: EncodedRecords, positions: Sequence[int], max_bytes: int
) -> list[list[int]]:
    """Split positions into jobs whose CSV, header included, stays within ``max_bytes``.

    A single record larger than ``max_bytes`` gets a job of its own.
    """
    header_bytes = len(header_line(encoded.header).encode("utf-8"))
    jobs: list[list[int]] = []
    current: list[int] = []
    size = header_bytes
    for position in positions:
        line_bytes = len(encoded.lines[position].encode("utf-8"))
        if current and size + line_bytes > max_bytes:
            jobs.append(current)
            current = []
            size = header_bytes
        current.append(position)
        size += line_bytes
    if current:
        jobs.append(current)
    return jobs


class IngestJob:
    """One Bulk API 2.0 ingest job, run through a :class:`RestSession`.

    :param rest: the session that sends the requests, with its retries, session renewal and
        call counting.
    :param sleep: the function that waits between polls.
    :param timeout: seconds from the close until the job must reach a final state.
    """

    def __init__(
        self,
        rest: RestSession,
        *,
        sobject: str,
        operation: str,
        external_id_field: str | None,
        sleep: Callable[[float], None],
        timeout: float,
    ) -> None:
        self._rest = rest
        self._sobject = sobject
        self._operation = operation
        self._external_id_field = external_id_field
        self._sleep = sleep
        self._timeout = timeout
        self.job_id: str | None = None

    def run(self, csv_data: bytes, key_column: str, record_count: int) -> JobOutcome:
        """Create, upload, close and poll the job, then read its result rows.

        :raises JobNotRunError: when the job could not be created, uploaded or closed. None
            of its records were written, so they can be sent another way.
        :raises SalesforceWriteOutcomeUnknownError: when the job was closed but its final
            state or its results could not be read. ``record_indices`` is left empty.
        :raises SalesforceApiLimitError, SalesforceAuthError: as any request does.
        """
        self._create()
        self._upload(csv_data, record_count)
        info = self._close()
        info = self._poll(info)
        return self._read_results(info, key_column, record_count)

    # -- steps ---------------------------------------------------------------------------

    def _create(self) -> None:
        body: dict[str, Any] = {
            "object": self._sobject,
            "operation": self._operation,
            "contentType": "CSV",
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
        }
        if self._external_id_field is not None:
            body["externalIdFieldName"] = self._external_id_field
        # A re-sent create can leave an empty Open job behind, which never runs.
        try:
            response = self._rest.request(
                "POST", "jobs/ingest", policy=RetryPolicy.IDEMPOTENT_WRITE, json_body=body
            )
            info = json_body(response)
        except SalesforceRequestError as exc:
            raise JobNotRunError(
                f"creating the Bulk API 2.0 {self._operation} job on {self._sobject} failed "
                f"({exc.status} {exc.error_code})",
                job_id=None,
            ) from exc
        job_id = info.get("id") if isinstance(info, Mapping) else None
        if not isinstance(job_id, str) or not job_id:
            raise JobNotRunError(
                f"Salesforce returned no job Id for the Bulk API 2.0 {self._operation} job on "
                f"{self._sobject}",
                job_id=None,
            )
        self.job_id = job_id

    def _upload(self, csv_data: bytes, record_count: int) -> None:
        # Salesforce rejects the close of a job that received two uploads (INVALIDJOB "Found
        # multipe contents for job", reported on Salesforce Stack Exchange for API 43.0). So
        # an upload whose outcome is unknown is not re-sent, and the job is aborted instead.
        try:
            self._rest.request(
                "PUT",
                f"jobs/ingest/{self.job_id}/batches",
                policy=RetryPolicy.CREATE,
                data=csv_data,
                headers={"Content-Type": "text/csv"},
            )
        except SalesforceRequestError as exc:
            self.abort()
            raise JobNotRunError(
                f"uploading {record_count} records to Bulk API 2.0 job {self.job_id} failed "
                f"({exc.status} {exc.error_code}), so the job was abandoned before it ran",
                job_id=self.job_id,
            ) from exc
        logger.debug(
            "Uploaded %d records, %d bytes, to Bulk API 2.0 job %s",
            record_count,
            len(csv_data),
            self.job_id,
        )

    def _close(self) -> Mapping[str, Any]:
        try:
            response = self._rest.request(
                "PATCH",
                f"jobs/ingest/{self.job_id}",
                policy=RetryPolicy.IDEMPOTENT_WRITE,
                json_body={"state": "UploadComplete"},
            )
            return json_body(response)
        except SalesforceRequestError as exc:
            close_error = exc
        # A close re-sent after a lost response is rejected because the job is no longer
        # Open, so the job state shows whether the close took effect.
        logger.warning(
            "Closing Bulk API 2.0 job %s failed (%s %s), reading its state",
            self.job_id,
            close_error.status,
            close_error.error_code,
        )
        info = self._get_info(close_error)
        if info.get("state") == "Open":
            self.abort()
            raise JobNotRunError(
                f"closing Bulk API 2.0 job {self.job_id} failed ({close_error.status} "
                f"{close_error.error_code}), so the job was abandoned before it ran",
                job_id=self.job_id,
            ) from close_error
        return info

    def _poll(self, info: Mapping[str, Any]) -> Mapping[str, Any]:
        started = time.monotonic()
        waited = 0.0
        delay = POLL_FIRST_SECONDS
        polls = 0
        while info.get("state") not in TERMINAL_STATES:
            # The sleep may be replaced in tests, so the time waited counts as well as the clock.
            elapsed = max(time.monotonic() - started, waited)
            if elapsed >= self._timeout:
                self.abort()
                raise self._unknown_outcome(
                    f"Bulk API 2.0 job {self.job_id} did not finish within {self._timeout:g} s "
                    f"(state {info.get('state')}, {polls} polls). It was asked to abort, but "
                    "records it processed before stay written: read its results in Salesforce "
                    "(Setup > Bulk Data Load Jobs) before sending them again",
                    None,
                )
            pause = min(delay, self._timeout - elapsed)
            self._sleep(pause)
            waited += pause
            delay = min(delay * 2, POLL_MAX_SECONDS)
            info = self._get_info(None)
            polls += 1
        logger.debug("Bulk API 2.0 job %s is %s after %d polls", self.job_id, info["state"], polls)
        return info

    def _get_info(self, cause: SalesforceRequestError | None) -> Mapping[str, Any]:
        try:
            response = self._rest.request(
                "GET", f"jobs/ingest/{self.job_id}", policy=RetryPolicy.READ
            )
            info = json_body(response)
        except SalesforceRequestError as exc:
            self.abort()
            raise self._unknown_outcome(
                f"reading the state of Bulk API 2.0 job {self.job_id} failed ({exc.status} "
                f"{exc.error_code}), so it is unknown which records it wrote: read its results "
                "in Salesforce (Setup > Bulk Data Load Jobs) before sending them again",
                exc,
            ) from (cause or exc)
        if not isinstance(info, Mapping):
            info = {}
        return info

    def _read_results(
        self, info: Mapping[str, Any], key_column: str, record_count: int
    ) -> JobOutcome:
        state = str(info.get("state"))
        outcome = JobOutcome(
            job_id=str(self.job_id), state=state, error_message=info.get("errorMessage")
        )
        # A complete job that processed every record and counts no failure has no failed
        # results to read, which saves one call per job.
        none_failed = (
            state == "JobComplete"
            and info.get("numberRecordsFailed") == 0
            and info.get("numberRecordsProcessed") == record_count
        )
        try:
            if not none_failed:
                for row in self._result_rows("failedResults", key_column):
                    code, _, message = row["sf__Error"].partition(":")
                    outcome.failed[row["key"]] = (code or None, message or None)
            # Every record of a complete update job that did not fail succeeded, so only
            # upserts (for sf__Created) and unfinished jobs read the successful results.
            if self._operation != "update" or state != "JobComplete":
                for row in self._result_rows("successfulResults", key_column):
                    created = row.get("sf__Created", "").lower() == "true"
                    outcome.succeeded[row["key"]] = (row.get("sf__Id") or None, created)
            if state != "JobComplete":
                for row in self._result_rows("unprocessedrecords", key_column):
                    outcome.unprocessed.add(row["key"])
        except SalesforceRequestError as exc:
            raise self._unknown_outcome(
                f"reading the results of Bulk API 2.0 job {self.job_id} ({state}) failed "
                f"({exc.status} {exc.error_code}): read them in Salesforce (Setup > Bulk Data "
                "Load Jobs) before sending the records again",
                exc,
            ) from exc
        return outcome

    def _result_rows(self, resource: str, key_column: str) -> list[dict[str, str]]:
        """Read one result set of the job, each row with its match ``key`` added.

        :raises SalesforceRequestError: when the request fails, or the CSV lacks the key
            column or has a row whose cells do not match the header.
        """
        response = self._rest.request(
            "GET", f"jobs/ingest/{self.job_id}/{resource}", policy=RetryPolicy.READ
        )

        def invalid(message: str) -> SalesforceRequestError:
            return SalesforceRequestError(
                message,
                endpoint=endpoint_key("GET", response.url),
                status=response.status_code,
                error_code=None,
            )

        # Salesforce sends the results as UTF-8 CSV, whatever charset the response names.
        text = response.content.decode("utf-8")
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader, None)
        data_rows = [values for values in reader if values]
        if not header or not data_rows:
            # An empty result set may come without the uploaded columns in its header.
            return []

        lowered = [name.lower() for name in header]
        if key_column.lower() not in lowered:
            raise invalid(
                f"the {resource} of Bulk API 2.0 job {self.job_id} lack the {key_column} column"
            )
        key_index = lowered.index(key_column.lower())

        rows = []
        for number, values in enumerate(data_rows, start=1):
            if len(values) != len(header):
                # Such a row cannot be matched to its record, so the outcome is unknown.
                raise invalid(
                    f"result row {number} of the {resource} of Bulk API 2.0 job {self.job_id} "
                    f"has {len(values)} columns where the header has {len(header)}"
                )
            row = dict(zip(header, values, strict=True))
            row["key"] = match_key(self._operation, values[key_index])
            rows.append(row)
        return rows

    def abort(self) -> bool:
        """Ask Salesforce to abort the job, and return whether it accepted.

        Failures are logged, not raised, because an abort only follows another failure.
        """
        if self.job_id is None:
            return False
        try:
            self._rest.request(
                "PATCH",
                f"jobs/ingest/{self.job_id}",
                policy=RetryPolicy.IDEMPOTENT_WRITE,
                json_body={"state": "Aborted"},
            )
        except SalesforceSyncError as exc:
            logger.warning(
                "Aborting Bulk API 2.0 job %s failed (%s)", self.job_id, type(exc).__name__
            )
            return False
        logger.warning("Aborted Bulk API 2.0 job %s", self.job_id)
        return True

    def _unknown_outcome(
        self, message: str, cause: SalesforceRequestError | None
    ) -> SalesforceWriteOutcomeUnknownError:
        return SalesforceWriteOutcomeUnknownError(
            message,
            endpoint=cause.endpoint if cause else "GET /services/data/vXX.X/jobs/ingest/{id}",
            status=cause.status if cause else None,
            error_code=cause.error_code if cause else None,
            record_indices=(),
        )


def job_results(
    operation: str,
    outcome: JobOutcome,
    positions: Sequence[int],
    keys: Sequence[str],
    ids: Sequence[str | None],
) -> list[WriteResult]:
    """Return one result per position from a job's result rows, in ``positions`` order.

    :param keys: the match key of every input record, by input position.
    :param ids: the ``Id`` of every input record (update), or None.
    """
    unprocessed_code = BULK_JOB_ABORTED if outcome.state == "Aborted" else BULK_JOB_FAILED
    results = []
    for position in positions:
        key = keys[position]
        if key in outcome.failed:
            code, message = outcome.failed[key]
            results.append(WriteResult(position, False, None, None, code, message))
        elif key in outcome.succeeded:
            record_id, created = outcome.succeeded[key]
            created = created if operation == "upsert" else False
            results.append(WriteResult(position, True, record_id, created, None, None))
        elif outcome.state == "JobComplete" and operation == "update":
            record_id = to_18_character_id(ids[position] or "")
            results.append(WriteResult(position, True, record_id, False, None, None))
        elif key in outcome.unprocessed:
            results.append(
                WriteResult(position, False, None, None, unprocessed_code, outcome.error_message)
            )
        else:
            results.append(
                WriteResult(position, False, None, None, BULK_RESULT_MISSING, outcome.error_message)
            )
    return results


_ID_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def to_18_character_id(record_id: str) -> str:
    """Return the 18-character form of a 15-character record Id; other values unchanged.

    Each of the three suffix characters encodes which letters of one 5-character block of
    the Id are upper case, bit i set for character i.
    """
    if len(record_id) != 15:
        return record_id
    suffix = ""
    for start in range(0, 15, 5):
        bits = sum(1 << i for i, char in enumerate(record_id[start : start + 5]) if char.isupper())
        suffix += _ID_SUFFIX_ALPHABET[bits]
    return record_id + suffix
