"""Alembic environment of the sync-state database.

``SyncStateStore.migrate`` passes an open connection in ``config.attributes["connection"]``.
The ``alembic`` command line can also run these migrations with ``-x url=<SQLAlchemy URL>``
or the ``sqlalchemy.url`` option.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text

from include.cerkl_sync.state.engine import WRITE_OPTION, create_state_engine
from include.cerkl_sync.state.models import Base

# Fixed key of the PostgreSQL advisory lock that serializes concurrent migrations.
MIGRATION_LOCK_KEY = 7_302_914_556_001


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot alter most column definitions in place, so batch mode recreates the table.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        # SQLite DDL is transactional once SQLAlchemy issues BEGIN itself (see store.py).
        transactional_ddl=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Two processes that migrate at once would both try to create the tables. The
            # lock is released when the transaction ends.
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return

    url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise RuntimeError(
            "No database URL given to the state DB migrations. Pass -x url=<SQLAlchemy URL> or "
            "run `python -m include.cerkl_sync.state migrate --url URL`."
        )
    engine = create_state_engine(url)
    try:
        with engine.connect() as connection:
            # Writes on SQLite start with BEGIN IMMEDIATE, as in SyncStateStore.migrate.
            connection.execution_options(**{WRITE_OPTION: True})
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("Offline (--sql) migrations of the state DB are not supported.")
run_migrations_online()
