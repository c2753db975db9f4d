"""REST resources of the Salesforce sandbox under ``/services/data/vXX.X/``.

Each handler takes the parsed request and returns ``(status, JSON body or None)``. It raises
:class:`SalesforceApiError` for an error response.
"""

from __future__ import annotations

import logging
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from include.sandbox.salesforce import records
from include.sandbox.salesforce.errors import SalesforceApiError, not_found
from include.sandbox.salesforce.ids import QUERY_LOCATOR_PREFIX, normalize_id, sobject_for_id
from include.sandbox.salesforce.schema import SOBJECTS, FieldDef, SObjectDef
from include.sandbox.salesforce.soql import (
    CompiledQuery,
    compile_soql,
    count_matches,
    fetch_page,
)
from include.sandbox.salesforce.store import SalesforceStore, format_datetime, parse_datetime

logger = logging.getLogger(__name__)

MAX_COLLECTION_RECORDS = 200
MIN_BATCH_SIZE = 200
MAX_BATCH_SIZE = 2000
MAX_LOCATORS = 1000
UPDATED_WINDOW_DAYS = 30
DELETED_WINDOW_DAYS = 15
ROLLED_BACK = {
    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "message": "Record rolled back because not all records were valid and the request was "
    "using AllOrNone header",
    "fields": [],
}

Result = tuple[int, Any]


@dataclass
class QueryCursor:
    """A query result being paged through ``nextRecordsUrl``."""

    compiled: CompiledQuery
    total: int
    page_size: int


