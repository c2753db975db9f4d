"""Read Salesforce exports (SFDX data-tree JSON and CSV) into records the sandbox can seed.

:func:`load_export` reads the files, maps their columns to the sandbox's fields, gives every
record a new Id, and rewrites references (``@ContactRef1`` data-tree references and Ids of
the exporting org) to those new Ids. The result, a :class:`LoadedExport`, goes into a data
folder with :meth:`LoadedExport.seed`.

Nothing is dropped silently: skipped objects, dropped fields, skipped rows and cleared
references are counted and described in ``LoadedExport.warnings``. Input that cannot be
read raises :class:`ExportLoadError` naming the file, the record and the value. Messages
quote values of boolean, number, date and reference fields only. For a text field, such as a
name or an email address, they give the field and the length.

``docs/sandbox-data.md`` lists the accepted shapes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from include.sandbox.generator import SALESFORCE_OBJECTS, case_safe_id
from include.sandbox.salesforce.schema import SOBJECTS, FieldDef, SObjectDef
from include.sandbox.salesforce.store import parse_datetime

logger = logging.getLogger(__name__)

# Standard objects that exports often contain and the sandbox does not model. Records of
# these and of custom objects (``__c``) are skipped with a warning. Any other object name
# is an error, because it is more likely a typo.
UNMODELED_STANDARD_OBJECTS = frozenset(
    {
        "Asset",
        "Attachment",
        "CampaignMemberStatus",
        "Case",
        "CaseComment",
        "ContentDocument",
        "ContentVersion",
        "Contract",
        "Event",
        "Note",
        "Opportunity",
        "OpportunityContactRole",
        "OpportunityLineItem",
        "Order",
        "OrderItem",
        "Pricebook2",
        "PricebookEntry",
        "Product2",
        "RecordType",
        "Task",
        "User",
    }
)

# Column labels of Salesforce's report and Data Export files that differ from the API name.
# Keys are labels folded to lower-case letters and digits; "Id" marks the row's own Id.
_LABELS: dict[str, dict[str, str]] = {
    "Account": {
        "accountid": "Id",
        "accountname": "Name",
        "accounttype": "Type",
        "parentaccountid": "ParentId",
        "employees": "NumberOfEmployees",
    },
    "Contact": {
        "contactid": "Id",
        "emailoptout": "HasOptedOutOfEmail",
        "mobile": "MobilePhone",
        "mailingzippostalcode": "MailingPostalCode",
        "mailingstateprovince": "MailingState",
        "emailbounced": "IsEmailBounced",
        "emailbounceddate": "EmailBouncedDate",
    },
    "Lead": {
        "leadid": "Id",
        "leadstatus": "Status",
        "emailoptout": "HasOptedOutOfEmail",
    },
    "Campaign": {
        "campaignid": "Id",
        "campaignname": "Name",
        "campaigntype": "Type",
        "active": "IsActive",
        "parentcampaignid": "ParentId",
    },
    "CampaignMember": {
        "campaignmemberid": "Id",
        "memberstatus": "Status",
    },
}
# Column names that hold the exporting org's own Id of the row.
_ID_COLUMNS = frozenset({"id", "sfid", "recordid"})
# Fields a load keeps although the API does not let clients write them: the store accepts them.
_KEPT_READ_ONLY = frozenset({"Id", "CreatedDate", "LastModifiedDate", "SystemModstamp"})
# Child relationships of data-tree records (``"Contacts": {"records": [...]}``).
_CHILD_RELATIONSHIPS: dict[tuple[str, str], str] = {
    ("Account", "contacts"): "Contact",
    ("Campaign", "campaignmembers"): "CampaignMember",
    ("Contact", "campaignmembers"): "CampaignMember",
    ("Lead", "campaignmembers"): "CampaignMember",
}
_TRUE_TEXT = frozenset({"true", "1", "yes", "y"})
_FALSE_TEXT = frozenset({"false", "0", "no", "n"})
_US_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
_ID_SHAPE = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Loaded Ids put "0L" where Salesforce puts the instance identifier, apart from generated
# ("0G") and store-assigned Ids.
_LOADED_ID_POD = "0L"
# A loaded Id encodes 40 bits of a hash of the files and a 19-bit sequence number per object.
_MAX_RECORDS_PER_OBJECT = 1 << 19
# Warnings list at most this many row numbers of one kind per file.
_MAX_ROWS_LISTED = 5


class ExportLoadError(ValueError):
    """An export that cannot be loaded; the message names the file, record and value."""


@dataclass
class LoadedExport:
    """Records read from an export, with new Ids and resolved references.

    :ivar records: records per sObject in load order, keyed by API field names.
    :ivar warnings: one line per kind of loss: skipped objects, dropped fields, skipped rows,
        cleared references.
    :ivar skipped_objects: number of records per sObject that the sandbox does not model.
    :ivar dropped_fields: number of dropped non-empty values per ``Object.field``.
    :ivar skipped_rows: number of rows skipped per file.
    :ivar cleared_references: number of references to records outside the export that were
        set to null.
    :ivar id_map: the exporting org's 15-character Ids and ``@referenceId`` keys, mapped to
        the new 18-character Ids.
    """

    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    skipped_objects: dict[str, int] = field(default_factory=dict)
    dropped_fields: dict[str, int] = field(default_factory=dict)
    skipped_rows: dict[str, int] = field(default_factory=dict)
    cleared_references: int = 0
    id_map: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Return the number of loaded records per sObject."""
        return {sobject: len(records) for sobject, records in self.records.items()}

    def seed(self, data_dir: Path, *, reset: bool = False) -> dict[str, int]:
        """Insert the records into the Salesforce store of a sandbox data folder.

        :param data_dir: the sandbox data folder.
        :param reset: empty both stores first.
        :return: the number of records inserted per sObject.
        """
        from include.sandbox.seeding import seed_records

        return seed_records(data_dir, salesforce=self.records, reset=reset)


