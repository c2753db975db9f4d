"""SQLAlchemy engines for the state DB: SQLite settings for concurrent use, URL redaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from include.cerkl_sync.state.errors import StateStoreError

# Seconds a SQLite connection waits for the database lock before it fails.
SQLITE_BUSY_TIMEOUT_SECONDS = 60.0
# Seconds PostgreSQL connection attempts wait before they fail.
POSTGRES_CONNECT_TIMEOUT_SECONDS = 10
# Execution option that makes a SQLite transaction start with BEGIN IMMEDIATE.
WRITE_OPTION = "cerkl_sync_write"


def redact_url(url: str) -> str:
    """Return ``url`` with its password replaced by ``***``, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid URL>"


def create_state_engine(url: str, *, echo: bool = False) -> Engine:
    """Create a SQLAlchemy engine for the state DB with this store's connection settings.

    SQLite files get WAL, a busy timeout of ``SQLITE_BUSY_TIMEOUT_SECONDS`` and SQLAlchemy
    control of ``BEGIN``: a connection with the execution option ``cerkl_sync_write`` begins
    with ``BEGIN IMMEDIATE``, others with ``BEGIN``.

    :param url: SQLAlchemy URL, for example ``sqlite:////var/lib/cerkl/state.db`` or
        ``postgresql+psycopg2://user@host:5432/cerkl_sync``.
    :param echo: log every SQL statement (SQLAlchemy ``echo``).
    :raises StateStoreError: if the URL is invalid, names an in-memory SQLite database or a
        driver that is not installed.
    """
    try:
        sa_url = make_url(url)
    except ArgumentError:
        # The URL is left out of the message because it may contain a password.
        raise StateStoreError(
            "Invalid state DB URL: SQLAlchemy cannot parse it. Use a SQLAlchemy URL such as "
            "sqlite:////path/to/state.db or postgresql+psycopg2://user@host:5432/db."
        ) from None

    if sa_url.drivername == "postgresql":
        # SQLAlchemy 2.1 defaults to the psycopg 3 driver, but this project ships psycopg2.
        sa_url = sa_url.set(drivername="postgresql+psycopg2")
    backend = sa_url.get_backend_name()
    try:
        if backend == "sqlite":
            if sa_url.database in (None, "", ":memory:") or "mode=memory" in str(sa_url):
                raise StateStoreError(
                    f"The state DB URL {redact_url(url)!r} names an in-memory SQLite database, "
                    "which connections do not share. Use a file, for example "
                    "sqlite:////tmp/cerkl_sync_state.db."
                )
            engine = create_engine(
                sa_url,
                echo=echo,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
            )
            event.listen(engine, "connect", _configure_sqlite_connection)
            event.listen(engine, "begin", _begin_sqlite_transaction)
            return engine

        connect_args: dict[str, Any] = {}
        if backend == "postgresql":
            connect_args = {
                "connect_timeout": POSTGRES_CONNECT_TIMEOUT_SECONDS,
                "application_name": "cerkl_sync_state",
            }
        return create_engine(sa_url, echo=echo, pool_pre_ping=True, connect_args=connect_args)
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        raise StateStoreError(
            f"No database driver for the state DB URL {redact_url(url)!r}: {exc}. Use "
            "sqlite:// or postgresql+psycopg2://."
        ) from None


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    # isolation_level None stops the sqlite3 module from issuing BEGIN itself, so that
    # _begin_sqlite_transaction decides between BEGIN and BEGIN IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_SECONDS * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _begin_sqlite_transaction(connection: Connection) -> None:
    if connection.get_execution_options().get(WRITE_OPTION):
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        connection.exec_driver_sql("BEGIN")
