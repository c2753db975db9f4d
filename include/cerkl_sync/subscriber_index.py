"""A disk-backed index of the Cerkl subscribers a step has read, by id and by email.

Planning Contact changes needs, for each Contact batch, the changed subscribers of the
batch's links and those whose emails match its unlinked Contacts. In a full sync the changed
subscribers are every subscriber in Cerkl, and a dict of them grows with the audience. The
index keeps them in a SQLite file in a temporary folder instead, and each batch reads back only
the records it requests, so the step's memory follows the batch size and not the audience.

The standard library's ``sqlite3`` is used because the index must return records by id and
by email without loading every row, which a pandas DataFrame would do.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from include.cerkl_sync.records import normalize_email

# Keys per IN list: below SQLite's default limit of 999 host parameters before 3.32.
_CHUNK = 500
_INSERT_CHUNK = 5_000


def _chunks(values: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


class SubscriberIndex:
    """Subscriber records by id, each marked as read in the window or later.

    A record added with ``in_window=True`` came from the window's extract. A record added
    later with ``in_window=False`` replaces the stored fields of the same id but keeps its
    ``in_window`` mark, and is found by :meth:`by_emails` but not by :meth:`get_in_window`
    unless the extract had it too. The index file is deleted by :meth:`close`.

    :param directory: folder for the temporary index folder; the system's default by default.
    """

    def __init__(self, directory: str | Path | None = None) -> None:
        self._folder = Path(tempfile.mkdtemp(prefix="cerkl-subscribers-", dir=directory))
        self._db = sqlite3.connect(self._folder / "index.sqlite3")
        # The file is scratch space that is deleted at the end, so it needs no journal.
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.execute(
            "CREATE TABLE subscriber ("
            " id INTEGER PRIMARY KEY,"
            " email TEXT,"
            " record TEXT NOT NULL,"
            " in_window INTEGER NOT NULL,"
            " unsubscribed INTEGER NOT NULL DEFAULT 0)"
        )
        self._db.execute("CREATE INDEX subscriber_email ON subscriber (email)")

    def __enter__(self) -> SubscriberIndex:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the index and delete its file."""
        self._db.close()
        shutil.rmtree(self._folder, ignore_errors=True)

    def add(self, records: Iterable[Mapping[str, Any]], *, in_window: bool) -> int:
        """Store records, replacing the fields of ids already stored.

        :param records: subscriber records with ``id`` and ``email``.
        :param in_window: whether the records came from the window's extract.
        :return: the number of records stored.
        """
        statement = (
            "INSERT INTO subscriber (id, email, record, in_window) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET email = excluded.email, record = excluded.record"
        )
        stored = 0
        batch: list[tuple[int, str | None, str, int]] = []
        for record in records:
            batch.append(
                (
                    int(record["id"]),
                    normalize_email(record.get("email")),
                    json.dumps(record, default=str),
                    int(in_window),
                )
            )
            if len(batch) >= _INSERT_CHUNK:
                self._db.executemany(statement, batch)
                stored += len(batch)
                batch = []
        if batch:
            self._db.executemany(statement, batch)
            stored += len(batch)
        self._db.commit()
        return stored

    def mark_unsubscribed(self, ids: Iterable[int]) -> None:
        """Leave these ids out of :meth:`by_emails`: Cerkl has turned them into unsubscribes."""
        for chunk in _chunks(sorted({int(i) for i in ids}), _CHUNK):
            marks = ",".join("?" * len(chunk))
            self._db.execute(f"UPDATE subscriber SET unsubscribed = 1 WHERE id IN ({marks})", chunk)
        self._db.commit()

    def count_in_window(self) -> int:
        """Return the number of records that came from the window's extract."""
        return self._db.execute("SELECT COUNT(*) FROM subscriber WHERE in_window = 1").fetchone()[0]

    def get_in_window(self, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        """Return the stored records of these ids that the window's extract had, by id."""
        found: dict[int, dict[str, Any]] = {}
        for chunk in _chunks(sorted({int(i) for i in ids}), _CHUNK):
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT id, record FROM subscriber WHERE in_window = 1 AND id IN ({marks})",
                chunk,
            )
            found.update((row[0], json.loads(row[1])) for row in rows)
        return found

    def by_emails(self, keys: Iterable[str]) -> tuple[dict[str, dict[str, Any]], set[str]]:
        """Return the subscriber of each normalized email, and the emails of several subscribers.

        Records marked unsubscribed are left out. For an email of several subscribers the
        record returned is the one with the highest id.

        :return: records by email, and the set of emails that more than one subscriber has.
        """
        found: dict[str, dict[str, Any]] = {}
        shared: set[str] = set()
        for chunk in _chunks(sorted(set(keys)), _CHUNK):
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                "SELECT email, record FROM subscriber "
                f"WHERE unsubscribed = 0 AND email IN ({marks}) ORDER BY id",
                chunk,
            )
            for email, record in rows:
                if email in found:
                    shared.add(email)
                found[email] = json.loads(record)
        return found, shared