@dataclass
class _Pending:
    """One record read from a file, before Ids are assigned and references resolved."""

    sobject: str
    file_name: str
    place: str  # "row 3" or "record 3"
    scope: str  # folder whose files resolve this record's @references
    values: dict[str, Any] = field(default_factory=dict)
    references: dict[str, str] = field(default_factory=dict)
    source_id: str | None = None
    reference_key: str | None = None
    skipped: bool = False

    @property
    def origin(self) -> str:
        return f"{self.file_name}, {self.place}"


@dataclass
class _Issues:
    """Row-level problems, grouped so that each kind gives one warning line."""

    rows: dict[tuple[str, str], list[str]] = field(default_factory=lambda: defaultdict(list))

    def add(self, file_name: str, reason: str, where: str) -> None:
        self.rows[(file_name, reason)].append(where)

    def warnings(self) -> list[str]:
        lines = []
        for (file_name, reason), places in self.rows.items():
            listed = ", ".join(places[:_MAX_ROWS_LISTED])
            more = ""
            if len(places) > _MAX_ROWS_LISTED:
                more = f" and {len(places) - _MAX_ROWS_LISTED} more"
            lines.append(f"{file_name}: {reason} ({len(places)}: {listed}{more})")
        return lines


class _Loader:
    """Two passes: read every file into ``_Pending`` records, then assign Ids and resolve."""

    def __init__(self, column_map: Mapping[str, str] | None, object_name: str | None) -> None:
        self.column_map = _group_column_map(column_map or {})
        self.object_name = object_name
        self.pending: list[_Pending] = []
        self.skipped_objects: dict[str, int] = defaultdict(int)
        self.dropped_fields: dict[str, int] = defaultdict(int)
        self.dropped_reasons: dict[str, str] = {}
        self.skipped_rows: dict[str, int] = defaultdict(int)
        self.issues = _Issues()
        self.digest = hashlib.blake2b(digest_size=8)

    # -- files -------------------------------------------------------------------------

    def read_path(self, path: Path) -> None:
        if not path.is_file():
            raise ExportLoadError(f"export file not found: {path}")
        suffix = path.suffix.lower()
        if suffix == ".json":
            document = self._read_json_document(path)
            if isinstance(document, list):
                self._read_plan(path, document)
            else:
                default = self._object_for_file(path, required=False)
                self._read_tree_file(path, document, default)
        elif suffix == ".csv":
            self._read_csv(path)
        else:
            raise ExportLoadError(
                f"unsupported export file {path}: expected a .json (SFDX data tree or plan) "
                "or a .csv file"
            )

    def _read_bytes(self, path: Path) -> bytes:
        raw = path.read_bytes()
        self.digest.update(path.name.encode() + b"\0" + raw)
        return raw

    def _read_json_document(self, path: Path) -> Any:
        try:
            document = json.loads(self._read_bytes(path).decode("utf-8-sig"))
        except UnicodeDecodeError as exc:
            raise ExportLoadError(
                f"invalid JSON in {path}: not UTF-8 at byte {exc.start}; save it as UTF-8"
            ) from exc
        except json.JSONDecodeError as exc:
            raise ExportLoadError(
                f"invalid JSON in {path}, line {exc.lineno} column {exc.colno}: {exc.msg}"
            ) from exc
        if isinstance(document, list):
            return document
        if not isinstance(document, dict) or not isinstance(document.get("records"), list):
            raise ExportLoadError(
                f'invalid data-tree file {path}: expected an object with a "records" list, '
                'or a plan (a list of {"sobject", "files"} steps)'
            )
        return document

    def _read_plan(self, path: Path, steps: list[Any]) -> None:
        for number, step in enumerate(steps, 1):
            if not isinstance(step, dict) or not isinstance(step.get("files"), list):
                raise ExportLoadError(
                    f'invalid plan {path}, step {number}: expected an object with "sobject" '
                    'and a "files" list'
                )
            for name in step["files"]:
                file_path = path.parent / str(name)
                if not file_path.is_file():
                    raise ExportLoadError(
                        f"export file not found: {file_path}, named in plan {path}, step {number}"
                    )
                document = self._read_json_document(file_path)
                if isinstance(document, list):
                    raise ExportLoadError(
                        f"invalid plan {path}, step {number}: {file_path.name} is a plan, "
                        "not a data-tree file"
                    )
                self._read_tree_file(file_path, document, step.get("sobject"))

    def _read_tree_file(self, path: Path, document: dict[str, Any], default: str | None) -> None:
        for index, record in enumerate(document["records"], 1):
            self._read_tree_record(path, f"record {index}", record, default, None)

    def _read_tree_record(
        self,
        path: Path,
        place: str,
        record: Any,
        default_type: str | None,
        parent: _Pending | None,
    ) -> None:
        if not isinstance(record, dict):
            raise ExportLoadError(f"invalid record in {path}, {place}: expected a JSON object")
        attributes = record.get("attributes")
        attributes = attributes if isinstance(attributes, dict) else {}
        type_name = attributes.get("type") or default_type
        if not type_name:
            raise ExportLoadError(
                f'missing object type in {path}, {place}: add "attributes": {{"type": ...}} '
                "or pass object_name"
            )
        definition = _find_definition(str(type_name))
        if definition is None:
            self.skipped_objects[str(type_name)] += 1
            return

        scope = str(path.parent.resolve())
        pending = _Pending(definition.name, path.name, place, scope)
        reference_id = attributes.get("referenceId")
        pending.reference_key = f"{scope}|{reference_id or path.name + '|' + place}"

        columns: dict[str, Any] = {}
        children: list[tuple[str, list[Any]]] = []
        for key, value in record.items():
            if key == "attributes":
                continue
            if isinstance(value, dict) and isinstance(value.get("records"), list):
                children.append((key, value["records"]))
            else:
                columns[key] = value
        self._fill(pending, definition, columns)
        if parent is not None:
            for reference in definition.fields:
                if reference.type == "reference" and reference.reference_to == parent.sobject:
                    pending.references[reference.name] = "@" + str(parent.reference_key)
                    break
        self._finish(pending, definition)

        for relationship, child_records in children:
            child_type = _CHILD_RELATIONSHIPS.get((definition.name, relationship.lower()))
            for index, child in enumerate(child_records, 1):
                if child_type is None:
                    child_attributes = child.get("attributes") if isinstance(child, dict) else None
                    name = (child_attributes or {}).get("type") or relationship
                    self.skipped_objects[str(name)] += 1
                    continue
                child_place = f"{place}, {relationship} {index}"
                self._read_tree_record(path, child_place, child, child_type, pending)

    def _read_csv(self, path: Path) -> None:
        try:
            text = self._read_bytes(path).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ExportLoadError(
                f"invalid CSV {path}: not UTF-8 at byte {exc.start}; export it as UTF-8"
            ) from exc
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            header = next(reader, None)
            if not header or not any(column.strip() for column in header):
                raise ExportLoadError(f"invalid CSV {path}: the header row is missing")
            header = [column.strip() for column in header]

            groups = _report_groups(header)
            if groups:
                self._read_report_csv(path, header, reader, groups)
                return

            definition = self._object_for_file(path, required=True)
            if definition is None:
                rows = sum(1 for row in reader if any(cell.strip() for cell in row))
                self.skipped_objects[self._unmodeled_name_for_file(path)] += rows
                return
            self._check_mapped_columns(path, definition, header)
            for row in reader:
                place = f"row {reader.line_num}"
                if not self._row_fits(path, place, header, row):
                    continue
                pending = _Pending(definition.name, path.name, place, str(path.parent.resolve()))
                self._fill(pending, definition, dict(zip(header, row, strict=True)))
                self._finish(pending, definition)
        except csv.Error as exc:
            raise ExportLoadError(f"invalid CSV {path}, row {reader.line_num}: {exc}") from exc

    def _row_fits(self, path: Path, place: str, header: list[str], row: list[str]) -> bool:
        if not any(cell.strip() for cell in row):
            return False
        if len(row) > len(header):
            self.issues.add(
                path.name, f"skipped rows with more than the header's {len(header)} columns", place
            )
            self.skipped_rows[path.name] += 1
            return False
        # Shorter rows are read with empty trailing cells, as csv.DictReader reads them.
        row.extend([""] * (len(header) - len(row)))
        return True

    def _check_mapped_columns(self, path: Path, definition: SObjectDef, header: list[str]) -> None:
        present = {column.lower() for column in header}
        for field_name, column in self.column_map.get(definition.name, {}).items():
            if column.lower() not in present:
                self.issues.add(
                    path.name,
                    f"column map {field_name}={column}: the file has no such column",
                    "header",
                )

    def _read_report_csv(
        self,
        path: Path,
        header: list[str],
        reader: Any,
        groups: dict[str, list[tuple[int, str]]],
    ) -> None:
        """Read a report export whose columns are all ``Object: Label``.

        Each row gives one record per object whose columns are not all empty. Identical
        records of one object (an Account repeated on every Contact row) load once, and a
        record refers to the record of its parent object on the same row.
        """
        definitions: dict[str, SObjectDef] = {}
        for prefix, columns in groups.items():
            definition = _find_definition(prefix.replace(" ", ""))
            if definition is not None:
                definitions[prefix] = definition
                continue
            for _, label in columns:
                key = f"{prefix}.{label}"
                self.dropped_reasons.setdefault(key, f"the sandbox does not model {prefix}")
        scope = str(path.parent.resolve())
        loaded: dict[tuple[str, tuple[str, ...]], _Pending] = {}
        for row in reader:
            place = f"row {reader.line_num}"
            if not self._row_fits(path, place, header, row):
                continue
            parents: dict[str, _Pending] = {}
            for prefix, definition in definitions.items():
                cells = {label: row[index] for index, label in groups[prefix]}
                if all(_blank(value) for value in cells.values()):
                    continue
                identity = (definition.name, tuple(cells.values()))
                if identity in loaded:
                    parents[definition.name] = loaded[identity]
                    continue
                pending = _Pending(definition.name, path.name, place, scope)
                pending.reference_key = f"{scope}|{path.name}|{definition.name}|{place}"
                self._fill(pending, definition, cells)
                for reference in definition.fields:
                    parent = parents.get(reference.reference_to or "")
                    if reference.type == "reference" and parent is not None:
                        pending.references.setdefault(reference.name, f"@{parent.reference_key}")
                self._finish(pending, definition)
                if not pending.skipped:
                    loaded[identity] = pending
                    parents[definition.name] = pending

    # -- objects and fields ------------------------------------------------------------

    def _object_for_file(self, path: Path, *, required: bool) -> SObjectDef | None:
        """Return the sObject of a file from ``object_name`` or the file name.

        :param required: raise when the name gives no object (CSV); otherwise return None.
        :raises ExportLoadError: for an unknown ``object_name``, or a file name that names
            no object or several.
        """
        if self.object_name:
            return _definition_or_raise(self.object_name, path)
        candidates = _objects_in_name(path.stem)
        if len(candidates) == 1:
            return _definition_or_raise(candidates[0], path)
        if not required and not candidates:
            return None
        found = " and ".join(candidates) if candidates else "no object"
        raise ExportLoadError(
            f"unknown object for {path}: its file name names {found}; pass object_name "
            "(for example Contact) or name the file after its object, such as Contacts.csv"
        )

    def _unmodeled_name_for_file(self, path: Path) -> str:
        return self.object_name or _objects_in_name(path.stem)[0]

    def _fill(self, pending: _Pending, definition: SObjectDef, columns: Mapping[str, Any]) -> None:
        mapped = self.column_map.get(definition.name, {})
        mapped_columns = {column.lower(): name for name, column in mapped.items()}
        for column, value in columns.items():
            if column.lower() in mapped_columns:
                field_name = mapped_columns[column.lower()]
                if field_name == "Id":
                    if not _blank(value):
                        pending.source_id = str(value).strip()
                else:
                    self._set(pending, definition.field(field_name), value)
                continue
            target = _column_field(definition, column)
            if target == "Id":
                if not _blank(value):
                    pending.source_id = str(value).strip()
                continue
            if target is None:
                self._drop(definition, column, "the sandbox does not model it", value)
            elif target.name in mapped:
                reason = f"the column map takes {target.name} from {mapped[target.name]}"
                self._drop(definition, column, reason, value)
            elif not target.createable and target.name not in _KEPT_READ_ONLY:
                self._drop(definition, column, f"{target.name} is read-only", value)
            else:
                self._set(pending, target, value)

    def _drop(self, definition: SObjectDef, column: str, reason: str, value: Any) -> None:
        key = f"{definition.name}.{column}"
        self.dropped_reasons.setdefault(key, reason)
        if not _blank(value):
            self.dropped_fields[key] += 1

    def _set(self, pending: _Pending, target: FieldDef | None, value: Any) -> None:
        if target is None or _blank(value):
            return
        if target.type == "reference":
            text = str(value).strip()
            if not text.startswith("@") and not _ID_SHAPE.match(text):
                self._reject(pending, f"invalid {target.name} {text!r}: expected an Id or @ref")
                return
            pending.references[target.name] = text
            return
        try:
            pending.values[target.name] = _convert(target, value)
        except ValueError as exc:
            self._reject(pending, str(exc))

    def _reject(self, pending: _Pending, reason: str) -> None:
        if pending.skipped:
            return
        pending.skipped = True
        self.issues.add(pending.file_name, f"skipped rows: {reason}", pending.place)
        self.skipped_rows[pending.file_name] += 1

    def _finish(self, pending: _Pending, definition: SObjectDef) -> None:
        for required in definition.fields:
            if required.required and pending.values.get(required.name) is None:
                self._reject(pending, f"{required.name} is missing (Salesforce requires it)")
                break
        self.pending.append(pending)

    # -- Ids and references ------------------------------------------------------------

    def resolve(self) -> LoadedExport:
        result = LoadedExport()
        skipped_keys = self._assign_ids(result)
        self._resolve_references(result, skipped_keys)

        for pending in self.pending:
            if pending.skipped:
                continue
            if pending.sobject == "CampaignMember":
                problem = None
                if pending.values.get("CampaignId") is None:
                    problem = "CampaignId is missing or outside the export"
                elif not pending.values.get("ContactId") and not pending.values.get("LeadId"):
                    problem = "ContactId and LeadId are missing or outside the export"
                if problem:
                    self._reject(pending, problem)
                    continue
            result.records.setdefault(pending.sobject, []).append(pending.values)

        result.skipped_objects = dict(self.skipped_objects)
        result.dropped_fields = dict(self.dropped_fields)
        result.skipped_rows = dict(self.skipped_rows)
        for name, count in sorted(result.skipped_objects.items()):
            result.warnings.append(
                f"skipped {count} {name} records: the sandbox does not model {name}"
            )
        empty_columns: dict[str, list[str]] = defaultdict(list)
        for key, reason in self.dropped_reasons.items():
            count = self.dropped_fields.get(key, 0)
            if count:
                result.warnings.append(f"dropped field {key} ({count} values): {reason}")
            else:
                sobject, _, column = key.partition(".")
                empty_columns[sobject].append(column)
        for sobject, columns in empty_columns.items():
            result.warnings.append(
                f"ignored {len(columns)} empty {sobject} columns that the sandbox does not "
                f"load: {', '.join(columns)}"
            )
        result.warnings.extend(self.issues.warnings())
        return result

    def _assign_ids(self, result: LoadedExport) -> set[str]:
        """Give every loaded record a new Id; return the keys of skipped records."""
        namespace = int.from_bytes(self.digest.digest()[:5], "big")
        sequences: dict[str, int] = defaultdict(int)
        skipped_keys: set[str] = set()
        for pending in self.pending:
            keys = []
            if pending.reference_key:
                keys.append("@" + pending.reference_key)
            if pending.source_id:
                keys.append(pending.source_id[:15])
            if pending.skipped:
                skipped_keys.update(keys)
                continue
            sequence = sequences[pending.sobject]
            sequences[pending.sobject] += 1
            if sequence >= _MAX_RECORDS_PER_OBJECT:
                raise ExportLoadError(
                    f"too many {pending.sobject} records: one load takes at most "
                    f"{_MAX_RECORDS_PER_OBJECT}; split the export"
                )
            new_id = _loaded_id(SOBJECTS[pending.sobject].key_prefix, namespace, sequence)
            pending.values = {"Id": new_id, **pending.values}
            for key in keys:
                if key in result.id_map:
                    raise ExportLoadError(
                        f"duplicate record key {key.split('|')[-1]!r} in {pending.origin}: "
                        "each record of an export needs its own Id and referenceId"
                    )
                result.id_map[key] = new_id
        return skipped_keys

    def _resolve_references(self, result: LoadedExport, skipped_keys: set[str]) -> None:
        for pending in self.pending:
            if pending.skipped:
                continue
            for field_name, raw in pending.references.items():
                if raw.startswith("@"):
                    name = raw[1:]
                    key = "@" + (name if "|" in name else f"{pending.scope}|{name}")
                    if key in result.id_map:
                        pending.values[field_name] = result.id_map[key]
                    elif key in skipped_keys:
                        self._clear(result, pending, field_name, "a skipped record")
                    else:
                        raise ExportLoadError(
                            f"unresolved reference {raw!r} in {pending.origin}, field "
                            f"{field_name}: no record in the files of {pending.scope} has that "
                            "referenceId; load the file that defines it in the same call"
                        )
                    continue
                target = result.id_map.get(raw[:15])
                if target is not None:
                    pending.values[field_name] = target
                elif raw[:15] in skipped_keys:
                    self._clear(result, pending, field_name, "a skipped record")
                else:
                    self._clear(result, pending, field_name, "a record outside the export")

    def _clear(self, result: LoadedExport, pending: _Pending, field_name: str, cause: str) -> None:
        self.issues.add(
            pending.file_name,
            f"set {field_name} to null because it refers to {cause}",
            pending.place,
        )
        result.cleared_references += 1


