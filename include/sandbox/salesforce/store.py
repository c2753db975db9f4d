"""SQLite store of the Salesforce sandbox: one table per sObject plus sessions, jobs and settings.

Datetimes are stored as text in Salesforce's output form, ``2024-01-02T03:04:05.000+0000``,
always in UTC, so text order is time order and query results need no conversion. Text is
stored as given. Case-insensitive comparison goes through the SQL function ``sf_fold``
(Unicode case folding), and the Email and external Id indexes are built on
``sf_fold(column)`` so that those lookups use them. Every connection to the file must
register ``sf_fold`` (see :func:`register_functions`) before it writes to an indexed table.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from include.sandbox.salesforce.errors import SalesforceApiError, not_found
from include.sandbox.salesforce.ids import make_id, normalize_id
from include.sandbox.salesforce.schema import (
    ID_TYPES,
    NUMBER_TYPES,
    PERSON_COPY_FIELDS,
    RESPONDED_STATUSES,
    SOBJECTS,
    FieldDef,
    SObjectDef,
)

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]

# Local part and domain rules of the Email field; see docs/sandbox-salesforce.md.
_EMAIL_PATTERN = re.compile(
    r"^(?=.{3,80}$)"
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
_ISO_DATETIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(Z|[+-]\d{2}:?\d{2})?$"
)


def sql_fold(value: Any) -> Any:
    """SQLite function ``sf_fold``: casefold text, pass other values through."""
    return value.casefold() if isinstance(value, str) else value


def register_functions(connection: sqlite3.Connection) -> None:
    """Register ``sf_fold`` and ``sf_like``, which the store's indexes and queries use."""
    connection.create_function("sf_fold", 1, sql_fold, deterministic=True)
    connection.create_function("sf_like", 2, sql_like, deterministic=True)


def format_datetime(value: datetime) -> str:
    """Format a datetime as Salesforce returns it: ``2024-01-02T03:04:05.000+0000`` in UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    utc = value.astimezone(UTC)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:"
        f"{utc.second:02d}.{utc.microsecond // 1000:03d}+0000"
    )


def parse_datetime(text: str) -> datetime:
    """Parse an ISO 8601 datetime (``Z``, ``+hh:mm`` or ``+hhmm`` zone; none means UTC).

    :raises ValueError: when ``text`` is not such a datetime.
    """
    match = _ISO_DATETIME.match(text.strip())
    if match is None:
        raise ValueError(f"invalid datetime {text!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    microsecond = int((fraction or "0")[:6].ljust(6, "0"))
    parsed = datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second), microsecond
    )
    if zone is None or zone == "Z":
        return parsed.replace(tzinfo=UTC)
    zone_digits = zone.replace(":", "")
    offset = int(zone_digits[1:3]) * 3600 + int(zone_digits[3:5]) * 60
    if zone_digits[0] == "-":
        offset = -offset
    return datetime.fromtimestamp(parsed.replace(tzinfo=UTC).timestamp() - offset, UTC)


def is_valid_email(value: str) -> bool:
    """Check the sandbox's Email rule: ``local@domain.tld``, ASCII, at most 80 characters."""
    return _EMAIL_PATTERN.match(value) is not None


