"""Tests of migrations, check(), connection errors, from_connection and the state command."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from include.cerkl_sync.state import (
    StateSchemaOutdatedError,
    StateStoreError,
    StateStoreUnavailableError,
    SyncStateStore,
)
from include.cerkl_sync.state.__main__ import main as state_main
from include.cerkl_sync.state.models import Base
from include.cerkl_sync.state.store import MIGRATIONS_DIR, SCHEMA_REVISION

REPOSITORY_ROOT = Path(__file__).resolve().parents[4]
EXPECTED_TABLES = {"alembic_version", "contact_link", "segment_link", "sync_lock", "sync_window"}
EXPECTED_TABLES |= {"work_item"}


def free_loopback_port() -> int:
    """Return a loopback port that nothing listens on (bound, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_migrate_from_empty_creates_tables(empty_url: str) -> None:
    store = SyncStateStore(empty_url)

    revision = store.migrate()
    store.check()

    engine = create_engine(empty_url)
    assert set(inspect(engine).get_table_names()) == EXPECTED_TABLES
    engine.dispose()
    assert revision == "0001"
    assert store.current_revision() == "0001"
    store.dispose()


def test_migrate_twice_keeps_revision(empty_url: str) -> None:
    store = SyncStateStore(empty_url)

    store.migrate()
    revision = store.migrate()

    assert revision == "0001"
    store.dispose()


def test_models_match_migrations(empty_url: str) -> None:
    SyncStateStore(empty_url).migrate()
    engine = create_engine(empty_url)

    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)

    engine.dispose()
    assert differences == []


def test_schema_revision_is_head() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))

    assert ScriptDirectory.from_config(config).get_current_head() == SCHEMA_REVISION


def test_check_unmigrated_asks_for_migrate(empty_url: str) -> None:
    store = SyncStateStore(empty_url)

    with pytest.raises(StateSchemaOutdatedError) as raised:
        store.check()

    assert "python -m include.cerkl_sync.state migrate" in str(raised.value)
    assert "none (empty)" in str(raised.value)
    store.dispose()


def test_data_method_on_unmigrated_db_raises(empty_url: str) -> None:
    store = SyncStateStore(empty_url)

    with pytest.raises(StateSchemaOutdatedError, match="migrate"):
        store.count_links()

    store.dispose()


def test_check_unknown_revision_names_it(empty_url: str) -> None:
    store = SyncStateStore(empty_url)
    store.migrate()
    engine = create_engine(empty_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()

    with pytest.raises(StateSchemaOutdatedError, match="9999, which this code does not know"):
        store.check()

    store.dispose()


def test_check_unreachable_postgres_hides_password() -> None:
    url = f"postgresql+psycopg2://postgres:s3cret-pw@127.0.0.1:{free_loopback_port()}/state"
    store = SyncStateStore(url)

    with pytest.raises(StateStoreUnavailableError) as raised:
        store.check()

    message = str(raised.value)
    assert "s3cret-pw" not in message
    assert "postgres:***@127.0.0.1" in message
    assert "Check that the database server is running" in message


def test_check_unreachable_sqlite_path(tmp_path: Path) -> None:
    store = SyncStateStore(f"sqlite:///{tmp_path}/missing-dir/state.db")

    with pytest.raises(StateStoreUnavailableError, match="unable to open database file"):
        store.check()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "Invalid state DB URL"),
        ("postgres ql://user:hunter2@host/db", "Invalid state DB URL"),
        ("sqlite://", "in-memory"),
        ("sqlite:///:memory:", "in-memory"),
        ("nosuchdb+driver://host/db", "No database driver"),
    ],
)
def test_store_rejects_bad_url(url: str, message: str) -> None:
    with pytest.raises(StateStoreError, match=message) as raised:
        SyncStateStore(url)

    assert "hunter2" not in str(raised.value)


def test_repr_hides_password() -> None:
    store = SyncStateStore("postgresql+psycopg2://user:hunter2@127.0.0.1:5432/state")

    assert "hunter2" not in repr(store)


# -- from_connection ---------------------------------------------------------------------------


def test_from_connection_reads_url_extra(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    connection = {"conn_type": "generic", "extra": {"url": sqlite_url}}
    monkeypatch.setenv("AIRFLOW_CONN_CERKL_SYNC_STATE", json.dumps(connection))

    store = SyncStateStore.from_connection()

    assert store.url == sqlite_url


def test_from_connection_missing_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_STATE_WITHOUT_URL", json.dumps({"conn_type": "generic"}))

    with pytest.raises(StateStoreError) as raised:
        SyncStateStore.from_connection("state_without_url")

    assert "'state_without_url' has no 'url' in its extra" in str(raised.value)
    assert "AIRFLOW_CONN_STATE_WITHOUT_URL=" in str(raised.value)


def test_from_connection_missing_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_NO_SUCH_STATE_CONN", raising=False)

    with pytest.raises(StateStoreError, match="'no_such_state_conn' not found"):
        SyncStateStore.from_connection("no_such_state_conn")


# -- alembic command line and python -m include.cerkl_sync.state ------------------------------


def test_alembic_env_migrates_from_x_url(sqlite_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config(cmd_opts=type("Options", (), {"x": [f"url={sqlite_url}"]})())
    config.set_main_option("script_location", str(MIGRATIONS_DIR))

    command.upgrade(config, "head")

    assert SyncStateStore(sqlite_url).current_revision() == "0001"


def test_state_cli_check_then_migrate(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert state_main(["check", "--url", sqlite_url]) == 1
    assert "Run `python -m include.cerkl_sync.state migrate`" in capsys.readouterr().err

    assert state_main(["migrate", "--url", sqlite_url]) == 0
    assert "is at revision 0001" in capsys.readouterr().out

    assert state_main(["check", "--url", sqlite_url]) == 0
    assert "reachable and at revision 0001" in capsys.readouterr().out


def test_state_cli_runs_as_module(sqlite_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "include.cerkl_sync.state", "migrate", "--url", sqlite_url],
        cwd=REPOSITORY_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "revision 0001" in result.stdout
