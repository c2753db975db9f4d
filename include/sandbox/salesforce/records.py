"""Validated record writes of the Salesforce sandbox: create, update, upsert, delete, merge.

Each function raises :class:`SalesforceApiError` with the code Salesforce uses, and leaves
transaction control to the caller (see :func:`transaction` and :func:`savepoint`).
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from contextlib import contextmanager
from datetime import date
from typing import Any

from include.sandbox.salesforce.errors import SalesforceApiError, not_found
from include.sandbox.salesforce.ids import make_id, normalize_id
from include.sandbox.salesforce.schema import ID_TYPES, NUMBER_TYPES, FieldDef, SObjectDef
from include.sandbox.salesforce.store import (
    SalesforceStore,
    format_datetime,
    is_valid_email,
    parse_datetime,
)

logger = logging.getLogger(__name__)

_FAULT_MESSAGES = {
    "UNABLE_TO_LOCK_ROW": "unable to obtain exclusive access to this record or 1 records: {id}",
}


@contextmanager
def transaction(store: SalesforceStore) -> Generator[None, None, None]:
    """Run the block in one SQLite transaction, rolled back when it raises."""
    with store.lock:
        store.connection.execute("BEGIN")
        try:
            yield
        except BaseException:
            store.connection.execute("ROLLBACK")
            raise
        store.connection.execute("COMMIT")


@contextmanager
def savepoint(store: SalesforceStore, name: str = "record") -> Generator[None, None, None]:
    """Run the block in a savepoint inside the current transaction, undone when it raises."""
    store.connection.execute(f"SAVEPOINT {name}")
    try:
        yield
    except BaseException:
        store.connection.execute(f"ROLLBACK TO {name}")
        store.connection.execute(f"RELEASE {name}")
        raise
    store.connection.execute(f"RELEASE {name}")


def add_record_fault(
    store: SalesforceStore, sobject: str, ids: list[str], error_code: str, times: int
) -> list[str]:
    """Make the next ``times`` writes of each record fail with ``error_code``.

    :return: the 18-character Ids the fault applies to.
    :raises SalesforceApiError: INVALID_ID_FIELD when an Id is malformed.
    """
    definition = store.definition(sobject)
    normalized_ids = []
    for record_id in ids:
        normalized = normalize_id(record_id)
        if normalized is None:
            raise SalesforceApiError(
                400, "INVALID_ID_FIELD", f"invalid Id {record_id!r}: use a 15- or 18-character Id"
            )
        store.record_faults[(definition.name, normalized)] = [error_code, times]
        normalized_ids.append(normalized)
    logger.info("Added %s fault for %d %s records", error_code, len(ids), definition.name)
    return normalized_ids


def check_record_fault(store: SalesforceStore, sobject: str, record_id: str) -> None:
    """Raise the injected error of a record when a record fault has uses left."""
    fault = store.record_faults.get((sobject, record_id))
    if fault is None or fault[1] <= 0:
        return
    fault[1] -= 1
    error_code = fault[0]
    template = _FAULT_MESSAGES.get(error_code, "Injected record fault on {id}")
    raise SalesforceApiError(400, error_code, template.format(id=record_id))


def _coerce(field: FieldDef, value: Any) -> Any:
    """Convert a JSON value to the stored form of ``field`` or raise JSON_PARSER_ERROR."""
    if value is None:
        return None
    kind = field.type
    try:
        if kind == "boolean":
            if isinstance(value, bool):
                return 1 if value else 0
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return 1 if value.lower() == "true" else 0
            raise ValueError
        if kind in NUMBER_TYPES:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            return int(number) if kind == "int" else number
        if kind == "datetime":
            return format_datetime(parse_datetime(str(value)))
        if kind == "date":
            return date.fromisoformat(str(value)[:10]).isoformat()
        if isinstance(value, bool | dict | list):
            raise ValueError
        return str(value)
    except ValueError as exc:
        raise SalesforceApiError(
            400,
            "JSON_PARSER_ERROR",
            f"Cannot deserialize instance of {kind} from value {value!r} for field {field.name}",
            [field.name],
        ) from exc


def _check_value(store: SalesforceStore, field: FieldDef, value: Any) -> Any:
    if value is None:
        return None
    if field.type in ID_TYPES:
        normalized = normalize_id(value)
        target = field.reference_to
        if normalized is None or target is None or not _exists(store, target, normalized):
            raise SalesforceApiError(
                400,
                "INVALID_CROSS_REFERENCE_KEY",
                f"{field.name}: id value of incorrect type or not found: {value}",
                [field.name],
            )
        return normalized
    if isinstance(value, str) and field.length and len(value) > field.length:
        raise SalesforceApiError(
            400,
            "STRING_TOO_LONG",
            f"{field.name}: data value too large: {value} (max length={field.length})",
            [field.name],
        )
    if field.type == "email" and isinstance(value, str) and value and not is_valid_email(value):
        raise SalesforceApiError(
            400, "INVALID_EMAIL_ADDRESS", f"Email: invalid email address: {value}", [field.name]
        )
    return value


def _exists(store: SalesforceStore, sobject: str, record_id: str) -> bool:
    row = store.connection.execute(
        f'SELECT 1 FROM "{sobject}" WHERE Id = ? AND IsDeleted = 0', (record_id,)
    ).fetchone()
    return row is not None


def prepare_values(
    store: SalesforceStore, definition: SObjectDef, values: dict[str, Any], *, creating: bool
) -> dict[str, Any]:
    """Validate request field values and convert them to stored values keyed by API name.

    :raises SalesforceApiError: INVALID_FIELD, INVALID_FIELD_FOR_INSERT_UPDATE,
        JSON_PARSER_ERROR, STRING_TOO_LONG, INVALID_EMAIL_ADDRESS,
        INVALID_CROSS_REFERENCE_KEY or REQUIRED_FIELD_MISSING.
    """
    prepared: dict[str, Any] = {}
    for key, value in values.items():
        if key == "attributes":
            continue
        field = definition.field(key)
        if field is None:
            raise SalesforceApiError(
                400,
                "INVALID_FIELD",
                f"No such column '{key}' on sobject of type {definition.name}",
                [key],
            )
        if field.name == "Id":
            if creating:
                raise SalesforceApiError(
                    400, "INVALID_FIELD", "Id: cannot specify Id in an insert call", ["Id"]
                )
            continue
        writable = field.createable if creating else field.updateable
        if not writable:
            action = "create" if creating else "update"
            raise SalesforceApiError(
                400,
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to {action} fields: {field.name}. Please check the security settings "
                "of this field and verify that it is read/write for your profile or permission "
                "set.",
                [field.name],
            )
        prepared[field.name] = _check_value(store, field, _coerce(field, value))

    for field in definition.fields:
        if not field.required:
            continue
        missing_on_create = creating and prepared.get(field.name) in (None, "")
        cleared_on_update = not creating and field.name in prepared and not prepared[field.name]
        if missing_on_create or cleared_on_update:
            raise SalesforceApiError(
                400,
                "REQUIRED_FIELD_MISSING",
                f"Required fields are missing: [{field.name}]",
                [field.name],
            )
    return prepared


def _check_unique(
    store: SalesforceStore, definition: SObjectDef, row: dict[str, Any], record_id: str
) -> None:
    for field in definition.fields:
        if not field.unique or row.get(field.name) in (None, ""):
            continue
        other = store.connection.execute(
            f'SELECT Id FROM "{definition.name}" WHERE sf_fold("{field.name}") = ? '
            "AND IsDeleted = 0 AND Id != ?",
            (str(row[field.name]).casefold(), record_id),
        ).fetchone()
        if other is not None:
            raise SalesforceApiError(
                400,
                "DUPLICATE_VALUE",
                f"duplicate value found: {field.name} duplicates value on record with id: "
                f"{other[0]}",
                [field.name],
            )
    if definition.name == "CampaignMember":
        for reference in ("ContactId", "LeadId"):
            if row.get(reference) is None:
                continue
            other = store.connection.execute(
                f"SELECT Id FROM CampaignMember WHERE CampaignId = ? AND {reference} = ? "
                "AND IsDeleted = 0 AND Id != ?",
                (row["CampaignId"], row[reference], record_id),
            ).fetchone()
            if other is not None:
                raise SalesforceApiError(400, "DUPLICATE_VALUE", "Already a campaign member.")


def _after_write(store: SalesforceStore, definition: SObjectDef, record_id: str) -> None:
    if definition.name in ("Contact", "Lead"):
        store._refresh_member_person_fields(record_id)


def create_record(store: SalesforceStore, sobject: str, values: dict[str, Any]) -> str:
    """Validate and insert one record.

    :return: the new 18-character Id.
    :raises SalesforceApiError: for any validation error (see :func:`prepare_values`),
        DUPLICATE_VALUE for a taken unique value or campaign membership.
    """
    definition = store.definition(sobject)
    prepared = prepare_values(store, definition, values, creating=True)
    if definition.name == "CampaignMember":
        if prepared.get("ContactId") is None and prepared.get("LeadId") is None:
            raise SalesforceApiError(
                400,
                "REQUIRED_FIELD_MISSING",
                "Required fields are missing: [ContactId, LeadId]",
                ["ContactId", "LeadId"],
            )
        if prepared.get("ContactId") is not None:
            prepared["LeadId"] = None

    now = format_datetime(store.clock())
    row: dict[str, Any] = {f.name: f.default for f in definition.fields}
    row.update({k: v for k, v in prepared.items() if v is not None or k in row})
    for field in definition.fields:
        if field.default is not None and row.get(field.name) is None:
            row[field.name] = field.default
    row["IsDeleted"] = 0
    row["CreatedDate"] = row["LastModifiedDate"] = row["SystemModstamp"] = now
    store._derive_fields(definition, row)

    sequence = store._next_sequence(definition.key_prefix)
    row["Id"] = make_id(definition.key_prefix, sequence)
    _check_unique(store, definition, row, row["Id"])
    names = [f.name for f in definition.fields]
    column_list = ", ".join(f'"{name}"' for name in names)
    placeholders = ", ".join("?" for _ in names)
    store.connection.execute(
        f'INSERT INTO "{definition.name}" ({column_list}, _seq) VALUES ({placeholders}, ?)',
        (*(row[name] for name in names), sequence),
    )
    if definition.name == "CampaignMember":
        # Copy onto the new row only. Refreshing every member rewrote the whole table on each
        # create, so one 200-member request took about 20 s at 50,000 members.
        store._refresh_one_member_person_fields(row["Id"])
    _after_write(store, definition, row["Id"])
    return row["Id"]


def _live_row(store: SalesforceStore, definition: SObjectDef, record_id: str) -> dict[str, Any]:
    normalized = normalize_id(record_id)
    row = store.fetch_row(definition.name, normalized) if normalized else None
    if row is None:
        raise not_found()
    if row["IsDeleted"]:
        raise SalesforceApiError(400, "ENTITY_IS_DELETED", "entity is deleted")
    return row


def update_record(
    store: SalesforceStore, sobject: str, record_id: str, values: dict[str, Any]
) -> str:
    """Validate and apply a partial update, moving the audit fields to the sandbox time.

    :return: the 18-character Id.
    :raises SalesforceApiError: NOT_FOUND, ENTITY_IS_DELETED, an injected record fault, or
        any validation error.
    """
    definition = store.definition(sobject)
    row = _live_row(store, definition, record_id)
    check_record_fault(store, definition.name, row["Id"])
    prepared = prepare_values(store, definition, values, creating=False)
    row.update(prepared)
    store._derive_fields(definition, row)
    _check_unique(store, definition, row, row["Id"])
    now = format_datetime(store.clock())
    row["LastModifiedDate"] = row["SystemModstamp"] = now
    names = [f.name for f in definition.fields if f.name != "Id"]
    assignments = ", ".join(f'"{name}" = ?' for name in names)
    store.connection.execute(
        f'UPDATE "{definition.name}" SET {assignments} WHERE Id = ?',
        (*(row[name] for name in names), row["Id"]),
    )
    _after_write(store, definition, row["Id"])
    return row["Id"]


def upsert_record(
    store: SalesforceStore, sobject: str, external_field: str, value: str, values: dict[str, Any]
) -> tuple[str, bool]:
    """Update the record whose external Id equals ``value``, or create it.

    :return: (18-character Id, True when created).
    :raises SalesforceApiError: NOT_FOUND for a field that is not an external Id,
        MULTIPLE_CHOICES (300) when several records match, or any write error.
    """
    definition = store.definition(sobject)
    field = definition.field(external_field)
    matches = store.find_by_external_id(definition.name, external_field, value)
    if len(matches) > 1:
        raise SalesforceApiError(
            300, "MULTIPLE_CHOICES", f"More than one record found for {external_field}: {value}"
        )
    body = {k: v for k, v in values.items() if k.lower() != external_field.lower()}
    if matches:
        return update_record(store, definition.name, matches[0], body), False
    if field is not None and field.name != "Id":
        body[field.name] = value
    return create_record(store, definition.name, body), True


def delete_record(store: SalesforceStore, sobject: str, record_id: str) -> str:
    """Move a record to the recycle bin (``IsDeleted`` true, visible to queryAll only).

    Deleting a Contact, Lead or Campaign also deletes its CampaignMembers, as Salesforce does.

    :return: the 18-character Id.
    :raises SalesforceApiError: NOT_FOUND, ENTITY_IS_DELETED or an injected record fault.
    """
    definition = store.definition(sobject)
    row = _live_row(store, definition, record_id)
    check_record_fault(store, definition.name, row["Id"])
    _soft_delete(store, definition.name, [row["Id"]], master_id=None)
    return row["Id"]


def _soft_delete(
    store: SalesforceStore, sobject: str, ids: list[str], *, master_id: str | None
) -> None:
    now = format_datetime(store.clock())
    for record_id in ids:
        store.connection.execute(
            f'UPDATE "{sobject}" SET IsDeleted = 1, SystemModstamp = ?, MasterRecordId = ? '
            "WHERE Id = ?",
            (now, master_id, record_id),
        )
        store.connection.execute(
            "INSERT INTO _deletions (sobject, id, deleted_date) VALUES (?, ?, ?)",
            (sobject, record_id, now),
        )
        reference = {"Contact": "ContactId", "Lead": "LeadId", "Campaign": "CampaignId"}.get(
            sobject
        )
        if reference is not None:
            members = store.connection.execute(
                f"SELECT Id FROM CampaignMember WHERE {reference} = ? AND IsDeleted = 0",
                (record_id,),
            ).fetchall()
            _soft_delete(store, "CampaignMember", [m[0] for m in members], master_id=None)


def merge_records(
    store: SalesforceStore, sobject: str, master_id: str, merged_ids: list[str]
) -> list[str]:
    """Merge records into a master: the merged ones go to the recycle bin with
    ``MasterRecordId`` set, and their CampaignMembers move to the master unless it is
    already a member of that campaign.

    :return: the 18-character Ids of the merged records.
    :raises SalesforceApiError: NOT_FOUND or ENTITY_IS_DELETED for any Id.
    """
    definition = store.definition(sobject)
    master = _live_row(store, definition, master_id)
    merged = [_live_row(store, definition, record_id)["Id"] for record_id in merged_ids]
    if master["Id"] in merged:
        raise SalesforceApiError(
            400, "INVALID_OPERATION", "merged_ids must not contain the master record"
        )
    reference = {"Contact": "ContactId", "Lead": "LeadId"}.get(definition.name)
    now = format_datetime(store.clock())
    for record_id in merged:
        if reference is not None:
            members = store.connection.execute(
                f"SELECT Id, CampaignId FROM CampaignMember WHERE {reference} = ? "
                "AND IsDeleted = 0",
                (record_id,),
            ).fetchall()
            for member_id, campaign_id in members:
                master_membership = store.connection.execute(
                    f"SELECT 1 FROM CampaignMember WHERE {reference} = ? AND CampaignId = ? "
                    "AND IsDeleted = 0",
                    (master["Id"], campaign_id),
                ).fetchone()
                if master_membership:
                    _soft_delete(store, "CampaignMember", [member_id], master_id=None)
                else:
                    store.connection.execute(
                        f"UPDATE CampaignMember SET {reference} = ?, SystemModstamp = ?, "
                        "LastModifiedDate = ? WHERE Id = ?",
                        (master["Id"], now, now, member_id),
                    )
        _soft_delete(store, definition.name, [record_id], master_id=master["Id"])
    store.connection.execute(
        f'UPDATE "{definition.name}" SET SystemModstamp = ?, LastModifiedDate = ? WHERE Id = ?',
        (now, now, master["Id"]),
    )
    _after_write(store, definition, master["Id"])
    logger.info("Merged %d %s records into %s", len(merged), definition.name, master["Id"])
    return merged
