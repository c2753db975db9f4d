"""Salesforce writes gathered across a task's batches on disk, and sent as one call.

A Bulk API 2.0 job costs about the same few calls for 1,000 records as for 50,000. A task
that wrote each batch of ``batch_size`` records at once would start one job per batch. So a
:class:`WriteSpool` keeps the rows in a temporary file until the task has planned every
batch, and the task sends one job per kind of write. Each row is stored with its context:
the bookkeeping that its outcome settles (a link to save, a record to quarantine). Contexts
are read back from the file a chunk at a time, so memory contains at most ``max_rows`` rows
and never a whole task's contexts.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from include.cerkl_sync.salesforce_io.bulk import match_key

if TYPE_CHECKING:
    from include.cerkl_sync.salesforce_io import SalesforceClient, WriteResult

log = logging.getLogger(__name__)

#: Rows a spool contains before it is flushed. One Bulk API 2.0 job carries them all. 50,000
#: Contact rows of 8 fields peaked at 71 MB of Python memory while encoded as CSV (measured
#: with tracemalloc), which bounds a task's memory however large the org.
WRITE_SPOOL_ROWS = 50_000
#: Outcomes passed to ``settle`` at a time.
SETTLE_CHUNK_ROWS = 2_000

Settle = Callable[[Sequence[tuple[Any, "WriteResult"]]], None]


class WriteSpool:
    """Rows of one kind of Salesforce write, with their contexts, sent together.

    Rows whose key (``Id`` for update, the external Id for upsert) repeats are merged into
    one row, later fields over earlier ones, because a Bulk API 2.0 job accepts each key
    once. Every context of a merged row gets that row's outcome.

    Used as a context manager, the spool sends its rows when the block ends. When the
    block raises, nothing more is sent, as when a task is killed: the task's retry plans the
    same work again, and every write the sync repeats is idempotent.

    :param salesforce: the client that sends the rows.
    :param operation: ``update`` or ``upsert``.
    :param sobject: the sObject API name.
    :param settle: called with ``(context, WriteResult)`` pairs, in the order the rows
        were added, at most ``chunk_rows`` at a time, after each send.
    :param key_field: the external Id field of an upsert; ``Id`` for an update.
    :param guard: returns a context manager held while rows are sent and settled, such as
        the state DB's link lock.
    :param max_rows: rows after which :attr:`full` is true. The caller sends them with
        :meth:`flush`, outside any lock it holds that ``guard`` takes too.
    """

    def __init__(
        self,
        salesforce: SalesforceClient,
        operation: str,
        sobject: str,
        *,
        settle: Settle,
        key_field: str = "Id",
        guard: Callable[[], AbstractContextManager[Any]] | None = None,
        max_rows: int = WRITE_SPOOL_ROWS,
        chunk_rows: int = SETTLE_CHUNK_ROWS,
    ) -> None:
        if operation not in ("update", "upsert"):
            raise ValueError(f"invalid operation {operation!r}: use 'update' or 'upsert'")
        if operation == "update" and key_field != "Id":
            raise ValueError(f"an update matches rows on Id, not on {key_field!r}")
        if max_rows < 1 or chunk_rows < 1:
            raise ValueError(
                f"invalid max_rows={max_rows!r} or chunk_rows={chunk_rows!r}: both must be positive"
            )
        self._salesforce = salesforce
        self._operation = operation
        self._sobject = sobject
        self._settle = settle
        self._key_field = key_field
        self._guard = guard or nullcontext
        self._max_rows = max_rows
        self._chunk_rows = chunk_rows
        self._file = tempfile.TemporaryFile(prefix="cerkl-sync-writes-")
        self._count = 0
        self.sends = 0

    def __len__(self) -> int:
        return self._count

    @property
    def full(self) -> bool:
        """Whether the spool contains ``max_rows`` rows or more, and should be flushed."""
        return self._count >= self._max_rows

    def add(self, row: dict[str, Any], context: Any = None) -> None:
        """Keep one row and its context until the next :meth:`flush`.

        :param row: the field values by API name, JSON-serializable.
        :param context: what ``settle`` needs for this row's outcome, JSON-serializable.
        :raises ValueError: when the row lacks its key.
        :raises TypeError: when the row or the context is not JSON-serializable.
        """
        key = row.get(self._key_field)
        if key in (None, ""):
            raise ValueError(
                f"row {self._count} of the {self._operation} of {self._sobject} has no "
                f"{self._key_field} value"
            )
        self._file.write(json.dumps([row, context], separators=(",", ":")).encode("utf-8"))
        self._file.write(b"\n")
        self._count += 1

    def flush(self) -> None:
        """Send the rows held, settle their outcomes, and empty the spool.

        :raises SalesforceSyncError: as the client's write raises. The rows stay in the
            spool, unsettled.
        """
        if not self._count:
            return
        with self._guard():
            rows, positions = self._merged_rows()
            log.info(
                "Sending %d %s %s rows (%d added)",
                len(rows),
                self._sobject,
                self._operation,
                self._count,
            )
            if self._operation == "update":
                results = self._salesforce.update(self._sobject, rows)
            else:
                results = self._salesforce.upsert(self._sobject, self._key_field, rows)
            del rows
            self.sends += 1
            chunk: list[tuple[Any, WriteResult]] = []
            for context, position in zip(self._contexts(), positions, strict=True):
                chunk.append((context, results[position]))
                if len(chunk) >= self._chunk_rows:
                    self._settle(chunk)
                    chunk = []
            if chunk:
                self._settle(chunk)
        self._file.seek(0)
        self._file.truncate()
        self._count = 0

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> WriteSpool:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                self.flush()
            elif self._count:
                log.warning(
                    "%d %s %s rows were not sent because the step failed (%s). Its retry "
                    "plans them again",
                    self._count,
                    self._sobject,
                    self._operation,
                    exc_type.__name__,
                )
        finally:
            self.close()

    def _lines(self) -> Iterator[list[Any]]:
        self._file.seek(0)
        for line in self._file:
            yield json.loads(line)

    def _merged_rows(self) -> tuple[list[dict[str, Any]], list[int]]:
        """Return the rows to send, one per key, and each added row's position among them."""
        rows: list[dict[str, Any]] = []
        positions: list[int] = []
        by_key: dict[str, int] = {}
        for row, _context in self._lines():
            key = match_key(self._operation, str(row[self._key_field]))
            position = by_key.get(key)
            if position is None:
                position = by_key[key] = len(rows)
                rows.append(row)
            else:
                rows[position].update(row)
            positions.append(position)
        return rows, positions

    def _contexts(self) -> Iterator[Any]:
        for _row, context in self._lines():
            yield context
