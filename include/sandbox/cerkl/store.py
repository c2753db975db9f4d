"""SQLite store of the Cerkl sandbox: subscribers, unsubscribes, interests and segments.

Rules the store enforces (the HTTP layer in ``app.py`` only parses and formats):

- Subscribers and unsubscribes share one id space: an unsubscribe keeps the id of the
  subscriber it replaces, and a new subscriber gets one more than the highest id of either.
- Emails compare trimmed and case-insensitively (``email_key`` column), in uniqueness checks
  and in the ``email`` filter. The stored ``email`` keeps the trimmed spelling as given.
- ``date_modified_utc`` moves when the name, email, status, engagement score or the order of
  the top five interests changes. A change of privacy level alone does not move it.
- A segment's ``date_modified_utc`` moves when its description, external id or members change.

Datetimes are stored and returned as ``YYYY-MM-DD HH:MM:SS`` UTC text, which sorts and
compares correctly as text.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
DATETIME_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")

SUBSCRIBER_STATUSES: dict[int, str] = {
    1: "Email Blasts & News Digests",
    2: "News Digests Only",
    3: "Email Blasts Only",
}
PRIVACY_LEVELS: dict[int, str] = {
    1: "Personalize the experience",
    2: "Personalize, but do not report on activity",
    3: "Do not personalize",
}
DEFAULT_STATUS_ID = 1
DEFAULT_PRIVACY_LEVEL_ID = 1
TOP_INTEREST_RANKS = 5

# Sandbox email rule, at most 254 characters with exactly one "@". The local part has 1 to 64
# characters, none of them whitespace, quotes, angle brackets, parentheses, commas, semicolons,
# colons, square brackets or backslashes, and no leading, trailing or double dot. The domain
# has two or more dot-separated labels of letters, digits and inner hyphens, and its last
# label has two or more letters.
_LOCAL_PART = re.compile(r"^(?!\.)(?!.*\.\.)[^\s@\"<>(),;:\[\]\\]{1,64}(?<!\.)$")
_DOMAIN = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")
MAX_EMAIL_LENGTH = 254

SUBSCRIBER_FILTER_FIELDS = ("email", "date_created_utc", "date_modified_utc")
UNSUBSCRIBE_FILTER_FIELDS = ("date_unsubscribed_utc",)
SEGMENT_FILTER_FIELDS = ("date_modified_utc", "external_id")
FILTER_OPERATORS = {"eq": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS subscriber (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL,
    email_key TEXT NOT NULL UNIQUE,
    first_name TEXT,
    last_name TEXT,
    subscriber_status_id INTEGER NOT NULL,
    subscriber_privacy_level_id INTEGER NOT NULL,
    engagement_score NUMERIC NOT NULL DEFAULT 0,
    date_created_utc TEXT NOT NULL,
    date_modified_utc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS subscriber_modified ON subscriber (date_modified_utc);
CREATE INDEX IF NOT EXISTS subscriber_created ON subscriber (date_created_utc);

CREATE TABLE IF NOT EXISTS unsubscribe (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL,
    email_key TEXT NOT NULL,
    first_name TEXT,
    last_name TEXT,
    date_unsubscribed_utc TEXT NOT NULL,
    self_unsubscribed INTEGER NOT NULL,
    source TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS unsubscribe_email ON unsubscribe (email_key);
CREATE INDEX IF NOT EXISTS unsubscribe_date ON unsubscribe (date_unsubscribed_utc);

CREATE TABLE IF NOT EXISTS category (
    id INTEGER PRIMARY KEY,
    description TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS interest (
    subscriber_id INTEGER NOT NULL,
    category_id INTEGER NOT NULL,
    rank INTEGER NOT NULL,
    score NUMERIC NOT NULL DEFAULT 0,
    PRIMARY KEY (subscriber_id, category_id)
);

CREATE TABLE IF NOT EXISTS segment (
    id INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    external_id TEXT,
    date_created_utc TEXT NOT NULL,
    date_modified_utc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS segment_external_id ON segment (external_id);
CREATE INDEX IF NOT EXISTS segment_modified ON segment (date_modified_utc);

CREATE TABLE IF NOT EXISTS segment_member (
    segment_id INTEGER NOT NULL,
    subscriber_id INTEGER NOT NULL,
    PRIMARY KEY (segment_id, subscriber_id)
);
CREATE INDEX IF NOT EXISTS segment_member_subscriber ON segment_member (subscriber_id);
"""

