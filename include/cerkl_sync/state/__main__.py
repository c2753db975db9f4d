"""Command line of the state DB: ``python -m include.cerkl_sync.state migrate|check``.

``migrate`` upgrades the database to the newest revision and prints it. ``check`` prints
whether the database is reachable and migrated. Both read the SQLAlchemy URL from the
``url`` extra of the Airflow connection ``cerkl_sync_state`` unless ``--url`` is given.

Exit codes: 0 success, 1 the state DB is unreachable, not migrated or the URL is invalid,
2 invalid arguments.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from include.cerkl_sync.state.store import (
    DEFAULT_CONN_ID,
    StateStoreError,
    SyncStateStore,
    redact_url,
)

EXIT_OK = 0
EXIT_STATE_DB_ERROR = 1


def open_store(url: str | None, conn_id: str) -> SyncStateStore:
    """Create a store from ``url``, or from the Airflow connection ``conn_id`` if it is None."""
    if url:
        return SyncStateStore(url)
    return SyncStateStore.from_connection(conn_id)


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--url`` and ``--conn-id`` to ``parser``."""
    parser.add_argument(
        "--url",
        help="SQLAlchemy URL of the state DB. Overrides the Airflow connection.",
    )
    parser.add_argument(
        "--conn-id",
        default=DEFAULT_CONN_ID,
        help="Airflow connection whose extra 'url' is the state DB URL (default: %(default)s).",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m include.cerkl_sync.state",
        description="Migrate or check the sync-state database.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    migrate = commands.add_parser("migrate", help="Upgrade the state DB to the newest revision.")
    add_connection_arguments(migrate)
    check = commands.add_parser("check", help="Check that the state DB is reachable and migrated.")
    add_connection_arguments(check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        store = open_store(args.url, args.conn_id)
        try:
            if args.command == "migrate":
                revision = store.migrate()
                print(f"State DB at {redact_url(store.url)} is at revision {revision}.")
            else:
                store.check()
                revision = store.current_revision()
                print(
                    f"State DB at {redact_url(store.url)} is reachable and at revision {revision}."
                )
        finally:
            store.dispose()
    except StateStoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_STATE_DB_ERROR
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