class RestApi:
    """The REST resources, on one store."""

    def __init__(self, store: SalesforceStore, page_size: int = MAX_BATCH_SIZE) -> None:
        self.store = store
        self.page_size = page_size
        self.cursors: OrderedDict[str, QueryCursor] = OrderedDict()

    # Query

    def query(
        self, statement: str, *, include_deleted: bool, api_version: str, batch_size: int | None
    ) -> Result:
        """Run a SOQL statement and return its first page (``nextRecordsUrl`` when more)."""
        compiled = compile_soql(statement, include_deleted=include_deleted, api_version=api_version)
        with self.store.lock:
            total = count_matches(self.store.connection, compiled)
        if compiled.is_count:
            return 200, {"totalSize": total, "done": True, "records": []}
        page_size = self._page_size(batch_size)
        cursor = QueryCursor(compiled, total, page_size)
        return 200, self._page(cursor, None, 0, api_version)

    def query_more(self, locator: str, api_version: str, batch_size: int | None) -> Result:
        """Return the page a ``nextRecordsUrl`` locator (``<id>-<offset>``) points at."""
        cursor_id, _, offset_text = locator.rpartition("-")
        cursor = self.cursors.get(cursor_id)
        if cursor is None or not offset_text.isdigit() or int(offset_text) > cursor.total:
            raise SalesforceApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        if batch_size is not None:
            cursor.page_size = self._page_size(batch_size)
        return 200, self._page(cursor, cursor_id, int(offset_text), api_version)

    def _page_size(self, batch_size: int | None) -> int:
        if batch_size is None:
            return self.page_size
        return max(MIN_BATCH_SIZE, min(batch_size, self.page_size))

    def _page(
        self, cursor: QueryCursor, cursor_id: str | None, start: int, api_version: str
    ) -> dict[str, Any]:
        # NOTE: each page re-runs the statement with LIMIT/OFFSET on live data, so a record
        # written between two pages can shift the rest. Salesforce pages a snapshot.
        with self.store.lock:
            rows = fetch_page(self.store.connection, cursor.compiled, start, cursor.page_size)
        result: dict[str, Any] = {
            "totalSize": cursor.total,
            "done": True,
            "records": [cursor.compiled.record(row) for row in rows],
        }
        next_start = start + len(rows)
        if next_start < cursor.total and rows:
            if cursor_id is None:
                cursor_id = QUERY_LOCATOR_PREFIX + secrets.token_hex(8).upper()[:15]
                self.cursors[cursor_id] = cursor
                while len(self.cursors) > MAX_LOCATORS:
                    self.cursors.popitem(last=False)
            result["done"] = False
            result["nextRecordsUrl"] = (
                f"/services/data/v{api_version}/query/{cursor_id}-{next_start}"
            )
        return result

    # Describe

    def describe_global(self) -> Result:
        """Return the sObject list of ``GET sobjects``."""
        return 200, {
            "encoding": "UTF-8",
            "maxBatchSize": MAX_COLLECTION_RECORDS,
            "sobjects": [_object_summary(d) for d in SOBJECTS.values()],
        }

    def describe(self, sobject: str) -> Result:
        """Return the full describe of an sObject."""
        definition = self.store.definition(sobject)
        body = _object_summary(definition)
        body["fields"] = [_describe_field(f) for f in definition.fields]
        return 200, body

    def basic_info(self, sobject: str) -> Result:
        """Return ``GET sobjects/<type>``."""
        definition = self.store.definition(sobject)
        return 200, {"objectDescribe": _object_summary(definition), "recentItems": []}

    # Single records

    def create(self, sobject: str, body: dict[str, Any]) -> Result:
        """Create one record (201 with the SaveResult)."""
        with records.transaction(self.store):
            record_id = records.create_record(self.store, sobject, body)
        return 201, {"id": record_id, "success": True, "errors": []}

    def retrieve(
        self, sobject: str, record_id: str, fields: list[str] | None, api_version: str
    ) -> Result:
        """Return one record by Id, with all fields or the ``fields`` asked for."""
        definition = self.store.definition(sobject)
        row = self.store.fetch_row(definition.name, record_id)
        if row is None:
            raise not_found()
        if row["IsDeleted"]:
            raise SalesforceApiError(404, "ENTITY_IS_DELETED", "entity is deleted")
        return 200, _record_json(definition, row, fields, api_version)

    def retrieve_by_external_id(
        self, sobject: str, field_name: str, value: str, api_version: str
    ) -> Result:
        """Return the record whose external Id field equals ``value``."""
        matches = self.store.find_by_external_id(sobject, field_name, value)
        if not matches:
            raise not_found()
        if len(matches) > 1:
            raise SalesforceApiError(
                300, "MULTIPLE_CHOICES", f"More than one record found for {field_name}"
            )
        return self.retrieve(sobject, matches[0], None, api_version)

    def update(self, sobject: str, record_id: str, body: dict[str, Any]) -> Result:
        """Update one record (204)."""
        with records.transaction(self.store):
            records.update_record(self.store, sobject, record_id, body)
        return 204, None

    def delete(self, sobject: str, record_id: str) -> Result:
        """Delete one record to the recycle bin (204)."""
        with records.transaction(self.store):
            records.delete_record(self.store, sobject, record_id)
        return 204, None

    def upsert(self, sobject: str, field_name: str, value: str, body: dict[str, Any]) -> Result:
        """Upsert by external Id: 201 with a body when created, 204 when updated."""
        with records.transaction(self.store):
            record_id, created = records.upsert_record(self.store, sobject, field_name, value, body)
        if created:
            return 201, {"id": record_id, "success": True, "errors": [], "created": True}
        return 204, None

    # sObject Collections

    def collection_write(self, method: str, body: Any) -> Result:
        """Create (POST) or update (PATCH) up to 200 records of any types."""
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise SalesforceApiError(
                400, "JSON_PARSER_ERROR", 'Send {"allOrNone": bool, "records": [...]}'
            )
        items = body["records"]
        _check_collection_size(len(items))
        operation = "create" if method == "POST" else "update"

        def write(item: Any) -> dict[str, Any]:
            if not isinstance(item, dict):
                raise SalesforceApiError(400, "JSON_PARSER_ERROR", "Each record must be an object")
            sobject = (item.get("attributes") or {}).get("type")
            if not sobject:
                raise SalesforceApiError(
                    400, "INVALID_TYPE", "Must send a concrete entity type: attributes.type"
                )
            values = {k: v for k, v in item.items() if k not in ("attributes", "id", "Id")}
            if operation == "create":
                if "id" in item or "Id" in item:
                    raise SalesforceApiError(
                        400, "INVALID_FIELD", "Id: cannot specify Id in an insert call", ["Id"]
                    )
                return {"id": records.create_record(self.store, sobject, values)}
            record_id = item.get("id") or item.get("Id")
            if not record_id:
                raise SalesforceApiError(400, "MISSING_ARGUMENT", "Id not specified", ["Id"])
            return {"id": records.update_record(self.store, sobject, record_id, values)}

        all_or_none = bool(body.get("allOrNone", False))
        results = self._run_collection(items, write, all_or_none)
        if operation == "create":
            # A rolled-back create leaves no record, so its result carries no Id.
            for result in results:
                if not result["success"]:
                    result["id"] = None
        return 200, results

    def collection_delete(self, ids: list[str], all_or_none: bool) -> Result:
        """Delete up to 200 records by Id."""
        _check_collection_size(len(ids))

        def remove(record_id: Any) -> dict[str, Any]:
            normalized = normalize_id(str(record_id))
            sobject = sobject_for_id(normalized) if normalized else None
            if normalized is None or sobject is None:
                raise SalesforceApiError(400, "MALFORMED_ID", f"malformed id {record_id}", ["Id"])
            return {"id": records.delete_record(self.store, sobject, normalized)}

        results = self._run_collection(ids, remove, all_or_none)
        for record_id, result in zip(ids, results, strict=True):
            result.setdefault("id", normalize_id(record_id) or record_id)
        return 200, results

    def collection_upsert(self, sobject: str, field_name: str, body: Any) -> Result:
        """Upsert up to 200 records of one type by an external Id field."""
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise SalesforceApiError(
                400, "JSON_PARSER_ERROR", 'Send {"allOrNone": bool, "records": [...]}'
            )
        items = body["records"]
        _check_collection_size(len(items))
        definition = self.store.definition(sobject)
        self.store.find_by_external_id(definition.name, field_name, "")

        def upsert(item: Any) -> dict[str, Any]:
            key = next((v for k, v in item.items() if k.lower() == field_name.lower()), None)
            if key in (None, ""):
                raise SalesforceApiError(
                    400,
                    "REQUIRED_FIELD_MISSING",
                    f"Required fields are missing: [{field_name}]",
                    [field_name],
                )
            values = {k: v for k, v in item.items() if k != "attributes"}
            record_id, created = records.upsert_record(
                self.store, definition.name, field_name, str(key), values
            )
            return {"id": record_id, "created": created}

        return 200, self._run_collection(items, upsert, bool(body.get("allOrNone", False)))

    def collection_retrieve(
        self, sobject: str, ids: list[str], fields: list[str], api_version: str
    ) -> Result:
        """Return records by Id in request order (null for an Id that is not found)."""
        _check_collection_size(len(ids))
        definition = self.store.definition(sobject)
        if not fields:
            raise SalesforceApiError(400, "MISSING_ARGUMENT", "fields parameter is required")
        found = []
        for record_id in ids:
            row = self.store.fetch_row(definition.name, record_id)
            if row is None or row["IsDeleted"]:
                found.append(None)
            else:
                found.append(_record_json(definition, row, fields, api_version))
        return 200, found

    def _run_collection(self, items: list[Any], write: Any, all_or_none: bool) -> list[dict]:
        results: list[dict[str, Any]] = []
        with self.store.lock:
            self.store.connection.execute("BEGIN")
            try:
                for item in items:
                    try:
                        with records.savepoint(self.store):
                            outcome = write(item)
                        results.append({**outcome, "success": True, "errors": []})
                    except SalesforceApiError as exc:
                        results.append({"success": False, "errors": [exc.save_result_error()]})
            except BaseException:
                self.store.connection.execute("ROLLBACK")
                raise
            failed = any(not result["success"] for result in results)
            if all_or_none and failed:
                self.store.connection.execute("ROLLBACK")
                for index, result in enumerate(results):
                    if result["success"]:
                        results[index] = {
                            "id": result.get("id"),
                            "success": False,
                            "errors": [dict(ROLLED_BACK)],
                        }
            else:
                self.store.connection.execute("COMMIT")
        for result in results:
            if "created" in result and not result["success"]:
                result.pop("created")
        return results

    # getUpdated and getDeleted

    def updated(self, sobject: str, start_text: str | None, end_text: str | None) -> Result:
        """Return Ids changed (by SystemModstamp) in a window of the last 30 days."""
        definition = self.store.definition(sobject)
        start, end = self._replication_window(start_text, end_text, UPDATED_WINDOW_DAYS)
        with self.store.lock:
            rows = self.store.connection.execute(
                f'SELECT Id FROM "{definition.name}" WHERE IsDeleted = 0 '
                "AND SystemModstamp >= ? AND SystemModstamp < ? ORDER BY SystemModstamp",
                (format_datetime(start), format_datetime(end)),
            ).fetchall()
        return 200, {"ids": [row[0] for row in rows], "latestDateCovered": format_datetime(end)}

    def deleted(self, sobject: str, start_text: str | None, end_text: str | None) -> Result:
        """Return records deleted in a window of the last 15 days."""
        definition = self.store.definition(sobject)
        start, end = self._replication_window(start_text, end_text, DELETED_WINDOW_DAYS)
        earliest = self.store.clock() - timedelta(days=DELETED_WINDOW_DAYS)
        with self.store.lock:
            rows = self.store.connection.execute(
                "SELECT id, deleted_date FROM _deletions WHERE sobject = ? "
                "AND deleted_date >= ? AND deleted_date < ? ORDER BY deleted_date",
                (definition.name, format_datetime(start), format_datetime(end)),
            ).fetchall()
            oldest = self.store.connection.execute(
                "SELECT MIN(deleted_date) FROM _deletions WHERE sobject = ? AND deleted_date >= ?",
                (definition.name, format_datetime(earliest)),
            ).fetchone()[0]
        return 200, {
            "deletedRecords": [{"id": row[0], "deletedDate": row[1]} for row in rows],
            "earliestDateAvailable": oldest or format_datetime(_floor_minute(earliest)),
            "latestDateCovered": format_datetime(end),
        }

    def _replication_window(
        self, start_text: str | None, end_text: str | None, max_days: int
    ) -> tuple[datetime, datetime]:
        if not start_text or not end_text:
            raise SalesforceApiError(
                400, "MISSING_ARGUMENT", "start and end parameters are required"
            )
        try:
            start = parse_datetime(start_text)
            end = parse_datetime(end_text)
        except ValueError as exc:
            raise SalesforceApiError(
                400,
                "INVALID_REPLICATION_DATE",
                f"invalid start or end {start_text!r}, {end_text!r}: use ISO 8601 in UTC",
            ) from exc
        now = self.store.clock()
        start = _floor_minute(start)
        end = _floor_minute(min(end, now))
        if start < now - timedelta(days=max_days):
            raise SalesforceApiError(
                400,
                "INVALID_REPLICATION_DATE",
                f"startDate cannot be more than {max_days} days ago",
            )
        if end - start < timedelta(minutes=1):
            raise SalesforceApiError(
                400,
                "INVALID_REPLICATION_DATE",
                "startDate must chronologically precede endDate by more than one minute",
            )
        return start, end


