"""The sync-state store: windows, Contact-subscriber links, segment links, open work and the
link lock, kept in a SQL database separate from Airflow's metadata DB.

SQLite serves tests and the demo, PostgreSQL serves production. Several tasks of one DAG run
use the store at once, from threads and processes, so writes run in short transactions. On
SQLite the store turns on WAL, sets a busy timeout and opens every write transaction with
``BEGIN IMMEDIATE``. A writer therefore waits for the database lock up front. Without it, a
read transaction that tries to become a write transaction fails at once.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, case, delete, func, inspect, or_, select, text, true
from sqlalchemy import update as sql_update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import InterfaceError as SQLAlchemyInterfaceError
from sqlalchemy.exc import OperationalError

from include.cerkl_sync.state.engine import WRITE_OPTION, create_state_engine, redact_url
from include.cerkl_sync.state.entities import (
    WORK_ITEM_KINDS,
    Link,
    SegmentLink,
    WorkItem,
    check_aware,
    check_flow,
    check_kind,
    check_link,
    check_positive_int,
    check_salesforce_id,
    check_subscriber_id,
    check_text,
    truncate_reason,
    value_digest,
)
from include.cerkl_sync.state.errors import (
    StateSchemaOutdatedError,
    StateStoreError,
    StateStoreUnavailableError,
)
from include.cerkl_sync.state.models import (
    LOCK_OWNER_MAX_LENGTH,
    RECORD_ID_MAX_LENGTH,
    RECORD_TYPE_MAX_LENGTH,
    CampaignSegmentLink,
    ContactLink,
    SyncLock,
    SyncWindow,
    WorkItemRow,
)

# Names that callers import from this module, re-exported from where they live.
__all__ = [
    "WORK_ITEM_KINDS",
    "Link",
    "SegmentLink",
    "StateSchemaOutdatedError",
    "StateStoreError",
    "StateStoreUnavailableError",
    "SyncStateStore",
    "WorkItem",
    "create_state_engine",
    "redact_url",
    "value_digest",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_CONN_ID = "cerkl_sync_state"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
MIGRATE_COMMAND = "python -m include.cerkl_sync.state migrate"
ALEMBIC_VERSION_TABLE = "alembic_version"
# Newest revision in migrations/versions. check() compares with it before it loads Alembic,
# which logs several INFO lines on import. test_schema_revision_is_head keeps the two equal.
SCHEMA_REVISION = "0001"

# Number of ids per SQL IN (...) list and per write transaction of a bulk save.
ID_CHUNK_SIZE = 500

LINK_LOCK_NAME = "link"
# Fixed key of the PostgreSQL advisory lock behind link_lock.
LINK_LOCK_ADVISORY_KEY = 7_302_914_556_002
# Fixed key of the PostgreSQL transaction lock that serializes writes to contact_link. It
# differs from LINK_LOCK_ADVISORY_KEY, so a link_lock holder can still write links.
LINK_WRITE_ADVISORY_KEY = 7_302_914_556_003
# A SQLite lock row expires this many seconds after its last renewal, so a crashed holder
# frees the lock. The holder renews it every LOCK_RENEW_SECONDS.
LOCK_LEASE_SECONDS = 60.0
LOCK_RENEW_SECONDS = 15.0
LOCK_POLL_SECONDS = 0.2

_CONNECTION_JSON_EXAMPLE = (
    '{"conn_type": "generic", "extra": {"url": "postgresql+psycopg2://user@host:5432/cerkl_sync"}}'
)


class SyncStateStore:
    """Read and write the sync state in a SQLAlchemy database.

    One instance may be shared by threads. A forked child process gets a fresh connection
    pool on first use. Every method except ``check`` and ``migrate`` calls ``check`` once per
    instance before its first query, so an unreachable or unmigrated database raises
    ``StateStoreUnavailableError`` or ``StateSchemaOutdatedError``.

    :param url: SQLAlchemy URL of the state DB.
    :param echo: log every SQL statement.
    """

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self._engine = create_state_engine(url, echo=echo)
        self._dialect = self._engine.dialect.name
        self._pid = os.getpid()
        self._ready = False
        self._ready_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SyncStateStore({redact_url(self.url)!r})"

    @classmethod
    def from_connection(cls, conn_id: str = DEFAULT_CONN_ID) -> SyncStateStore:
        """Create a store from an Airflow connection whose extra ``url`` is the SQLAlchemy URL.

        :param conn_id: Airflow connection id.
        :raises StateStoreError: if the connection does not exist or has no ``url`` extra.
        """
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        env_name = f"AIRFLOW_CONN_{conn_id.upper()}"
        try:
            connection = BaseHook.get_connection(conn_id)
        except AirflowNotFoundException:
            raise StateStoreError(
                f"Airflow connection {conn_id!r} not found. Create it with the state DB URL in "
                f"its extra, for example {env_name}='{_CONNECTION_JSON_EXAMPLE}'."
            ) from None

        url = connection.extra_dejson.get("url")
        if not isinstance(url, str) or not url.strip():
            raise StateStoreError(
                f"Airflow connection {conn_id!r} has no 'url' in its extra. Set the extra to the "
                f"state DB's SQLAlchemy URL, for example {env_name}='{_CONNECTION_JSON_EXAMPLE}'."
            )
        return cls(url.strip())

    def dispose(self) -> None:
        """Close the pooled connections. The store reconnects on its next call."""
        self._engine.dispose()

    # -- connections and schema ---------------------------------------------------------------

    def _connect(self) -> Connection:
        if os.getpid() != self._pid:
            # Connections inherited through fork belong to the parent process.
            self._engine.dispose(close=False)
            self._pid = os.getpid()
        try:
            return self._engine.connect()
        except (OperationalError, SQLAlchemyInterfaceError) as exc:
            cause = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise StateStoreUnavailableError(
                f"Cannot connect to the state DB at {redact_url(self.url)}: {cause}. Check that "
                f"the database server is running and that the URL (the 'url' extra of the "
                f"Airflow connection {DEFAULT_CONN_ID!r}, or --url) is right."
            ) from None

    @contextmanager
    def _transaction(self, *, write: bool) -> Generator[Connection]:
        self._ensure_ready()
        with self._connect() as connection:
            if write:
                connection.execution_options(**{WRITE_OPTION: True})
            with connection.begin():
                yield connection

    def _ensure_ready(self) -> None:
        if self._ready:
            return
        with self._ready_lock:
            if not self._ready:
                self.check()
                self._ready = True

    def _alembic_config(self) -> Any:
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        return config

    def _current_revision(self, connection: Connection) -> str | None:
        # Reads Alembic's version table directly. Alembic's MigrationContext would do the
        # same but logs two INFO lines on every task's first call.
        if not inspect(connection).has_table(ALEMBIC_VERSION_TABLE):
            return None
        return connection.scalar(text(f"SELECT version_num FROM {ALEMBIC_VERSION_TABLE}"))

    def check(self) -> None:
        """Check that the state DB is reachable and migrated to the newest revision.

        :raises StateStoreUnavailableError: if it cannot be reached. The message names the URL
            without its password.
        :raises StateSchemaOutdatedError: if it is not at the newest revision.
        """
        with self._connect() as connection:
            try:
                current = self._current_revision(connection)
            except OperationalError as exc:
                cause = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
                raise StateStoreUnavailableError(
                    f"Cannot read the state DB at {redact_url(self.url)}: {cause}. Check that the "
                    "URL names a database file or server that this process can open."
                ) from None

        if current == SCHEMA_REVISION:
            return

        from alembic.script import ScriptDirectory

        script = ScriptDirectory.from_config(self._alembic_config())
        head = script.get_current_head()
        if current == head:
            return
        known = {revision.revision for revision in script.walk_revisions()}
        if current is not None and current not in known:
            raise StateSchemaOutdatedError(
                f"The state DB at {redact_url(self.url)} is at revision {current}, which this "
                f"code does not know (newest known: {head}). Deploy the code that created it."
            )
        raise StateSchemaOutdatedError(
            f"The state DB at {redact_url(self.url)} is at revision {current or 'none (empty)'}, "
            f"not {head}. Run `{MIGRATE_COMMAND}`."
        )

    def migrate(self) -> str:
        """Upgrade the state DB to the newest revision (Alembic ``upgrade head``).

        Safe to run from several processes at once: SQLite serializes the transactions and
        PostgreSQL takes an advisory lock first.

        :return: the revision the database is at afterwards.
        :raises StateStoreUnavailableError: if the state DB cannot be reached.
        """
        from alembic import command

        config = self._alembic_config()
        with self._connect() as connection:
            connection.execution_options(**{WRITE_OPTION: True})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            revision = self._current_revision(connection)
            connection.rollback()
        log.info("State DB at %s migrated to revision %s", redact_url(self.url), revision)
        self._ready = False
        return revision or ""

    def current_revision(self) -> str | None:
        """Return the Alembic revision of the state DB, or None if it was never migrated."""
        with self._connect() as connection:
            return self._current_revision(connection)

    def _now(self) -> datetime:
        return datetime.now(UTC)

    def _insert(self, table: Any) -> Any:
        if self._dialect == "postgresql":
            return postgresql.insert(table)
        if self._dialect == "sqlite":
            return sqlite.insert(table)
        raise StateStoreError(
            f"The state DB dialect {self._dialect!r} is not supported. Use SQLite or PostgreSQL."
        )

    # -- windows ------------------------------------------------------------------------------

    def get_window_end(self, flow: str) -> datetime | None:
        """Return the end of the last completed window of ``flow``, or None if none completed.

        :param flow: flow name, for example ``contacts_to_cerkl``.
        """
        check_flow(flow)
        with self._transaction(write=False) as connection:
            return connection.scalar(select(SyncWindow.window_end).where(SyncWindow.flow == flow))

    def complete_window(self, flow: str, window_end: datetime) -> None:
        """Record that ``flow`` completed the window that ends at ``window_end``.

        The stored end never moves backwards: an end earlier than or equal to the stored one
        is ignored (logged at INFO), which is what a rerun of an older DAG run needs.

        :param flow: flow name.
        :param window_end: aware datetime.
        :raises ValueError: if ``window_end`` is naive.
        """
        check_flow(flow)
        check_aware(window_end, "window_end")
        now = self._now()
        table = SyncWindow.__table__
        statement = self._insert(table).values(flow=flow, window_end=window_end, updated_at=now)
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.flow],
            set_={"window_end": statement.excluded.window_end, "updated_at": now},
            where=table.c.window_end < statement.excluded.window_end,
        )
        with self._transaction(write=True) as connection:
            result = connection.execute(statement)
        if result.rowcount == 0:
            log.info("Window end of flow %s not moved back to %s", flow, window_end.isoformat())
        else:
            log.info("Window end of flow %s is now %s", flow, window_end.isoformat())

    # -- links --------------------------------------------------------------------------------

    def get_links_by_contact(self, contact_ids: Iterable[str]) -> dict[str, Link]:
        """Return the links of the given Contacts, keyed by Contact Id. Unlinked ids are absent."""
        ids = _unique([check_salesforce_id(value, "contact_id") for value in contact_ids])
        links: dict[str, Link] = {}
        for chunk in _chunks(ids, ID_CHUNK_SIZE):
            with self._transaction(write=False) as connection:
                rows = connection.execute(
                    select(ContactLink.__table__).where(ContactLink.contact_id.in_(chunk))
                )
                for row in rows:
                    links[row.contact_id] = _link_from_row(row)
        return links

    def get_links_by_subscriber(self, subscriber_ids: Iterable[int]) -> dict[int, Link]:
        """Return the links of the given subscribers, keyed by subscriber id."""
        ids = _unique([check_subscriber_id(value) for value in subscriber_ids])
        links: dict[int, Link] = {}
        for chunk in _chunks(ids, ID_CHUNK_SIZE):
            with self._transaction(write=False) as connection:
                rows = connection.execute(
                    select(ContactLink.__table__).where(ContactLink.subscriber_id.in_(chunk))
                )
                for row in rows:
                    links[row.subscriber_id] = _link_from_row(row)
        return links

    def save_links(self, links: Iterable[Link]) -> None:
        """Insert or replace links, keeping them one-to-one in both directions.

        A link replaces the stored link of its Contact and the stored link of its subscriber.
        When the input itself links one Contact or subscriber twice, the later link wins.
        Every replaced link is logged with its ids. Links are written in transactions of up to
        ``ID_CHUNK_SIZE``.

        :raises ValueError: for an invalid id, a naive timestamp or a synced value that is not
            a ``value_digest``.
        """
        by_contact: dict[str, Link] = {}
        contact_by_subscriber: dict[int, str] = {}
        for link in links:
            check_link(link)
            previous_contact = contact_by_subscriber.get(link.subscriber_id)
            if previous_contact is not None and previous_contact != link.contact_id:
                del by_contact[previous_contact]
            previous_link = by_contact.get(link.contact_id)
            if previous_link is not None:
                contact_by_subscriber.pop(previous_link.subscriber_id, None)
            by_contact[link.contact_id] = link
            contact_by_subscriber[link.subscriber_id] = link.contact_id

        for chunk in _chunks(list(by_contact.values()), ID_CHUNK_SIZE):
            self._save_link_chunk(chunk)

    def _save_link_chunk(self, chunk: Sequence[Link]) -> None:
        table = ContactLink.__table__
        contact_ids = [link.contact_id for link in chunk]
        subscriber_ids = [link.subscriber_id for link in chunk]
        now = self._now()
        with self._transaction(write=True) as connection:
            self._serialize_link_writes(connection)
            existing = connection.execute(
                select(table.c.contact_id, table.c.subscriber_id).where(
                    or_(
                        table.c.contact_id.in_(contact_ids),
                        table.c.subscriber_id.in_(subscriber_ids),
                    )
                )
            ).all()
            stored_subscriber = {row.contact_id: row.subscriber_id for row in existing}
            stored_contact = {row.subscriber_id: row.contact_id for row in existing}
            for link in chunk:
                old_subscriber = stored_subscriber.get(link.contact_id)
                if old_subscriber is not None and old_subscriber != link.subscriber_id:
                    log.warning(
                        "Contact %s re-linked from subscriber %s to %s",
                        link.contact_id,
                        old_subscriber,
                        link.subscriber_id,
                    )
                old_contact = stored_contact.get(link.subscriber_id)
                if old_contact is not None and old_contact != link.contact_id:
                    log.warning(
                        "Subscriber %s re-linked from contact %s to %s",
                        link.subscriber_id,
                        old_contact,
                        link.contact_id,
                    )

            connection.execute(
                delete(table).where(
                    or_(
                        table.c.contact_id.in_(contact_ids),
                        table.c.subscriber_id.in_(subscriber_ids),
                    )
                )
            )
            connection.execute(
                table.insert(),
                [
                    {
                        "contact_id": link.contact_id,
                        "subscriber_id": link.subscriber_id,
                        "synced_values": dict(link.synced_values),
                        "salesforce_seen_at": link.salesforce_seen_at,
                        "cerkl_seen_at": link.cerkl_seen_at,
                        "updated_at": now,
                    }
                    for link in chunk
                ],
            )
        log.debug("Saved %d links", len(chunk))

    def _serialize_link_writes(self, connection: Connection) -> None:
        # SQLite serializes write transactions through BEGIN IMMEDIATE. PostgreSQL at READ
        # COMMITTED does not: two transactions that delete and re-insert the same link would
        # both insert it, and the second would fail with a unique violation. This lock is
        # released when the transaction ends.
        if self._dialect == "postgresql":
            connection.execute(select(func.pg_advisory_xact_lock(LINK_WRITE_ADVISORY_KEY)))

    def delete_links(self, contact_ids: Iterable[str]) -> int:
        """Delete the links of the given Contacts.

        :return: the number of links deleted.
        """
        ids = _unique([check_salesforce_id(value, "contact_id") for value in contact_ids])
        deleted = 0
        for chunk in _chunks(ids, ID_CHUNK_SIZE):
            with self._transaction(write=True) as connection:
                result = connection.execute(
                    delete(ContactLink.__table__).where(ContactLink.contact_id.in_(chunk))
                )
                deleted += result.rowcount
        if deleted:
            log.info("Deleted %d links", deleted)
        return deleted

    def move_link(self, from_contact_id: str, to_contact_id: str) -> Link | None:
        """Move the link of a Contact that was merged away to the Contact that survived.

        If ``to_contact_id`` already has a link, that link stays and the link of
        ``from_contact_id`` is deleted. Both subscriber ids are logged. The caller decides
        what happens to the subscriber that lost its link.

        :param from_contact_id: Id of the Contact that was merged away.
        :param to_contact_id: Id of the surviving (master) Contact.
        :return: the link ``to_contact_id`` has afterwards, or None if ``from_contact_id`` had
            no link (nothing changes then).
        """
        check_salesforce_id(from_contact_id, "from_contact_id")
        check_salesforce_id(to_contact_id, "to_contact_id")
        table = ContactLink.__table__
        if from_contact_id == to_contact_id:
            return self.get_links_by_contact([to_contact_id]).get(to_contact_id)

        with self._transaction(write=True) as connection:
            self._serialize_link_writes(connection)
            rows = {
                row.contact_id: row
                for row in connection.execute(
                    select(table).where(table.c.contact_id.in_([from_contact_id, to_contact_id]))
                )
            }
            source = rows.get(from_contact_id)
            target = rows.get(to_contact_id)
            if source is None:
                return None
            if target is not None:
                connection.execute(delete(table).where(table.c.contact_id == from_contact_id))
                log.warning(
                    "Contact %s merged into %s, which keeps subscriber %s. Subscriber %s lost "
                    "its link",
                    from_contact_id,
                    to_contact_id,
                    target.subscriber_id,
                    source.subscriber_id,
                )
                return _link_from_row(target)
            connection.execute(
                sql_update(table)
                .where(table.c.contact_id == from_contact_id)
                .values(contact_id=to_contact_id, updated_at=self._now())
            )
        log.info(
            "Moved the link of subscriber %s from contact %s to %s",
            source.subscriber_id,
            from_contact_id,
            to_contact_id,
        )
        moved = _link_from_row(source)
        moved.contact_id = to_contact_id
        return moved

    def iter_links(self, batch_size: int = 10_000) -> Iterator[list[Link]]:
        """Yield every link in batches ordered by Contact Id.

        Each batch is read in its own transaction (keyset pagination), so links saved while
        the iteration runs may or may not appear.

        :param batch_size: links per batch, at least 1.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        table = ContactLink.__table__
        last_contact_id: str | None = None
        while True:
            statement = select(table).order_by(table.c.contact_id).limit(batch_size)
            if last_contact_id is not None:
                statement = statement.where(table.c.contact_id > last_contact_id)
            with self._transaction(write=False) as connection:
                batch = [_link_from_row(row) for row in connection.execute(statement)]
            if not batch:
                return
            yield batch
            if len(batch) < batch_size:
                return
            last_contact_id = batch[-1].contact_id

    def count_links(self) -> int:
        """Return the number of links."""
        with self._transaction(write=False) as connection:
            return int(connection.scalar(select(func.count()).select_from(ContactLink)) or 0)

    # -- campaign -> segment ------------------------------------------------------------------

    def get_segment_links(
        self, campaign_ids: Iterable[str] | None = None
    ) -> dict[str, SegmentLink]:
        """Return segment links keyed by Campaign Id: all of them, or those of ``campaign_ids``."""
        table = CampaignSegmentLink.__table__
        statements = []
        if campaign_ids is None:
            statements.append(select(table))
        else:
            ids = _unique([check_salesforce_id(value, "campaign_id") for value in campaign_ids])
            statements = [
                select(table).where(table.c.campaign_id.in_(c)) for c in _chunks(ids, ID_CHUNK_SIZE)
            ]

        links: dict[str, SegmentLink] = {}
        for statement in statements:
            with self._transaction(write=False) as connection:
                for row in connection.execute(statement):
                    links[row.campaign_id] = SegmentLink(
                        campaign_id=row.campaign_id,
                        segment_id=int(row.segment_id),
                        in_scope=bool(row.in_scope),
                    )
        return links

    def save_segment_link(self, link: SegmentLink) -> None:
        """Insert or replace the segment link of ``link.campaign_id``."""
        check_salesforce_id(link.campaign_id, "campaign_id")
        check_positive_int(link.segment_id, "segment_id")
        if not isinstance(link.in_scope, bool):
            raise ValueError(f"in_scope must be a bool, got {link.in_scope!r}.")
        table = CampaignSegmentLink.__table__
        now = self._now()
        statement = self._insert(table).values(
            campaign_id=link.campaign_id,
            segment_id=link.segment_id,
            in_scope=link.in_scope,
            updated_at=now,
        )
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.campaign_id],
            set_={
                "segment_id": statement.excluded.segment_id,
                "in_scope": statement.excluded.in_scope,
                "updated_at": now,
            },
        )
        with self._transaction(write=True) as connection:
            connection.execute(statement)
        log.info(
            "Campaign %s linked to segment %s (in scope: %s)",
            link.campaign_id,
            link.segment_id,
            link.in_scope,
        )

    # -- open work ----------------------------------------------------------------------------

    def add_work_items(self, flow: str, kind: str, items: Iterable[tuple[str, str, str]]) -> None:
        """Add or refresh open work items of ``flow``.

        A record (``flow``, ``record_type``, ``record_id``) has at most one open item. Adding
        it again adds 1 to ``attempts`` and replaces ``reason`` and ``last_seen``. An item
        moves from pending to quarantined when added as quarantined, but a quarantined item
        stays quarantined until ``requeue_work_items`` moves it back. If ``items`` names a
        record twice, it counts once and the last reason wins.

        :param flow: flow name.
        :param kind: ``pending`` or ``quarantined``.
        :param items: ``(record_type, record_id, reason)`` tuples. Reasons are codes or short
            texts without personal data. Reasons longer than 500 characters are truncated.
        :raises ValueError: for an unknown kind or an empty or too long record type or id.
        """
        check_flow(flow)
        check_kind(kind)
        latest: dict[tuple[str, str], str] = {}
        for record_type, record_id, reason in items:
            check_text(record_type, "record_type", RECORD_TYPE_MAX_LENGTH)
            check_text(record_id, "record_id", RECORD_ID_MAX_LENGTH)
            latest[(record_type, record_id)] = truncate_reason(reason)
        if not latest:
            return

        table = WorkItemRow.__table__
        now = self._now()
        rows = [
            {
                "flow": flow,
                "kind": kind,
                "record_type": record_type,
                "record_id": record_id,
                "reason": reason,
                "attempts": 1,
                "first_seen": now,
                "last_seen": now,
            }
            for (record_type, record_id), reason in latest.items()
        ]
        for chunk in _chunks(rows, ID_CHUNK_SIZE):
            statement = self._insert(table)
            statement = statement.on_conflict_do_update(
                index_elements=[table.c.flow, table.c.record_type, table.c.record_id],
                set_={
                    "kind": _kind_after_repeat(table.c.kind, statement.excluded.kind),
                    "reason": statement.excluded.reason,
                    "attempts": table.c.attempts + 1,
                    "last_seen": statement.excluded.last_seen,
                },
            )
            with self._transaction(write=True) as connection:
                connection.execute(statement, list(chunk))
        log.info("Added %d %s work items for flow %s", len(rows), kind, flow)

    def open_work_items(self, flow: str | None = None, kind: str | None = None) -> list[WorkItem]:
        """Return open work items ordered by id, optionally of one flow and one kind."""
        table = WorkItemRow.__table__
        statement = select(table).order_by(table.c.id)
        if flow is not None:
            check_flow(flow)
            statement = statement.where(table.c.flow == flow)
        if kind is not None:
            check_kind(kind)
            statement = statement.where(table.c.kind == kind)
        with self._transaction(write=False) as connection:
            return [
                WorkItem(
                    id=row.id,
                    flow=row.flow,
                    kind=row.kind,
                    record_type=row.record_type,
                    record_id=row.record_id,
                    reason=row.reason,
                    attempts=row.attempts,
                    first_seen=row.first_seen,
                    last_seen=row.last_seen,
                )
                for row in connection.execute(statement)
            ]

    def resolve_work_items(self, flow: str, record_type: str, record_ids: Iterable[str]) -> int:
        """Delete the open items (pending or quarantined) of records that synced.

        :return: the number of items deleted.
        """
        check_flow(flow)
        check_text(record_type, "record_type", RECORD_TYPE_MAX_LENGTH)
        ids = _unique(
            [check_text(value, "record_id", RECORD_ID_MAX_LENGTH) for value in record_ids]
        )
        table = WorkItemRow.__table__
        resolved = 0
        for chunk in _chunks(ids, ID_CHUNK_SIZE):
            with self._transaction(write=True) as connection:
                result = connection.execute(
                    delete(table).where(
                        table.c.flow == flow,
                        table.c.record_type == record_type,
                        table.c.record_id.in_(chunk),
                    )
                )
                resolved += result.rowcount
        if resolved:
            log.info("Resolved %d %s work items for flow %s", resolved, record_type, flow)
        return resolved

    def clear_work_items(self, ids: Iterable[int] | None = None, *, flow: str | None = None) -> int:
        """Delete open items without retrying them: those with the given ids and/or of ``flow``,
        or every open item when both are None.

        :return: the number of items deleted.
        """
        table = WorkItemRow.__table__
        conditions = self._work_item_conditions(ids, flow)
        if conditions is None:
            return 0
        with self._transaction(write=True) as connection:
            cleared = connection.execute(delete(table).where(*conditions)).rowcount
        log.info("Cleared %d work items", cleared)
        return cleared

    def requeue_work_items(
        self, ids: Iterable[int] | None = None, *, flow: str | None = None
    ) -> int:
        """Move quarantined items back to pending with ``attempts`` reset to 0, so that the
        next run retries them: those with the given ids and/or of ``flow``, or every
        quarantined item when both are None.

        :return: the number of items moved.
        """
        table = WorkItemRow.__table__
        conditions = self._work_item_conditions(ids, flow)
        if conditions is None:
            return 0
        with self._transaction(write=True) as connection:
            requeued = connection.execute(
                sql_update(table)
                .where(table.c.kind == "quarantined", *conditions)
                .values(kind="pending", attempts=0)
            ).rowcount
        log.info("Requeued %d quarantined work items", requeued)
        return requeued

    def _work_item_conditions(
        self, ids: Iterable[int] | None, flow: str | None
    ) -> list[Any] | None:
        """Return SQL conditions for ids and flow, or None when ``ids`` is given but empty."""
        table = WorkItemRow.__table__
        conditions: list[Any] = []
        if ids is not None:
            id_list = _unique([check_positive_int(value, "work item id") for value in ids])
            if not id_list:
                return None
            conditions.append(table.c.id.in_(id_list))
        if flow is not None:
            check_flow(flow)
            conditions.append(table.c.flow == flow)
        if not conditions:
            conditions.append(true())
        return conditions

    # -- link lock ----------------------------------------------------------------------------

    @contextmanager
    def link_lock(self, owner: str, *, timeout: float = 600.0) -> Generator[None]:
        """Hold the link lock, which lets one task at a time create links, across processes.

        SQLite: a lock row taken in a ``BEGIN IMMEDIATE`` transaction. It expires
        ``LOCK_LEASE_SECONDS`` after its last renewal and a background thread renews it, so
        the lock of a crashed process frees itself. PostgreSQL: ``pg_advisory_lock`` on a
        fixed key, which the server releases when the session ends.

        :param owner: who holds the lock, for messages (for example ``dag_id/run_id/task_id``).
        :param timeout: seconds to wait for the lock. 0 tries once.
        :raises StateStoreError: if the lock is still held after ``timeout``. The message names
            the holder.
        """
        check_text(owner, "owner", LOCK_OWNER_MAX_LENGTH)
        if timeout < 0:
            raise ValueError(f"timeout must be 0 or more seconds, got {timeout}.")
        self._ensure_ready()
        if self._dialect == "postgresql":
            with self._postgres_link_lock(owner, timeout):
                yield
        else:
            with self._sqlite_link_lock(owner, timeout):
                yield

    def _lock_timeout_error(self, timeout: float, holder: Any) -> StateStoreError:
        if holder is None:
            held_by = "another process"
        else:
            held_by = f"{holder.owner!r} (since {holder.acquired_at.isoformat()})"
        if self._dialect == "postgresql":
            expiry = "The lock of a process that died is released when its session closes."
        else:
            expiry = (
                f"The lock of a process that died expires {LOCK_LEASE_SECONDS:g} s after its "
                "last renewal."
            )
        return StateStoreError(
            f"Timed out after {timeout:g} s waiting for the link lock held by {held_by}. Wait "
            f"for that task to finish. {expiry}"
        )

    def _read_lock_row(self, connection: Connection) -> Any:
        table = SyncLock.__table__
        return connection.execute(select(table).where(table.c.name == LINK_LOCK_NAME)).first()

    def _write_lock_row(self, connection: Connection, owner: str, token: str) -> None:
        table = SyncLock.__table__
        now = self._now()
        values = {
            "name": LINK_LOCK_NAME,
            "owner": owner,
            "token": token,
            "acquired_at": now,
            "expires_at": now + timedelta(seconds=LOCK_LEASE_SECONDS),
        }
        statement = self._insert(table).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.name],
            set_={key: value for key, value in values.items() if key != "name"},
        )
        connection.execute(statement)

    @contextmanager
    def _sqlite_link_lock(self, owner: str, timeout: float) -> Generator[None]:
        table = SyncLock.__table__
        token = uuid.uuid4().hex
        deadline = time.monotonic() + timeout
        while True:
            with self._transaction(write=True) as connection:
                holder = self._read_lock_row(connection)
                if holder is None or holder.expires_at <= self._now():
                    if holder is not None:
                        log.warning(
                            "Took over the link lock of %r, which expired at %s",
                            holder.owner,
                            holder.expires_at.isoformat(),
                        )
                    self._write_lock_row(connection, owner, token)
                    break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._lock_timeout_error(timeout, holder)
            time.sleep(min(LOCK_POLL_SECONDS, remaining))
        log.info("Link lock taken by %r", owner)

        stop = threading.Event()
        renewer = threading.Thread(
            target=self._renew_sqlite_lock,
            args=(token, stop),
            name="link-lock-renewer",
            daemon=True,
        )
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join()
            with self._transaction(write=True) as connection:
                connection.execute(
                    delete(table).where(table.c.name == LINK_LOCK_NAME, table.c.token == token)
                )
            log.info("Link lock released by %r", owner)

    def _renew_sqlite_lock(self, token: str, stop: threading.Event) -> None:
        table = SyncLock.__table__
        while not stop.wait(LOCK_RENEW_SECONDS):
            try:
                with self._transaction(write=True) as connection:
                    renewed = connection.execute(
                        sql_update(table)
                        .where(table.c.name == LINK_LOCK_NAME, table.c.token == token)
                        .values(expires_at=self._now() + timedelta(seconds=LOCK_LEASE_SECONDS))
                    ).rowcount
            except (OperationalError, StateStoreError):
                log.exception("Renewing the link lock failed, retrying in %s s", LOCK_RENEW_SECONDS)
                continue
            if renewed == 0:
                # NOTE: the holder is not stopped. Only this log line shows that the process
                # stalled for longer than LOCK_LEASE_SECONDS and another process took the lock.
                log.error("The link lock expired and another process took it over")
                return

    @contextmanager
    def _postgres_link_lock(self, owner: str, timeout: float) -> Generator[None]:
        deadline = time.monotonic() + timeout
        connection = self._connect()
        try:
            while True:
                acquired = connection.scalar(
                    select(func.pg_try_advisory_lock(LINK_LOCK_ADVISORY_KEY))
                )
                connection.commit()
                if acquired:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    with self._transaction(write=False) as reader:
                        holder = self._read_lock_row(reader)
                    raise self._lock_timeout_error(timeout, holder)
                time.sleep(min(LOCK_POLL_SECONDS, remaining))

            try:
                with self._transaction(write=True) as writer:
                    self._write_lock_row(writer, owner, uuid.uuid4().hex)
                log.info("Link lock taken by %r", owner)
                yield
            finally:
                try:
                    connection.scalar(select(func.pg_advisory_unlock(LINK_LOCK_ADVISORY_KEY)))
                    connection.commit()
                    log.info("Link lock released by %r", owner)
                except OperationalError:
                    # Closing the session releases the advisory lock on the server.
                    log.exception("Unlocking the link lock failed, so its session is closed")
                    connection.invalidate()
        finally:
            connection.close()


# -- row helpers -------------------------------------------------------------------------------


def _kind_after_repeat(stored_kind: Any, new_kind: Any) -> Any:
    return case((stored_kind == "quarantined", "quarantined"), else_=new_kind)


def _link_from_row(row: Any) -> Link:
    synced_values = row.synced_values
    if isinstance(synced_values, str):
        synced_values = json.loads(synced_values)
    return Link(
        contact_id=row.contact_id,
        subscriber_id=int(row.subscriber_id),
        synced_values=dict(synced_values),
        salesforce_seen_at=row.salesforce_seen_at,
        cerkl_seen_at=row.cerkl_seen_at,
    )


def _unique(values: list[T]) -> list[T]:
    return list(dict.fromkeys(values))


def _chunks(values: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