_TABLES = ("subscriber", "unsubscribe", "category", "interest", "segment", "segment_member")


class CerklApiError(Exception):
    """An API error with its HTTP status and ``UPPER_SNAKE`` code.

    Messages name ids and fields, never an email address or a person's name.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Filter:
    """One ``filters_json`` condition: ``field`` compared with ``operator`` to ``value``."""

    field: str
    operator: str
    value: str


def normalize_email(email: str) -> str:
    """Return the comparison key of an email: trimmed and lower-cased."""
    return email.strip().lower()


def is_valid_email(email: str) -> bool:
    """Check a trimmed email against the sandbox rule in this module's header comment."""
    if len(email) > MAX_EMAIL_LENGTH or email.count("@") != 1:
        return False
    local_part, domain = email.split("@")
    return bool(_LOCAL_PART.match(local_part)) and bool(_DOMAIN.match(domain))


def format_datetime(value: datetime) -> str:
    """Format an aware (or naive UTC) datetime as ``YYYY-MM-DD HH:MM:SS`` UTC."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime(DATETIME_FORMAT)


def coerce_datetime(value: Any, *, field: str) -> str:
    """Turn a datetime, an ISO 8601 string or ``YYYY-MM-DD HH:MM:SS`` text into stored text.

    :raises ValueError: naming ``field`` when the value is not a datetime.
    """
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, str):
        text = value.strip()
        if DATETIME_PATTERN.match(text):
            return text
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return format_datetime(parsed)
    raise ValueError(f"invalid {field} {value!r}: use a datetime or YYYY-MM-DD HH:MM:SS UTC")


def _nested_id(record: Mapping[str, Any], flat: str, nested: str) -> Any:
    if flat in record:
        return record[flat]
    value = record.get(nested)
    if isinstance(value, Mapping):
        return value.get("id")
    return value


class CerklStore:
    """The Cerkl sandbox data in one SQLite file (WAL mode), safe to share between threads."""

    def __init__(self, path: Path, clock: Callable[[], datetime]) -> None:
        """Open or create the store.

        :param path: the SQLite file, such as ``<data_dir>/cerkl.sqlite3``.
        :param clock: returns the sandbox time for every date the store sets.
        """
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def _now(self) -> str:
        return format_datetime(self._clock())

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db, self._lock)

    # Seeding

    def reset(self) -> None:
        """Delete every record of every table."""
        with self._transaction() as db:
            for table in _TABLES:
                db.execute(f"DELETE FROM {table}")

    def count(self, collection: str) -> int:
        """Count the rows of ``subscribers``, ``unsubscribes``, ``categories``, ``interests``,
        ``segments`` or ``segment_members``.

        :raises ValueError: for another collection name.
        """
        tables = {
            "subscribers": "subscriber",
            "unsubscribes": "unsubscribe",
            "categories": "category",
            "interests": "interest",
            "segments": "segment",
            "segment_members": "segment_member",
        }
        if collection not in tables:
            raise ValueError(f"unknown collection {collection!r}: use one of {', '.join(tables)}")
        with self._lock:
            return self._db.execute(f"SELECT COUNT(*) FROM {tables[collection]}").fetchone()[0]

    def insert_subscribers(self, records: Iterable[Mapping[str, Any]]) -> list[int]:
        """Insert subscribers as given, without the API's checks on status or unsubscribes.

        :param records: dicts with ``email`` (required) and optional ``id``, ``first_name``,
            ``last_name``, ``subscriber_status_id`` (or ``subscriber_status: {"id"}``),
            ``subscriber_privacy_level_id`` (or the nested form), ``engagement_score``,
            ``date_created_utc`` and ``date_modified_utc`` (datetimes or strings).
        :return: the ids, in input order; a record without ``id`` gets the next free one.
        :raises ValueError: for a record without a valid email, or an email or id in use,
            naming the record's position.
        """
        now = self._now()
        ids: list[int] = []
        with self._transaction() as db:
            next_id = self._next_subscriber_id(db)
            rows = []
            for index, record in enumerate(records):
                email = str(record.get("email") or "").strip()
                if not email:
                    raise ValueError(f"subscriber record {index} has no email")
                record_id = record.get("id")
                if record_id is None:
                    record_id = next_id
                record_id = int(record_id)
                next_id = max(next_id, record_id + 1)
                created = record.get("date_created_utc")
                created_text = (
                    coerce_datetime(created, field="date_created_utc") if created else now
                )
                modified = record.get("date_modified_utc")
                modified_text = (
                    coerce_datetime(modified, field="date_modified_utc")
                    if modified
                    else created_text
                )
                status_id = _nested_id(record, "subscriber_status_id", "subscriber_status")
                privacy_id = _nested_id(
                    record, "subscriber_privacy_level_id", "subscriber_privacy_level"
                )
                rows.append(
                    (
                        record_id,
                        email,
                        normalize_email(email),
                        record.get("first_name"),
                        record.get("last_name"),
                        int(status_id or DEFAULT_STATUS_ID),
                        int(privacy_id or DEFAULT_PRIVACY_LEVEL_ID),
                        record.get("engagement_score") or 0,
                        created_text,
                        modified_text,
                    )
                )
                ids.append(record_id)
            try:
                db.executemany(
                    "INSERT INTO subscriber (id, email, email_key, first_name, last_name,"
                    " subscriber_status_id, subscriber_privacy_level_id, engagement_score,"
                    " date_created_utc, date_modified_utc) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    rows,
                )
            except sqlite3.IntegrityError as exc:
                raise ValueError(
                    f"subscriber records repeat an id or an email already in the store: {exc}"
                ) from exc
        return ids

    def insert_unsubscribes(self, records: Iterable[Mapping[str, Any]]) -> list[int]:
        """Insert unsubscribe records as given.

        :param records: dicts with ``email`` and optional ``id``, ``first_name``,
            ``last_name``, ``date_unsubscribed_utc``, ``self_unsubscribed`` (default False) and
            ``source`` (default ``"subscriber"`` when self-unsubscribed, else ``"admin"``).
        :return: the ids in input order.
        :raises ValueError: for a record without an email or with an id in use.
        """
        now = self._now()
        ids: list[int] = []
        with self._transaction() as db:
            next_id = self._next_subscriber_id(db)
            rows = []
            for index, record in enumerate(records):
                email = str(record.get("email") or "").strip()
                if not email:
                    raise ValueError(f"unsubscribe record {index} has no email")
                record_id = record.get("id")
                record_id = int(record_id) if record_id is not None else next_id
                next_id = max(next_id, record_id + 1)
                when = record.get("date_unsubscribed_utc")
                self_unsubscribed = bool(record.get("self_unsubscribed", False))
                source = record.get("source") or ("subscriber" if self_unsubscribed else "admin")
                rows.append(
                    (
                        record_id,
                        email,
                        normalize_email(email),
                        record.get("first_name"),
                        record.get("last_name"),
                        coerce_datetime(when, field="date_unsubscribed_utc") if when else now,
                        int(self_unsubscribed),
                        str(source),
                    )
                )
                ids.append(record_id)
            try:
                db.executemany(
                    "INSERT INTO unsubscribe (id, email, email_key, first_name, last_name,"
                    " date_unsubscribed_utc, self_unsubscribed, source)"
                    " VALUES (?,?,?,?,?,?,?,?)",
                    rows,
                )
            except sqlite3.IntegrityError as exc:
                raise ValueError(f"unsubscribe records repeat an id: {exc}") from exc
        return ids

    def insert_categories(self, records: Iterable[Mapping[str, Any]]) -> list[int]:
        """Insert interest categories (``id`` optional, ``description``); return their ids."""
        ids: list[int] = []
        with self._transaction() as db:
            for record in records:
                cursor = db.execute(
                    "INSERT INTO category (id, description) VALUES (?, ?)",
                    (record.get("id"), str(record["description"])),
                )
                ids.append(int(cursor.lastrowid))
        return ids

    def insert_interests(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Insert interest rows (``subscriber_id``, ``category_id``, ``rank``, ``score``).

        A row for a pair that exists replaces it. Dates do not move.

        :return: the number of rows written.
        """
        values = [
            (
                int(row["subscriber_id"]),
                int(row["category_id"]),
                int(row["rank"]),
                row.get("score", 0),
            )
            for row in rows
        ]
        with self._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO interest (subscriber_id, category_id, rank, score)"
                " VALUES (?, ?, ?, ?)",
                values,
            )
        return len(values)

    def insert_segments(self, records: Iterable[Mapping[str, Any]]) -> list[int]:
        """Insert segments (``id`` optional, ``description``, ``external_id``, ``members``).

        :return: the segment ids in input order.
        """
        now = self._now()
        ids: list[int] = []
        with self._transaction() as db:
            for record in records:
                created = record.get("date_created_utc")
                created_text = (
                    coerce_datetime(created, field="date_created_utc") if created else now
                )
                modified = record.get("date_modified_utc")
                cursor = db.execute(
                    "INSERT INTO segment (id, description, external_id, date_created_utc,"
                    " date_modified_utc) VALUES (?, ?, ?, ?, ?)",
                    (
                        record.get("id"),
                        str(record["description"]),
                        record.get("external_id"),
                        created_text,
                        coerce_datetime(modified, field="date_modified_utc")
                        if modified
                        else created_text,
                    ),
                )
                segment_id = int(cursor.lastrowid)
                db.executemany(
                    "INSERT OR IGNORE INTO segment_member (segment_id, subscriber_id)"
                    " VALUES (?, ?)",
                    [(segment_id, int(member)) for member in record.get("members") or []],
                )
                ids.append(segment_id)
        return ids

    # Subscribers

    def get_subscriber(self, subscriber_id: int) -> dict[str, Any] | None:
        """Return the subscriber row as a dict, or None when there is none with that id."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM subscriber WHERE id = ?", (subscriber_id,)
            ).fetchone()
        return dict(row) if row is not None else None

    def list_subscribers(
        self, filters: Sequence[Filter], *, offset: int, limit: int
    ) -> list[dict[str, Any]]:
        """Return one page of subscribers by id that match every filter."""
        return self._list("subscriber", filters, offset=offset, limit=limit)

    def create_subscriber(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Create a subscriber from validated API fields.

        An email that an admin or the integration unsubscribed is subscribed again under its
        old id, and that unsubscribe record is deleted.

        :param fields: ``email``, ``first_name``, ``last_name``, ``subscriber_status_id``,
            ``subscriber_privacy_level_id``.
        :return: the new subscriber row.
        :raises CerklApiError: 409 DUPLICATE_EMAIL when a subscriber has the email, 409
            SELF_UNSUBSCRIBED when the person unsubscribed themselves.
        """
        email = fields["email"]
        key = normalize_email(email)
        now = self._now()
        with self._transaction() as db:
            self._check_email_free(db, key, exclude_id=None)
            previous = db.execute(
                "SELECT id FROM unsubscribe WHERE email_key = ? ORDER BY id DESC LIMIT 1", (key,)
            ).fetchone()
            if previous is not None:
                subscriber_id = int(previous["id"])
                db.execute("DELETE FROM unsubscribe WHERE id = ?", (subscriber_id,))
            else:
                subscriber_id = self._next_subscriber_id(db)
            db.execute(
                "INSERT INTO subscriber (id, email, email_key, first_name, last_name,"
                " subscriber_status_id, subscriber_privacy_level_id, engagement_score,"
                " date_created_utc, date_modified_utc) VALUES (?,?,?,?,?,?,?,0,?,?)",
                (
                    subscriber_id,
                    email,
                    key,
                    fields.get("first_name"),
                    fields.get("last_name"),
                    fields["subscriber_status_id"],
                    fields["subscriber_privacy_level_id"],
                    now,
                    now,
                ),
            )
            row = db.execute("SELECT * FROM subscriber WHERE id = ?", (subscriber_id,)).fetchone()
        return dict(row)

    def update_subscriber(
        self,
        subscriber_id: int,
        fields: Mapping[str, Any],
        *,
        interests: Sequence[Mapping[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Change a subscriber's fields (and, for admin edits, its interests).

        :param fields: any of ``email``, ``first_name``, ``last_name``,
            ``subscriber_status_id``, ``subscriber_privacy_level_id``, ``engagement_score``.
        :param interests: when given, replaces the interests with rows of ``category_id``,
            ``rank`` and ``score``.
        :return: the updated row.
        :raises CerklApiError: 404 SUBSCRIBER_NOT_FOUND, 409 DUPLICATE_EMAIL, 409
            SELF_UNSUBSCRIBED, 422 CATEGORY_NOT_FOUND.
        """
        with self._transaction() as db:
            current = db.execute(
                "SELECT * FROM subscriber WHERE id = ?", (subscriber_id,)
            ).fetchone()
            if current is None:
                raise _subscriber_not_found(subscriber_id)
            changes = {name: value for name, value in fields.items() if current[name] != value}

            if "email" in changes:
                key = normalize_email(changes["email"])
                changes["email_key"] = key
                self._check_email_free(db, key, exclude_id=subscriber_id)

            moved = any(name != "subscriber_privacy_level_id" for name in changes)
            if interests is not None:
                before = self._top_interests(db, subscriber_id)
                self._replace_interests(db, subscriber_id, interests)
                moved = moved or before != self._top_interests(db, subscriber_id)

            if moved:
                changes["date_modified_utc"] = self._now()
            if changes:
                assignments = ", ".join(f"{name} = ?" for name in changes)
                db.execute(
                    f"UPDATE subscriber SET {assignments} WHERE id = ?",
                    (*changes.values(), subscriber_id),
                )
            row = db.execute("SELECT * FROM subscriber WHERE id = ?", (subscriber_id,)).fetchone()
        return dict(row)

    def unsubscribe(
        self, subscriber_id: int, *, source: str, self_unsubscribed: bool
    ) -> dict[str, Any]:
        """Turn a subscriber into an unsubscribe record with the same id.

        The subscriber's interests and segment memberships are deleted, and each segment it
        left gets a new ``date_modified_utc``.

        :raises CerklApiError: 409 ALREADY_UNSUBSCRIBED when the id is an unsubscribe already,
            404 SUBSCRIBER_NOT_FOUND when the id is unknown.
        """
        now = self._now()
        with self._transaction() as db:
            row = db.execute("SELECT * FROM subscriber WHERE id = ?", (subscriber_id,)).fetchone()
            if row is None:
                gone = db.execute(
                    "SELECT 1 FROM unsubscribe WHERE id = ?", (subscriber_id,)
                ).fetchone()
                if gone is not None:
                    raise CerklApiError(
                        409,
                        "ALREADY_UNSUBSCRIBED",
                        f"Subscriber {subscriber_id} is already unsubscribed.",
                    )
                raise _subscriber_not_found(subscriber_id)
            db.execute(
                "UPDATE segment SET date_modified_utc = ? WHERE id IN"
                " (SELECT segment_id FROM segment_member WHERE subscriber_id = ?)",
                (now, subscriber_id),
            )
            db.execute("DELETE FROM segment_member WHERE subscriber_id = ?", (subscriber_id,))
            db.execute("DELETE FROM interest WHERE subscriber_id = ?", (subscriber_id,))
            db.execute("DELETE FROM subscriber WHERE id = ?", (subscriber_id,))
            db.execute(
                "INSERT INTO unsubscribe (id, email, email_key, first_name, last_name,"
                " date_unsubscribed_utc, self_unsubscribed, source) VALUES (?,?,?,?,?,?,?,?)",
                (
                    subscriber_id,
                    row["email"],
                    row["email_key"],
                    row["first_name"],
                    row["last_name"],
                    now,
                    int(self_unsubscribed),
                    source,
                ),
            )
            result = db.execute(
                "SELECT * FROM unsubscribe WHERE id = ?", (subscriber_id,)
            ).fetchone()
        return dict(result)

    # Unsubscribes

    def get_unsubscribe(self, unsubscribe_id: int) -> dict[str, Any] | None:
        """Return the unsubscribe row with that id, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM unsubscribe WHERE id = ?", (unsubscribe_id,)
            ).fetchone()
        return dict(row) if row is not None else None

    def list_unsubscribes(
        self, filters: Sequence[Filter], *, offset: int, limit: int
    ) -> list[dict[str, Any]]:
        """Return one page of unsubscribes by id that match every filter."""
        return self._list("unsubscribe", filters, offset=offset, limit=limit)

    # Interests

    def list_interests(self, subscriber_id: int) -> list[dict[str, Any]]:
        """Return a subscriber's interests by rank, 1 first, with the category description.

        :raises CerklApiError: 404 SUBSCRIBER_NOT_FOUND.
        """
        with self._lock:
            if self.get_subscriber(subscriber_id) is None:
                raise _subscriber_not_found(subscriber_id)
            rows = self._db.execute(
                "SELECT interest.category_id, category.description, interest.rank,"
                " interest.score FROM interest JOIN category ON category.id ="
                " interest.category_id WHERE interest.subscriber_id = ?"
                " ORDER BY interest.rank, interest.category_id",
                (subscriber_id,),
            ).fetchall()
        return [dict(row) for row in rows]

    # Segments

    def create_segment(self, description: str, external_id: str | None) -> dict[str, Any]:
        """Create a manual segment.

        :raises CerklApiError: 409 DUPLICATE_EXTERNAL_ID when another segment has the id.
        """
        now = self._now()
        with self._transaction() as db:
            self._check_external_id_free(db, external_id, exclude_id=None)
            cursor = db.execute(
                "INSERT INTO segment (description, external_id, date_created_utc,"
                " date_modified_utc) VALUES (?, ?, ?, ?)",
                (description, external_id, now, now),
            )
            segment_id = int(cursor.lastrowid)
        return self._require_segment(segment_id)

    def get_segment(self, segment_id: int) -> dict[str, Any] | None:
        """Return the segment row with its ``subscriber_count``, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT segment.*, (SELECT COUNT(*) FROM segment_member WHERE segment_id ="
                " segment.id) AS subscriber_count FROM segment WHERE id = ?",
                (segment_id,),
            ).fetchone()
        return dict(row) if row is not None else None

    def list_segments(
        self, filters: Sequence[Filter], *, offset: int, limit: int
    ) -> list[dict[str, Any]]:
        """Return one page of segments by id that match every filter."""
        rows = self._list("segment", filters, offset=offset, limit=limit)
        with self._lock:
            for row in rows:
                row["subscriber_count"] = self._db.execute(
                    "SELECT COUNT(*) FROM segment_member WHERE segment_id = ?", (row["id"],)
                ).fetchone()[0]
        return rows

    def update_segment(self, segment_id: int, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Change a segment's ``description`` and/or ``external_id``.

        :raises CerklApiError: 404 SEGMENT_NOT_FOUND, 409 DUPLICATE_EXTERNAL_ID.
        """
        with self._transaction() as db:
            current = db.execute("SELECT * FROM segment WHERE id = ?", (segment_id,)).fetchone()
            if current is None:
                raise _segment_not_found(segment_id)
            changes = {name: value for name, value in fields.items() if current[name] != value}
            if "external_id" in changes:
                self._check_external_id_free(db, changes["external_id"], exclude_id=segment_id)
            if changes:
                changes["date_modified_utc"] = self._now()
                assignments = ", ".join(f"{name} = ?" for name in changes)
                db.execute(
                    f"UPDATE segment SET {assignments} WHERE id = ?",
                    (*changes.values(), segment_id),
                )
        return self._require_segment(segment_id)

    def list_segment_members(
        self, segment_id: int, *, offset: int, limit: int
    ) -> list[dict[str, Any]]:
        """Return one page of a segment's member subscribers by id.

        :raises CerklApiError: 404 SEGMENT_NOT_FOUND.
        """
        with self._lock:
            self._require_segment(segment_id)
            rows = self._db.execute(
                "SELECT subscriber.* FROM segment_member JOIN subscriber ON subscriber.id ="
                " segment_member.subscriber_id WHERE segment_member.segment_id = ?"
                " ORDER BY subscriber.id LIMIT ? OFFSET ?",
                (segment_id, limit, offset),
            ).fetchall()
        return [dict(row) for row in rows]

    def add_segment_member(self, segment_id: int, subscriber_id: int) -> bool:
        """Add a subscriber to a segment; return False when it was a member already.

        :raises CerklApiError: 404 SEGMENT_NOT_FOUND or SUBSCRIBER_NOT_FOUND.
        """
        with self._transaction() as db:
            self._require_segment(segment_id)
            if self.get_subscriber(subscriber_id) is None:
                raise _subscriber_not_found(subscriber_id)
            cursor = db.execute(
                "INSERT OR IGNORE INTO segment_member (segment_id, subscriber_id) VALUES (?, ?)",
                (segment_id, subscriber_id),
            )
            added = cursor.rowcount == 1
            if added:
                db.execute(
                    "UPDATE segment SET date_modified_utc = ? WHERE id = ?",
                    (self._now(), segment_id),
                )
        return added

    def remove_segment_member(self, segment_id: int, subscriber_id: int) -> None:
        """Remove a subscriber from a segment.

        :raises CerklApiError: 404 SEGMENT_NOT_FOUND, or 404 SEGMENT_MEMBER_NOT_FOUND when the
            subscriber is not a member.
        """
        with self._transaction() as db:
            self._require_segment(segment_id)
            cursor = db.execute(
                "DELETE FROM segment_member WHERE segment_id = ? AND subscriber_id = ?",
                (segment_id, subscriber_id),
            )
            if cursor.rowcount == 0:
                raise CerklApiError(
                    404,
                    "SEGMENT_MEMBER_NOT_FOUND",
                    f"Subscriber {subscriber_id} is not a member of segment {segment_id}.",
                )
            db.execute(
                "UPDATE segment SET date_modified_utc = ? WHERE id = ?", (self._now(), segment_id)
            )

    # Helpers

    def _list(
        self, table: str, filters: Sequence[Filter], *, offset: int, limit: int
    ) -> list[dict[str, Any]]:
        clauses = []
        params: list[Any] = []
        for condition in filters:
            column = "email_key" if condition.field == "email" else condition.field
            value = (
                normalize_email(condition.value) if condition.field == "email" else condition.value
            )
            clauses.append(f"{column} {FILTER_OPERATORS[condition.operator]} ?")
            params.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM {table}{where} ORDER BY id LIMIT ? OFFSET ?",
                (*params, limit, offset),
            ).fetchall()
        return [dict(row) for row in rows]

    def _next_subscriber_id(self, db: sqlite3.Connection) -> int:
        row = db.execute(
            "SELECT MAX(COALESCE((SELECT MAX(id) FROM subscriber), 0),"
            " COALESCE((SELECT MAX(id) FROM unsubscribe), 0))"
        ).fetchone()
        return int(row[0]) + 1

    def _check_email_free(
        self, db: sqlite3.Connection, key: str, *, exclude_id: int | None
    ) -> None:
        owner = db.execute("SELECT id FROM subscriber WHERE email_key = ?", (key,)).fetchone()
        if owner is not None and owner["id"] != exclude_id:
            raise CerklApiError(
                409,
                "DUPLICATE_EMAIL",
                f"The email is already in use by subscriber {owner['id']}.",
            )
        self_unsubscribe = db.execute(
            "SELECT id FROM unsubscribe WHERE email_key = ? AND self_unsubscribed = 1", (key,)
        ).fetchone()
        if self_unsubscribe is not None:
            raise CerklApiError(
                409,
                "SELF_UNSUBSCRIBED",
                f"The email unsubscribed itself (unsubscribe {self_unsubscribe['id']}) and"
                " cannot be subscribed again through the API.",
            )

    def _check_external_id_free(
        self, db: sqlite3.Connection, external_id: str | None, *, exclude_id: int | None
    ) -> None:
        if external_id is None:
            return
        owner = db.execute(
            "SELECT id FROM segment WHERE external_id = ?", (external_id,)
        ).fetchone()
        if owner is not None and owner["id"] != exclude_id:
            raise CerklApiError(
                409,
                "DUPLICATE_EXTERNAL_ID",
                f"Segment {owner['id']} already has external_id {external_id!r}.",
            )

    def _require_segment(self, segment_id: int) -> dict[str, Any]:
        segment = self.get_segment(segment_id)
        if segment is None:
            raise _segment_not_found(segment_id)
        return segment

    def _top_interests(self, db: sqlite3.Connection, subscriber_id: int) -> list[int]:
        rows = db.execute(
            "SELECT category_id FROM interest WHERE subscriber_id = ?"
            " ORDER BY rank, category_id LIMIT ?",
            (subscriber_id, TOP_INTEREST_RANKS),
        ).fetchall()
        return [int(row[0]) for row in rows]

    def _replace_interests(
        self, db: sqlite3.Connection, subscriber_id: int, interests: Sequence[Mapping[str, Any]]
    ) -> None:
        known = {int(row[0]) for row in db.execute("SELECT id FROM category").fetchall()}
        for interest in interests:
            if int(interest["category_id"]) not in known:
                raise CerklApiError(
                    422,
                    "CATEGORY_NOT_FOUND",
                    f"Category {interest['category_id']} does not exist; seed it first.",
                )
        db.execute("DELETE FROM interest WHERE subscriber_id = ?", (subscriber_id,))
        db.executemany(
            "INSERT INTO interest (subscriber_id, category_id, rank, score) VALUES (?, ?, ?, ?)",
            [
                (
                    subscriber_id,
                    int(interest["category_id"]),
                    int(interest["rank"]),
                    interest.get("score", 0),
                )
                for interest in interests
            ],
        )


class _Transaction:
    """Hold the store lock and run the block in one SQLite transaction."""

    def __init__(self, db: sqlite3.Connection, lock: threading.RLock) -> None:
        self._db = db
        self._lock = lock

    def __enter__(self) -> sqlite3.Connection:
        self._lock.acquire()
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        try:
            if exc_type is None:
                self._db.execute("COMMIT")
            else:
                self._db.execute("ROLLBACK")
        finally:
            self._lock.release()


def _subscriber_not_found(subscriber_id: int) -> CerklApiError:
    return CerklApiError(404, "SUBSCRIBER_NOT_FOUND", f"Subscriber {subscriber_id} not found.")


def _segment_not_found(segment_id: int) -> CerklApiError:
    return CerklApiError(404, "SEGMENT_NOT_FOUND", f"Segment {segment_id} not found.")
