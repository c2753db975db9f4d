"""Bulk API 2.0 ingest and query jobs of the Salesforce sandbox.

An ingest job runs to the end when it is marked ``UploadComplete``, so the first poll
returns ``JobComplete``. The ``/__sandbox__/bulk_ingest`` control can instead keep closed jobs
``InProgress`` for a number of polls, and return result rows in reverse input order, as
Salesforce may. Job information is stored in the database. Query job results are kept in
memory, so a restart drops them.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from typing import Any

from include.sandbox.salesforce import records
from include.sandbox.salesforce.errors import SalesforceApiError, not_found
from include.sandbox.salesforce.ids import BULK_JOB_PREFIX, make_id
from include.sandbox.salesforce.soql import compile_soql, count_matches, fetch_page
from include.sandbox.salesforce.store import SalesforceStore, format_datetime

logger = logging.getLogger(__name__)

COLUMN_DELIMITERS = {
    "COMMA": ",",
    "TAB": "\t",
    "PIPE": "|",
    "SEMICOLON": ";",
    "CARET": "^",
    "BACKQUOTE": "`",
}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
INGEST_OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
QUERY_OPERATIONS = ("query", "queryAll")
RESULT_ORDERS = ("input", "reversed")
# In Bulk API 2.0 CSV this value sets a field to null, while an empty value leaves it as is.
NULL_VALUE = "#N/A"


class BulkJobs:
    """Bulk API 2.0 jobs on one store."""

    def __init__(self, store: SalesforceStore, user_id: str) -> None:
        self.store = store
        self.user_id = user_id
        self._query_rows: dict[str, list[list[str]]] = {}
        self._query_headers: dict[str, list[str]] = {}
        self.in_progress_polls = 0
        self.result_order = "input"

    # Controls

    def ingest_controls(self) -> dict[str, Any]:
        """Return the ingest job controls: ``in_progress_polls`` and ``result_order``."""
        return {"in_progress_polls": self.in_progress_polls, "result_order": self.result_order}

    def set_ingest_controls(
        self, in_progress_polls: int | None = None, result_order: str | None = None
    ) -> dict[str, Any]:
        """Set the ingest job controls. None leaves a control as it is.

        :param in_progress_polls: job polls for which a closed job stays ``InProgress``.
        :param result_order: row order of the job results, ``input`` or ``reversed``.

        :raises ValueError: naming the invalid control.
        """
        if in_progress_polls is not None:
            if (
                isinstance(in_progress_polls, bool)
                or not isinstance(in_progress_polls, int)
                or in_progress_polls < 0
            ):
                raise ValueError(
                    f"invalid in_progress_polls {in_progress_polls!r}: use a whole number >= 0"
                )
            self.in_progress_polls = in_progress_polls
        if result_order is not None:
            if result_order not in RESULT_ORDERS:
                raise ValueError(
                    f"invalid result_order {result_order!r}: use one of {', '.join(RESULT_ORDERS)}"
                )
            self.result_order = result_order
        return self.ingest_controls()

    def reset_controls(self) -> None:
        """Reset the controls, so closed jobs run at once and results keep input order."""
        self.in_progress_polls = 0
        self.result_order = "input"

    # Storage

    def _save(self, info: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
        stored = dict(info)
        if extra:
            stored["_private"] = extra
        with self.store.lock:
            self.store.connection.execute(
                "INSERT INTO _bulk_jobs (id, info) VALUES (?, ?) "
                "ON CONFLICT(id) DO UPDATE SET info = excluded.info",
                (info["id"], json.dumps(stored)),
            )

    def _load(self, job_id: str, job_type: str) -> tuple[dict[str, Any], dict[str, Any]]:
        with self.store.lock:
            row = self.store.connection.execute(
                "SELECT info FROM _bulk_jobs WHERE id = ?", (job_id,)
            ).fetchone()
        if row is None:
            raise not_found(f"The requested resource does not exist: job {job_id}")
        info = json.loads(row[0])
        private = info.pop("_private", {})
        if info["jobType"] != job_type:
            raise not_found(f"The requested resource does not exist: job {job_id}")
        return info, private

    def _new_info(self, body: dict[str, Any], job_type: str, api_version: str) -> dict[str, Any]:
        with self.store.lock:
            sequence = self.store._next_sequence(BULK_JOB_PREFIX)
        now = format_datetime(self.store.clock())
        delimiter = body.get("columnDelimiter", "COMMA")
        line_ending = body.get("lineEnding", "LF")
        if delimiter not in COLUMN_DELIMITERS:
            raise SalesforceApiError(
                400,
                "INVALIDJOB",
                f"Invalid columnDelimiter {delimiter!r}: use one of {', '.join(COLUMN_DELIMITERS)}",
            )
        if line_ending not in LINE_ENDINGS:
            raise SalesforceApiError(
                400, "INVALIDJOB", f"Invalid lineEnding {line_ending!r}: use LF or CRLF"
            )
        return {
            "id": make_id(BULK_JOB_PREFIX, sequence),
            "operation": body.get("operation"),
            "object": body.get("object"),
            "createdById": self.user_id,
            "createdDate": now,
            "systemModstamp": now,
            "state": "Open",
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(api_version),
            "lineEnding": line_ending,
            "columnDelimiter": delimiter,
            "jobType": job_type,
            "numberRecordsProcessed": 0,
            "numberRecordsFailed": 0,
            "retries": 0,
            "totalProcessingTime": 0,
            "apiActiveProcessingTime": 0,
            "apexProcessingTime": 0,
        }

    # Ingest

    def create_ingest(self, body: dict[str, Any], api_version: str) -> dict[str, Any]:
        """Create an ingest job in state ``Open``.

        :raises SalesforceApiError: INVALIDJOB for an unknown operation or missing external Id
            field, NOT_FOUND for an unknown object.
        """
        operation = body.get("operation")
        if operation not in INGEST_OPERATIONS:
            raise SalesforceApiError(
                400,
                "INVALIDJOB",
                f"Invalid operation {operation!r}: use one of {', '.join(INGEST_OPERATIONS)}",
            )
        definition = self.store.definition(str(body.get("object", "")))
        info = self._new_info(body, "V2Ingest", api_version)
        info["object"] = definition.name
        if operation == "upsert":
            external = body.get("externalIdFieldName")
            if not external:
                raise SalesforceApiError(
                    400, "INVALIDJOB", "externalIdFieldName is required for upsert jobs"
                )
            info["externalIdFieldName"] = external
        info["contentUrl"] = f"services/data/v{api_version}/jobs/ingest/{info['id']}/batches"
        self._save(info, {"data": ""})
        logger.info("Created Bulk API 2.0 %s job %s on %s", operation, info["id"], definition.name)
        return info

    def upload(self, job_id: str, data: bytes) -> None:
        """Append CSV data to an open ingest job.

        :raises SalesforceApiError: INVALIDJOBSTATE when the job is not open.
        """
        info, private = self._load(job_id, "V2Ingest")
        if info["state"] != "Open":
            raise SalesforceApiError(
                409, "INVALIDJOBSTATE", f"Job {job_id} is in state {info['state']}, not Open"
            )
        text = data.decode("utf-8")
        if private.get("data"):
            # A later upload repeats the header row, so only its data rows are kept.
            line_ending = LINE_ENDINGS[info["lineEnding"]]
            text = text.split(line_ending, 1)[1] if line_ending in text else ""
        private["data"] = private.get("data", "") + text
        self._save(info, private)

    def get_job(self, job_id: str, job_type: str) -> dict[str, Any]:
        """Return the job information, running a closed ingest job once its polls are used up."""
        info, private = self._load(job_id, job_type)
        if job_type == "V2Ingest" and info["state"] in ("UploadComplete", "InProgress"):
            polls_left = private.get("polls_before_run", 0)
            if polls_left > 0:
                info["state"] = "InProgress"
                private["polls_before_run"] = polls_left - 1
            else:
                self._run_ingest(info, private)
            self._save(info, private)
        return info

    def set_state(self, job_id: str, job_type: str, state: str) -> dict[str, Any]:
        """Close (``UploadComplete``) or abort (``Aborted``) a job.

        Closing an ingest job runs it, at once or after the polls set by
        :meth:`set_ingest_controls`.

        :raises SalesforceApiError: INVALIDJOBSTATE for any other change.
        """
        info, private = self._load(job_id, job_type)
        if state == "Aborted" and info["state"] in ("Open", "UploadComplete", "InProgress"):
            info["state"] = "Aborted"
        elif state == "UploadComplete" and info["state"] == "Open" and job_type == "V2Ingest":
            info["state"] = "UploadComplete"
            self._save(info, private)
            if self.in_progress_polls:
                private["polls_before_run"] = self.in_progress_polls
            else:
                self._run_ingest(info, private)
        else:
            raise SalesforceApiError(
                409,
                "INVALIDJOBSTATE",
                f"Cannot change job {job_id} from {info['state']} to {state}",
            )
        self._save(info, private)
        return info

    def delete_job(self, job_id: str, job_type: str) -> None:
        """Delete a job and its data."""
        self._load(job_id, job_type)
        with self.store.lock:
            self.store.connection.execute("DELETE FROM _bulk_jobs WHERE id = ?", (job_id,))
        self._query_rows.pop(job_id, None)
        self._query_headers.pop(job_id, None)

    def _run_ingest(self, info: dict[str, Any], private: dict[str, Any]) -> None:
        data = private.get("data", "")
        delimiter = COLUMN_DELIMITERS[info["columnDelimiter"]]
        reader = csv.reader(io.StringIO(data, newline=""), delimiter=delimiter)
        rows = [row for row in reader if row]
        if not rows:
            info["state"] = "Failed"
            info["errorMessage"] = "InvalidBatch : No data uploaded for this job"
            return
        header, body_rows = rows[0], rows[1:]
        definition = self.store.definition(info["object"])
        unknown = [name for name in header if definition.field(name) is None]
        if unknown:
            info["state"] = "Failed"
            info["errorMessage"] = f"InvalidBatch : Field name not found : {unknown[0]}"
            return

        successes: list[list[str]] = []
        failures: list[list[str]] = []
        with records.transaction(self.store):
            for row in body_rows:
                values = dict(zip(header, row, strict=False))
                try:
                    with records.savepoint(self.store):
                        record_id, created = self._ingest_row(info, values)
                    successes.append([record_id, "true" if created else "false", *row])
                except SalesforceApiError as exc:
                    fields = ",".join(exc.fields)
                    failures.append(["", f"{exc.error_code}:{exc.message}:{fields}", *row])
        info["state"] = "JobComplete"
        info["numberRecordsProcessed"] = len(body_rows)
        info["numberRecordsFailed"] = len(failures)
        private["header"] = header
        private["successes"] = successes
        private["failures"] = failures
        private.pop("data", None)
        logger.info(
            "Bulk API 2.0 job %s processed %d records, %d failed",
            info["id"],
            len(body_rows),
            len(failures),
        )

    def _ingest_row(self, info: dict[str, Any], values: dict[str, str]) -> tuple[str, bool]:
        sobject = info["object"]
        operation = info["operation"]
        cleaned: dict[str, Any] = {}
        for name, value in values.items():
            if value == "":
                continue
            cleaned[name] = None if value == NULL_VALUE else value
        record_id = next((v for k, v in cleaned.items() if k.lower() == "id"), None)

        if operation == "insert":
            return records.create_record(self.store, sobject, cleaned), True
        if operation == "upsert":
            external = info["externalIdFieldName"]
            key = next((v for k, v in cleaned.items() if k.lower() == external.lower()), None)
            if key is None:
                raise SalesforceApiError(
                    400,
                    "REQUIRED_FIELD_MISSING",
                    f"Required fields are missing: [{external}]",
                    [external],
                )
            return records.upsert_record(self.store, sobject, external, str(key), cleaned)

        if record_id is None:
            raise SalesforceApiError(
                400, "MISSING_ARGUMENT", "Id not specified in an update call", ["Id"]
            )
        if operation == "update":
            body = {k: v for k, v in cleaned.items() if k.lower() != "id"}
            return records.update_record(self.store, sobject, record_id, body), False

        deleted_id = records.delete_record(self.store, sobject, record_id)
        if operation == "hardDelete":
            self.store.connection.execute(f'DELETE FROM "{sobject}" WHERE Id = ?', (deleted_id,))
        return deleted_id, False

    def ingest_results(self, job_id: str, kind: str) -> str:
        """Return the CSV of ``successfulResults``, ``failedResults`` or ``unprocessedrecords``."""
        info, private = self._load(job_id, "V2Ingest")
        header = private.get("header", [])
        delimiter = COLUMN_DELIMITERS[info["columnDelimiter"]]
        line_ending = LINE_ENDINGS[info["lineEnding"]]
        if kind == "successfulResults":
            columns, rows = ["sf__Id", "sf__Created", *header], private.get("successes", [])
        elif kind == "failedResults":
            columns, rows = ["sf__Id", "sf__Error", *header], private.get("failures", [])
        else:
            columns, rows = header, []
            if info["state"] in ("Open", "Aborted", "Failed") and private.get("data"):
                parsed = list(
                    csv.reader(io.StringIO(private["data"], newline=""), delimiter=delimiter)
                )
                columns, rows = (parsed[0], parsed[1:]) if parsed else ([], [])
        if self.result_order == "reversed":
            rows = list(reversed(rows))
        if not columns:
            return ""
        # Salesforce quotes every value of an ingest result file, so a lone CR in a value
        # stays inside its row.
        return _write_csv([columns, *rows], delimiter, line_ending, quote_all=True)

    # Query

    def create_query(self, body: dict[str, Any], api_version: str) -> dict[str, Any]:
        """Create a query job and run its query, so the job is ``JobComplete`` at once.

        :raises SalesforceApiError: INVALIDJOB for an unknown operation or ``COUNT()``, and
            the SOQL errors of the statement.
        """
        operation = body.get("operation")
        if operation not in QUERY_OPERATIONS:
            raise SalesforceApiError(
                400, "INVALIDJOB", f"Invalid operation {operation!r}: use query or queryAll"
            )
        compiled = compile_soql(
            str(body.get("query", "")),
            include_deleted=operation == "queryAll",
            api_version=api_version,
        )
        if compiled.is_count:
            raise SalesforceApiError(
                400, "INVALIDJOB", "COUNT() is not supported by Bulk API 2.0 query jobs"
            )
        info = self._new_info(body, "V2Query", api_version)
        info["object"] = compiled.sobject.name
        with self.store.lock:
            total = count_matches(self.store.connection, compiled)
            rows = fetch_page(self.store.connection, compiled, 0, total)
        self._query_headers[info["id"]] = [selected.label for selected in compiled.fields]
        self._query_rows[info["id"]] = [compiled.csv_values(row) for row in rows]
        info["state"] = "JobComplete"
        info["numberRecordsProcessed"] = len(rows)
        self._save(info)
        logger.info("Bulk API 2.0 query job %s found %d records", info["id"], len(rows))
        return info

    def query_results(
        self, job_id: str, locator: str | None, max_records: int | None
    ) -> tuple[str, int, str]:
        """Return one page of query results: (CSV text, record count, next locator or "null").

        :raises SalesforceApiError: NOT_FOUND for an unknown job, INVALIDJOBSTATE while the
            job runs or after a restart dropped its results, INVALID_LOCATOR for a bad locator.
        """
        info, _ = self._load(job_id, "V2Query")
        rows = self._query_rows.get(job_id)
        if info["state"] != "JobComplete" or rows is None:
            raise SalesforceApiError(
                400, "INVALIDJOBSTATE", f"Results of job {job_id} are not available"
            )
        start = 0
        if locator:
            if not locator.isdigit() or int(locator) > len(rows):
                raise SalesforceApiError(400, "INVALID_LOCATOR", f"Invalid locator {locator!r}")
            start = int(locator)
        size = len(rows) - start if not max_records else max_records
        page = rows[start : start + size]
        next_start = start + len(page)
        next_locator = str(next_start) if next_start < len(rows) else "null"
        delimiter = COLUMN_DELIMITERS[info["columnDelimiter"]]
        line_ending = LINE_ENDINGS[info["lineEnding"]]
        text = _write_csv([self._query_headers[job_id], *page], delimiter, line_ending)
        return text, len(page), next_locator


def _write_csv(
    rows: list[list[str]], delimiter: str, line_ending: str, *, quote_all: bool = False
) -> str:
    buffer = io.StringIO()
    quoting = csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator=line_ending, quoting=quoting)
    writer.writerows(rows)
    return buffer.getvalue()