def _group_column_map(column_map: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """Group the column map per sObject: ``{"Contact": {"Email": column}}``.

    A key ``Email`` applies to every sObject with that field, ``Contact.Email`` to one.

    :raises ExportLoadError: for a key that names no sandbox field.
    """
    grouped: dict[str, dict[str, str]] = defaultdict(dict)
    for key, column in column_map.items():
        sobject_name, _, field_name = key.rpartition(".")
        if sobject_name:
            definition = _find_definition(sobject_name)
            if definition is None:
                raise ExportLoadError(
                    f"invalid column map key {key!r}: {sobject_name!r} is not one of "
                    f"{', '.join(SALESFORCE_OBJECTS)}"
                )
            targets = [definition]
        else:
            targets = list(SOBJECTS.values())
        found = False
        for definition in targets:
            target = definition.field(field_name)
            if target is not None and (target.createable or target.name in _KEPT_READ_ONLY):
                grouped[definition.name][target.name] = column
                found = True
        if not found:
            raise ExportLoadError(
                f"invalid column map key {key!r}: no sandbox sObject has a writable field "
                f"{field_name!r}; use an API field name such as Email"
            )
    return grouped


def _find_definition(name: str) -> SObjectDef | None:
    for definition in SOBJECTS.values():
        if definition.name.lower() == name.lower():
            return definition
    return None


def _definition_or_raise(name: str, path: Path) -> SObjectDef | None:
    """Return the modeled sObject ``name``, None for a known unmodeled one, or raise."""
    definition = _find_definition(name)
    if definition is not None:
        return definition
    if name in UNMODELED_STANDARD_OBJECTS or name.endswith("__c"):
        return None
    raise ExportLoadError(
        f"unknown object {name!r} for {path}: the sandbox loads "
        f"{', '.join(SALESFORCE_OBJECTS)}; pass one of them as object_name"
    )


def _objects_in_name(stem: str) -> list[str]:
    """Return the object names that a file name contains, longest names only."""
    folded = re.sub(r"[^a-z0-9]", "", stem.lower())
    names = [
        name
        for name in (*SALESFORCE_OBJECTS, *sorted(UNMODELED_STANDARD_OBJECTS))
        if name.lower() in folded or _plural(name) in folded
    ]
    # "CampaignMember" contains "Campaign", so a name inside a longer match does not count.
    return [
        name
        for name in names
        if not any(name != other and name.lower() in other.lower() for other in names)
    ]


def _column_field(definition: SObjectDef, column: str) -> FieldDef | str | None:
    """Map a column to a field, to ``"Id"`` for the row's own Id, or to None when unknown."""
    folded = re.sub(r"[^a-z0-9]", "", column.lower())
    if folded in _ID_COLUMNS or column.lower() == f"{definition.name.lower()}.id":
        return "Id"
    exact = definition.field(column)
    if exact is not None:
        return "Id" if exact.name == "Id" else exact
    relationship, _, leaf = column.partition(".")
    if leaf.lower() == "id":
        return definition.relationships.get(relationship.lower())
    label_target = _LABELS.get(definition.name, {}).get(folded)
    if label_target is not None:
        return "Id" if label_target == "Id" else definition.field(label_target)
    for candidate in definition.fields:
        if re.sub(r"[^a-z0-9]", "", candidate.name.lower()) == folded:
            return candidate
    return None


def _plural(name: str) -> str:
    lowered = name.lower()
    if lowered.endswith("y"):
        return lowered[:-1] + "ies"
    return lowered + "s"


def _report_groups(header: list[str]) -> dict[str, list[tuple[int, str]]]:
    """Group ``Object: Label`` columns by object; empty unless every column has a prefix."""
    groups: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for index, column in enumerate(header):
        prefix, separator, label = column.partition(": ")
        if not separator:
            return {}
        groups[prefix.strip()].append((index, label.strip()))
    return dict(groups)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _convert(target: FieldDef, value: Any) -> Any:
    """Convert an export value to the field's type; raise ValueError naming field and value."""
    text = value.strip() if isinstance(value, str) else value
    if target.type == "boolean":
        if isinstance(text, bool):
            return text
        if str(text).lower() in _TRUE_TEXT:
            return True
        if str(text).lower() in _FALSE_TEXT:
            return False
        raise ValueError(f"invalid {target.name} {text!r}: expected true or false")
    if target.type == "int":
        try:
            number = float(text)
        except (TypeError, ValueError):
            raise ValueError(f"invalid {target.name} {text!r}: expected a whole number") from None
        if not number.is_integer():
            raise ValueError(f"invalid {target.name} {text!r}: expected a whole number")
        return int(number)
    if target.type in ("double", "currency", "percent"):
        try:
            return float(text)
        except (TypeError, ValueError):
            raise ValueError(f"invalid {target.name} {text!r}: expected a number") from None
    if target.type == "date":
        us_date = _US_DATE.match(str(text))
        try:
            if us_date:
                month, day, year = (int(part) for part in us_date.groups())
                return date(year, month, day).isoformat()
            return date.fromisoformat(str(text)[:10]).isoformat()
        except ValueError:
            raise ValueError(f"invalid {target.name} {text!r}: expected YYYY-MM-DD") from None
    if target.type == "datetime":
        if isinstance(text, datetime):
            return text
        try:
            return parse_datetime(str(text))
        except ValueError:
            raise ValueError(
                f"invalid {target.name} {text!r}: expected an ISO 8601 datetime"
            ) from None
    converted = str(value)
    if target.length and len(converted) > target.length:
        # The value may be a name or an email, so the message gives only its length.
        raise ValueError(
            f"{target.name} has {len(converted)} characters, more than its {target.length}"
        )
    return converted


def _loaded_id(prefix: str, namespace: int, sequence: int) -> str:
    value = (namespace << 19) | sequence
    digits = []
    for _ in range(10):
        value, remainder = divmod(value, 62)
        digits.append(_BASE62[remainder])
    return case_safe_id(prefix + _LOADED_ID_POD + "".join(reversed(digits)))


def load_export(
    paths: Sequence[Path],
    *,
    column_map: Mapping[str, str] | None = None,
    object_name: str | None = None,
) -> LoadedExport:
    """Read Salesforce export files into records with new Ids and resolved references.

    Accepted files:

    - SFDX data-tree JSON: a file ``{"records": [...]}`` whose records carry
      ``attributes.type`` and ``attributes.referenceId`` (nested child records such as
      ``"Contacts": {"records": [...]}`` too), or a plan file (a list of ``{"sobject",
      "files"}`` steps) whose files sit beside it. ``@Ref`` values resolve against the
      records of all files in the same folder.
    - CSV with API-name headers (any letter case), label headers (``Email Opt Out``),
      dump-style headers (``sf_id``, ``account_id``) or ``Account.Id``, with or without a
      UTF-8 byte-order mark. The object comes from ``object_name`` or the file name
      (``Contacts.csv``, ``test_data.Contact.csv``, ``Contact_Data.csv``). A report export
      whose headers are all ``Object: Label`` gives records of several objects per row.

    Reference fields may contain the exporting org's Ids. Those that point at a record of the
    export become its new Id, and the others become null with a warning.

    :param paths: the files, in any order.
    :param column_map: product field to source column, such as
        ``{"Email": "npe01__HomeEmail__c"}``; ``Contact.Email`` limits a key to one object.
    :param object_name: the sObject of every CSV file and of data-tree records without a
        type; by default it comes from the file name.
    :return: the records, with warnings and counts of everything not loaded.
    :raises ExportLoadError: for a missing file, an unreadable file, an unknown object, a
        duplicate Id, or an unresolved ``@`` reference.
    """
    if not paths:
        raise ExportLoadError("no export files given: pass at least one .json or .csv file")
    loader = _Loader(column_map, object_name)
    for path in paths:
        loader.read_path(Path(path))
    result = loader.resolve()
    logger.info(
        "Loaded %s from %d files with %d warnings",
        ", ".join(f"{count} {name}" for name, count in result.counts().items()) or "no records",
        len(paths),
        len(result.warnings),
    )
    return result
