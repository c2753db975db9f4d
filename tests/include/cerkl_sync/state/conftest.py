"""Fixtures for state DB tests: SQLite files in tmp_path and a throw-away PostgreSQL database.

PostgreSQL tests need a server on 127.0.0.1:5432 that lets the user ``postgres`` in with
trust authentication. Each test session creates one database and drops it at the end.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from include.cerkl_sync.state import SyncStateStore
from include.cerkl_sync.state.models import Base

POSTGRES_SERVER_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432"


@pytest.fixture(scope="session")
def create_postgres_database() -> Iterator[Callable[[], str]]:
    """Return a function that creates an empty PostgreSQL schema and returns its URL.

    The session creates one throw-away database and drops it at the end. Each call adds a
    schema to it and returns a URL whose ``search_path`` puts that schema first, which is
    much faster than a database per test.
    """
    admin = create_engine(
        f"{POSTGRES_SERVER_URL}/postgres",
        isolation_level="AUTOCOMMIT",
        connect_args={"connect_timeout": 3},
    )
    try:
        with admin.connect():
            pass
    except OperationalError as exc:
        admin.dispose()
        pytest.skip(
            "PostgreSQL tests need a server on 127.0.0.1:5432 with user postgres and trust "
            f"authentication: {str(exc.orig).strip().splitlines()[0]}"
        )

    database = f"cerkl_state_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{database}"')
    database_engine = create_engine(
        f"{POSTGRES_SERVER_URL}/{database}", isolation_level="AUTOCOMMIT"
    )

    def create() -> str:
        schema = f"state_{uuid.uuid4().hex[:12]}"
        with database_engine.connect() as connection:
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        return f"{POSTGRES_SERVER_URL}/{database}?options=-csearch_path%3D{schema}"

    yield create

    database_engine.dispose()
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(scope="session")
def migrated_postgres_url(create_postgres_database: Callable[[], str]) -> str:
    """Return the URL of a PostgreSQL schema migrated once for the whole session."""
    url = create_postgres_database()
    store = SyncStateStore(url)
    store.migrate()
    store.dispose()
    return url


@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a migrated SQLite file that tests copy, which is faster than migrating each."""
    path = tmp_path_factory.mktemp("template") / "state.db"
    store = SyncStateStore(f"sqlite:///{path}")
    store.migrate()
    # Closing the last connection checkpoints the WAL into the file, so the copy is complete.
    store.dispose()
    return path


def _empty_tables(url: str) -> None:
    engine = create_engine(url)
    names = ", ".join(table.name for table in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def state_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Return the URL of an empty, migrated state DB on SQLite, then on PostgreSQL."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("migrated_sqlite_template")
        path = tmp_path_factory.mktemp("state") / "state.db"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("migrated_postgres_url")
    _empty_tables(url)
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Return the URL of an empty, unmigrated database on SQLite, then on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('state')}/state.db"
    create: Callable[[], str] = request.getfixturevalue("create_postgres_database")
    return create()


@pytest.fixture
def store(state_url: str) -> Iterator[SyncStateStore]:
    """Return a store on an empty, migrated state DB (SQLite, then PostgreSQL)."""
    state_store = SyncStateStore(state_url)
    yield state_store
    state_store.dispose()


@pytest.fixture
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Return the URL of a SQLite file that does not exist yet."""
    return f"sqlite:///{tmp_path_factory.mktemp('state')}/state.db"