def _floor_minute(value: datetime) -> datetime:
    return value.replace(second=0, microsecond=0)


def _check_collection_size(count: int) -> None:
    if count > MAX_COLLECTION_RECORDS:
        raise SalesforceApiError(
            400,
            "EXCEEDED_ID_LIMIT",
            f"record limit reached. cannot submit more than {MAX_COLLECTION_RECORDS} records "
            "into this call",
        )


def _object_summary(definition: SObjectDef) -> dict[str, Any]:
    base = f"/services/data/v59.0/sobjects/{definition.name}"
    return {
        "name": definition.name,
        "label": definition.label or definition.name,
        "keyPrefix": definition.key_prefix,
        "custom": False,
        "createable": True,
        "updateable": True,
        "deletable": True,
        "queryable": True,
        "replicateable": True,
        "urls": {
            "sobject": base,
            "describe": f"{base}/describe",
            "rowTemplate": f"{base}/{{ID}}",
        },
    }


def _describe_field(field: FieldDef) -> dict[str, Any]:
    return {
        "name": field.name,
        "label": field.label or field.name,
        "type": field.type,
        "length": field.length if field.type not in ("boolean", "int", "double") else 0,
        "nillable": field.nillable,
        "externalId": field.external_id,
        "unique": field.unique,
        "createable": field.createable,
        "updateable": field.updateable,
        "custom": field.name.endswith("__c"),
        "defaultedOnCreate": field.default is not None or field.type == "boolean",
        "idLookup": field.name == "Id" or field.external_id or field.type == "email",
        "filterable": True,
        "sortable": field.type != "textarea",
        "referenceTo": [field.reference_to] if field.reference_to else [],
        "relationshipName": field.relationship_name,
        "precision": 18 if field.type in ("double", "currency") else 0,
        "scale": 2 if field.type == "currency" else 0,
    }


def _record_json(
    definition: SObjectDef, row: dict[str, Any], fields: list[str] | None, api_version: str
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "attributes": {
            "type": definition.name,
            "url": f"/services/data/v{api_version}/sobjects/{definition.name}/{row['Id']}",
        }
    }
    selected = definition.fields
    if fields:
        selected = []
        for name in fields:
            field = definition.field(name)
            if field is None:
                raise SalesforceApiError(
                    400,
                    "INVALID_FIELD",
                    f"No such column '{name}' on entity '{definition.name}'",
                    [name],
                )
            selected.append(field)
    for field in selected:
        value = row.get(field.name)
        if value is not None and field.type == "boolean":
            value = bool(value)
        record[field.name] = value
    return record
