"""Command line of the sandbox: ``serve``, ``seed`` and ``load``.

``python -m include.sandbox serve`` runs both sandbox servers in the foreground and prints
their URLs and the credentials they accept. ``seed`` writes a generated org into a data
folder, and ``load`` writes Salesforce export files into one.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_DATA_DIR = Path(".sandbox-data")


def _add_generator_options(parser: argparse.ArgumentParser) -> bool:
    """Add the generator's options to ``parser``; return False when the generator is missing."""
    try:
        from include.sandbox.generator import add_org_spec_arguments
    except ImportError:
        return False
    add_org_spec_arguments(parser)
    return True


def _org_spec(args: argparse.Namespace) -> Any:
    from include.sandbox.generator import org_spec_from_arguments

    return org_spec_from_arguments(args)


def _parse_column_map(values: Sequence[str]) -> dict[str, str]:
    column_map: dict[str, str] = {}
    for value in values:
        field, separator, column = value.partition("=")
        if not separator or not field.strip() or not column.strip():
            raise SystemExit(
                f"invalid --map {value!r}: use ProductField=ExportColumn, such as "
                "Email=npe01__HomeEmail__c"
            )
        column_map[field.strip()] = column.strip()
    return column_map


def data_dir_is_empty(data_dir: Path) -> bool:
    """Return True when the folder contains no Cerkl subscribers and no Salesforce Contacts."""
    cerkl_path = data_dir / "cerkl.sqlite3"
    salesforce_path = data_dir / "salesforce.sqlite3"
    if not cerkl_path.exists() and not salesforce_path.exists():
        return True
    import sqlite3

    for path, table in ((cerkl_path, "subscriber"), (salesforce_path, "Contact")):
        if not path.exists():
            continue
        with sqlite3.connect(path) as db:
            try:
                if db.execute(f'SELECT 1 FROM "{table}" LIMIT 1').fetchone() is not None:
                    return False
            except sqlite3.OperationalError:
                continue
    return True


def command_seed(args: argparse.Namespace) -> int:
    from include.sandbox.seeding import seed_data_dir

    counts = seed_data_dir(args.data_dir, _org_spec(args), reset=True)
    print(f"Seeded {args.data_dir}: {counts}")
    return 0


def command_load(args: argparse.Namespace) -> int:
    from include.sandbox.loader import load_export

    loaded = load_export(
        args.files, column_map=_parse_column_map(args.map) or None, object_name=args.object
    )
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    counts = loaded.seed(args.data_dir, reset=args.reset)
    print(f"Loaded {len(args.files)} file(s) into {args.data_dir}: {counts}")
    return 0


def _salesforce_credentials() -> str:
    from include.sandbox.salesforce.settings import SalesforceSandboxSettings

    settings = SalesforceSandboxSettings.from_env()
    return (
        f"  username {settings.username}, password {settings.password},\n"
        f"  security token {settings.security_token}, consumer key {settings.consumer_key},\n"
        f"  consumer secret {settings.consumer_secret}"
    )


def command_serve(args: argparse.Namespace) -> int:
    from include.sandbox.cerkl.app import CerklSandboxSettings
    from include.sandbox.runner import start_sandbox

    args.data_dir.mkdir(parents=True, exist_ok=True)
    if args.seed_if_empty and data_dir_is_empty(args.data_dir):
        print(f"Data folder {args.data_dir} is empty; seeding it first.", flush=True)
        command_seed(args)

    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    with start_sandbox(
        args.data_dir,
        salesforce_port=args.salesforce_port,
        cerkl_port=args.cerkl_port,
        host=args.host,
    ) as running:
        cerkl = CerklSandboxSettings.from_env()
        print(f"Salesforce sandbox: {running.salesforce_url}")
        print(_salesforce_credentials())
        print(f"Cerkl sandbox:      {running.cerkl_url}")
        print(f"  client id {cerkl.client_id}, client secret {cerkl.client_secret}")
        print(f"Data folder {args.data_dir.resolve()}, logs in {args.data_dir.resolve() / 'logs'}")
        print("Press Ctrl+C to stop.", flush=True)
        while not stop_requested.wait(1.0):
            for server in running.servers.values():
                if server.process.poll() is not None:
                    print(
                        f"The {server.name} sandbox server exited with code "
                        f"{server.process.returncode}; see {server.log_path}",
                        file=sys.stderr,
                    )
                    return 1
    print("Sandbox stopped.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of ``python -m include.sandbox``."""
    parser = argparse.ArgumentParser(prog="python -m include.sandbox", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run both sandbox servers in the foreground")
    serve.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="data folder")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--salesforce-port", type=int, default=8701, help="Salesforce port")
    serve.add_argument("--cerkl-port", type=int, default=8702, help="Cerkl port")
    serve.add_argument(
        "--seed-if-empty",
        action="store_true",
        help="seed a generated org first when the data folder has no records",
    )
    _add_generator_options(serve)
    serve.set_defaults(handler=command_serve)

    seed = commands.add_parser("seed", help="write a generated org into a data folder")
    seed.add_argument("--data-dir", type=Path, required=True, help="data folder")
    _add_generator_options(seed)
    seed.set_defaults(handler=command_seed)

    load = commands.add_parser("load", help="load Salesforce export files into a data folder")
    load.add_argument("--data-dir", type=Path, required=True, help="data folder")
    load.add_argument("files", nargs="+", type=Path, help="SFDX data-tree JSON or CSV files")
    load.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="FIELD=COLUMN",
        help="take a product field from another export column, such as Email=npe01__HomeEmail__c",
    )
    load.add_argument(
        "--object", help="sObject of CSV files whose name does not say it, such as Contact"
    )
    load.add_argument("--reset", action="store_true", help="empty both stores first")
    load.set_defaults(handler=command_load)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sandbox command line; return the exit code."""
    logging.basicConfig(
        level=os.environ.get("SANDBOX_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except (ValueError, OSError, RuntimeError) as exc:
        # Bad input files, a bad generator option or a server that did not start: the
        # message names the value, so a traceback would add nothing.
        logger.debug("sandbox %s failed", args.command, exc_info=True)
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