class SalesforceStore:
    """SQLite-backed records of the sandbox org.

    One connection serves the store; the server calls it from its event loop, and a lock
    makes calls from other threads (seeding, tests) safe.
    """

    def __init__(self, path: Path, clock: Clock) -> None:
        """Open or create the database file.

        :param path: the SQLite file, normally ``<data_dir>/salesforce.sqlite3``.
        :param clock: returns the sandbox time (aware UTC) used for audit fields.
        """
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self.lock = threading.RLock()
        self.connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        register_functions(self.connection)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=NORMAL")
        self.connection.execute("PRAGMA foreign_keys=OFF")
        self._create_schema()
        # Record faults: (sobject, 18-character id) -> [error code, remaining count].
        self.record_faults: dict[tuple[str, str], list[Any]] = {}

    # Schema

    def _create_schema(self) -> None:
        with self.lock:
            for definition in SOBJECTS.values():
                columns = ", ".join(
                    f'"{f.name}" {f.sql_type}' + (" PRIMARY KEY" if f.name == "Id" else "")
                    for f in definition.fields
                )
                self.connection.execute(
                    f'CREATE TABLE IF NOT EXISTS "{definition.name}" ({columns}, _seq INTEGER)'
                )
                self.connection.execute(
                    f'CREATE INDEX IF NOT EXISTS "{definition.name}_SystemModstamp" '
                    f'ON "{definition.name}" (SystemModstamp)'
                )
                # Serves query (IsDeleted = 0) ordered by SystemModstamp, and its row count
                # without reading the table.
                self.connection.execute(
                    f'CREATE INDEX IF NOT EXISTS "{definition.name}_IsDeleted_SystemModstamp" '
                    f'ON "{definition.name}" (IsDeleted, SystemModstamp)'
                )
            statements = [
                "CREATE INDEX IF NOT EXISTS Contact_Email ON Contact (sf_fold(Email))",
                "CREATE INDEX IF NOT EXISTS Lead_Email ON Lead (sf_fold(Email))",
                "CREATE INDEX IF NOT EXISTS Contact_AccountId ON Contact (AccountId)",
                "CREATE INDEX IF NOT EXISTS Contact_Cerkl_Subscriber_Id "
                "ON Contact (sf_fold(Cerkl_Subscriber_Id__c))",
                "CREATE UNIQUE INDEX IF NOT EXISTS Contact_Cerkl_Subscriber_Id_unique "
                "ON Contact (sf_fold(Cerkl_Subscriber_Id__c)) "
                "WHERE Cerkl_Subscriber_Id__c IS NOT NULL AND IsDeleted = 0",
                "CREATE INDEX IF NOT EXISTS CampaignMember_CampaignId "
                "ON CampaignMember (CampaignId)",
                "CREATE INDEX IF NOT EXISTS CampaignMember_ContactId ON CampaignMember (ContactId)",
                "CREATE INDEX IF NOT EXISTS CampaignMember_LeadId ON CampaignMember (LeadId)",
                "CREATE TABLE IF NOT EXISTS _sequences (prefix TEXT PRIMARY KEY, next INTEGER)",
                "CREATE TABLE IF NOT EXISTS _deletions (sobject TEXT, id TEXT, deleted_date TEXT)",
                "CREATE INDEX IF NOT EXISTS _deletions_date ON _deletions (sobject, deleted_date)",
                "CREATE TABLE IF NOT EXISTS _meta (key TEXT PRIMARY KEY, value TEXT)",
                "CREATE TABLE IF NOT EXISTS _sessions "
                "(token TEXT PRIMARY KEY, grant_type TEXT, last_used REAL)",
                "CREATE TABLE IF NOT EXISTS _bulk_jobs (id TEXT PRIMARY KEY, info TEXT)",
            ]
            for statement in statements:
                self.connection.execute(statement)

    # Seeding API

    def reset(self) -> None:
        """Delete every record, session, job and sequence (settings in ``_meta`` stay)."""
        with self.lock:
            for name in SOBJECTS:
                self.connection.execute(f'DELETE FROM "{name}"')
            for table in ("_sequences", "_deletions", "_sessions", "_bulk_jobs"):
                self.connection.execute(f"DELETE FROM {table}")
            self.record_faults.clear()
        logger.info("Emptied the Salesforce sandbox store")

    def count(self, sobject: str, *, include_deleted: bool = False) -> int:
        """Count the records of ``sobject`` (without recycle-bin rows unless asked)."""
        definition = self.definition(sobject)
        where = "" if include_deleted else " WHERE IsDeleted = 0"
        with self.lock:
            row = self.connection.execute(
                f'SELECT COUNT(*) FROM "{definition.name}"{where}'
            ).fetchone()
        return int(row[0])

    def insert_records(self, sobject: str, records: Iterable[dict[str, Any]]) -> list[str]:
        """Insert seed records without API validation, fast enough for 200,000 rows.

        Given ``Id``, ``CreatedDate``, ``LastModifiedDate``, ``SystemModstamp`` and
        ``IsDeleted`` values are kept; missing ones are assigned from the clock. References
        are stored as given (15-character Ids are widened to 18).

        :param sobject: an sObject name such as ``Contact``.
        :param records: dicts keyed by API field names; datetimes as aware ``datetime``
            values or ISO strings.
        :return: the 18-character Ids in input order.
        :raises KeyError: when ``sobject`` or a field name is unknown.
        :raises ValueError: when a value cannot be stored in its field.
        """
        definition = self.definition(sobject, error=KeyError)
        names = [f.name for f in definition.fields]
        placeholders = ", ".join("?" for _ in range(len(names) + 1))
        column_list = ", ".join(f'"{name}"' for name in names) + ", _seq"
        now = format_datetime(self.clock())
        rows: list[tuple[Any, ...]] = []
        ids: list[str] = []
        prepared = [self._seed_row(definition, record, now) for record in records]
        with self.lock:
            missing = sum(1 for row in prepared if row["Id"] is None)
            sequence = self._next_sequence(definition.key_prefix, missing) if missing else 0
            for row in prepared:
                row_sequence = 0
                if row["Id"] is None:
                    row_sequence = sequence
                    row["Id"] = make_id(definition.key_prefix, sequence)
                    sequence += 1
                ids.append(row["Id"])
                rows.append((*(row[name] for name in names), row_sequence))
            self.connection.execute("BEGIN")
            try:
                self.connection.executemany(
                    f'INSERT INTO "{definition.name}" ({column_list}) VALUES ({placeholders})',
                    rows,
                )
                if definition.name == "CampaignMember":
                    self._refresh_member_person_fields(None)
                self.connection.execute("COMMIT")
            except BaseException:
                self.connection.execute("ROLLBACK")
                raise
        logger.info("Inserted %d %s seed records", len(ids), definition.name)
        return ids

    def _seed_row(self, definition: SObjectDef, record: dict[str, Any], now: str) -> dict[str, Any]:
        row: dict[str, Any] = {f.name: f.default for f in definition.fields}
        for key, value in record.items():
            if key == "attributes":
                continue
            field = definition.field(key)
            if field is None:
                raise KeyError(f"unknown field {key!r} on {definition.name}")
            row[field.name] = self._coerce_seed_value(field, value)
        if row["Id"] is not None:
            normalized = normalize_id(row["Id"])
            if normalized is None:
                raise ValueError(f"invalid Id {row['Id']!r}: use a 15- or 18-character Id")
            row["Id"] = normalized
        for audit in ("CreatedDate", "LastModifiedDate", "SystemModstamp"):
            row[audit] = row[audit] or now
        row["IsDeleted"] = 1 if row["IsDeleted"] else 0
        self._derive_fields(definition, row)
        return row

    def _coerce_seed_value(self, field: FieldDef, value: Any) -> Any:
        if value is None:
            return None
        if field.type == "datetime":
            if isinstance(value, datetime):
                return format_datetime(value)
            return format_datetime(parse_datetime(str(value)))
        if field.type == "date":
            if isinstance(value, datetime):
                return value.date().isoformat()
            if isinstance(value, date):
                return value.isoformat()
            return date.fromisoformat(str(value)).isoformat()
        if field.type == "boolean":
            return 1 if value in (True, 1, "true", "True", "1") else 0
        if field.type in ID_TYPES:
            return normalize_id(str(value)) or str(value)
        if field.type == "int":
            return int(value)
        if field.type in NUMBER_TYPES:
            return float(value)
        return str(value)

    def _next_sequence(self, prefix: str, count: int = 1) -> int:
        row = self.connection.execute(
            "SELECT next FROM _sequences WHERE prefix = ?", (prefix,)
        ).fetchone()
        start = int(row[0]) if row else 1
        self.connection.execute(
            "INSERT INTO _sequences (prefix, next) VALUES (?, ?) "
            "ON CONFLICT(prefix) DO UPDATE SET next = excluded.next",
            (prefix, start + count),
        )
        return start

    @staticmethod
    def _derive_fields(definition: SObjectDef, row: dict[str, Any]) -> None:
        if definition.name in ("Contact", "Lead"):
            parts = [row.get("FirstName"), row.get("LastName")]
            row["Name"] = " ".join(part for part in parts if part) or None
        if definition.name == "CampaignMember":
            status = row.get("Status")
            row["HasResponded"] = 1 if status and status.casefold() in RESPONDED_STATUSES else 0

    def _refresh_member_person_fields(self, person_id: str | None) -> None:
        """Copy Email, names and opt-out from Contacts and Leads onto their CampaignMembers.

        :param person_id: refresh the members of this Contact or Lead only; None refreshes
            every member, which rewrites the whole table.
        """
        for reference in ("ContactId", "LeadId"):
            if person_id is None:
                self._copy_person_fields(reference, f"{reference} IS NOT NULL", ())
            else:
                self._copy_person_fields(reference, f"{reference} = ?", (person_id,))

    def _refresh_one_member_person_fields(self, member_id: str) -> None:
        """Copy Email, names and opt-out from its Contact or Lead onto one CampaignMember."""
        for reference in ("ContactId", "LeadId"):
            self._copy_person_fields(reference, f"Id = ? AND {reference} IS NOT NULL", (member_id,))

    def _copy_person_fields(self, reference: str, where: str, params: tuple[Any, ...]) -> None:
        person_object = "Contact" if reference == "ContactId" else "Lead"
        columns = ", ".join(PERSON_COPY_FIELDS)
        self.connection.execute(
            f"UPDATE CampaignMember SET ({columns}) = "
            f"(SELECT {columns} FROM {person_object} p "
            f"WHERE p.Id = CampaignMember.{reference}) "
            f"WHERE {where}",
            params,
        )

    # Lookups

    @staticmethod
    def definition(sobject: str, error: type[Exception] | None = None) -> SObjectDef:
        """Return the sObject definition; unknown names raise NOT_FOUND (or ``error``)."""
        from include.sandbox.salesforce.schema import find_sobject

        definition = find_sobject(sobject)
        if definition is None:
            if error is not None:
                raise error(f"unknown sObject {sobject!r}: use one of {', '.join(SOBJECTS)}")
            raise not_found(f"The requested resource does not exist: sObject type '{sobject}'")
        return definition

    def fetch_row(self, sobject: str, record_id: str) -> dict[str, Any] | None:
        """Return the stored row of a record by Id (deleted rows included), or None."""
        definition = self.definition(sobject)
        normalized = normalize_id(record_id)
        if normalized is None:
            return None
        with self.lock:
            cursor = self.connection.execute(
                f'SELECT * FROM "{definition.name}" WHERE Id = ?', (normalized,)
            )
            row = cursor.fetchone()
            if row is None:
                return None
            names = [column[0] for column in cursor.description]
        return dict(zip(names, row, strict=True))

    def find_by_external_id(self, sobject: str, field_name: str, value: str) -> list[str]:
        """Return the Ids of live records whose external Id field equals ``value``."""
        definition = self.definition(sobject)
        field = definition.field(field_name)
        if field is None or not (field.external_id or field.name == "Id"):
            raise SalesforceApiError(
                404,
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {field_name}",
            )
        with self.lock:
            if field.is_text:
                rows = self.connection.execute(
                    f'SELECT Id FROM "{definition.name}" '
                    f'WHERE sf_fold("{field.name}") = ? AND IsDeleted = 0',
                    (value.casefold(),),
                ).fetchall()
            else:
                rows = self.connection.execute(
                    f'SELECT Id FROM "{definition.name}" WHERE Id = ? AND IsDeleted = 0',
                    (normalize_id(value),),
                ).fetchall()
        return [row[0] for row in rows]

    # Settings kept in the database so that they survive a restart

    def get_meta(self, key: str, default: Any = None) -> Any:
        """Return a JSON setting stored under ``key``."""
        with self.lock:
            row = self.connection.execute(
                "SELECT value FROM _meta WHERE key = ?", (key,)
            ).fetchone()
        return json.loads(row[0]) if row else default

    def set_meta(self, key: str, value: Any) -> None:
        """Store a JSON setting under ``key``."""
        with self.lock:
            self.connection.execute(
                "INSERT INTO _meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value)),
            )


@lru_cache(maxsize=256)
def _like_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.DOTALL)


def sql_like(value: Any, pattern: str) -> int | None:
    """SQLite function ``sf_like``: match casefolded ``value`` against a translated LIKE pattern.

    The SOQL engine translates the LIKE literal to ``pattern`` (a regular expression over
    casefolded text), so matching ignores letter case in any script.
    """
    if value is None:
        return None
    return 1 if _like_regex(pattern).fullmatch(str(value).casefold()) else 0
