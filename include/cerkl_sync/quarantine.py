"""Operator command for open work items in the state DB.

Usage::

    python -m include.cerkl_sync.quarantine list [--flow F] [--kind pending|quarantined] [--json]
    python -m include.cerkl_sync.quarantine retry [--id N ...] [--flow F]
    python -m include.cerkl_sync.quarantine clear [--id N ...] [--flow F] --yes

``list`` prints open items (pending and quarantined) with their ids, flows, record types,
record ids, reasons, attempts and dates. ``retry`` moves quarantined items back to pending,
with attempts reset to 0, so that the next DAG run retries them. ``clear`` deletes open items
(of both kinds) without retrying them and rejects the request without ``--yes``. Without
``--id`` and ``--flow``, ``retry`` and ``clear`` act on every matching item.

Every verb reads the state DB URL from the ``url`` extra of the Airflow connection
``cerkl_sync_state`` unless ``--url`` is given.

Exit codes:

- 0: success, including when no item matched.
- 1: the state DB is unreachable, not migrated, or its URL or connection is invalid.
- 2: invalid arguments, including ``clear`` without ``--yes``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import TextIO

from include.cerkl_sync.state.__main__ import add_connection_arguments, open_store
from include.cerkl_sync.state.store import WORK_ITEM_KINDS, StateStoreError, WorkItem

EXIT_OK = 0
EXIT_STATE_DB_ERROR = 1
EXIT_USAGE = 2

_COLUMNS = ("id", "flow", "kind", "record_type", "record_id", "attempts", "first_seen", "last_seen")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m include.cerkl_sync.quarantine",
        description="List, retry or clear the open work items (pending and quarantined records).",
    )
    verbs = parser.add_subparsers(dest="verb", required=True)

    list_parser = verbs.add_parser("list", help="Print open work items.")
    list_parser.add_argument("--flow", help="Only items of this flow.")
    list_parser.add_argument("--kind", choices=WORK_ITEM_KINDS, help="Only items of this kind.")
    list_parser.add_argument("--json", action="store_true", help="Print a JSON array.")
    add_connection_arguments(list_parser)

    retry_parser = verbs.add_parser(
        "retry", help="Move quarantined items back to pending so that the next run retries them."
    )
    retry_parser.add_argument(
        "--id",
        dest="ids",
        type=int,
        action="append",
        metavar="N",
        help="Item id. Repeat to select several.",
    )
    retry_parser.add_argument("--flow", help="Only items of this flow.")
    add_connection_arguments(retry_parser)

    clear_parser = verbs.add_parser(
        "clear", help="Delete open items without retrying them (needs --yes)."
    )
    clear_parser.add_argument(
        "--id",
        dest="ids",
        type=int,
        action="append",
        metavar="N",
        help="Item id. Repeat to select several.",
    )
    clear_parser.add_argument("--flow", help="Only items of this flow.")
    clear_parser.add_argument(
        "--yes", action="store_true", help="Confirm the deletion. Without it nothing is deleted."
    )
    add_connection_arguments(clear_parser)
    return parser


def format_items(items: Sequence[WorkItem]) -> str:
    """Format work items as a text table, one item per line and the reason last."""
    rows = [_COLUMNS + ("reason",)]
    for item in items:
        rows.append(
            (
                str(item.id),
                item.flow,
                item.kind,
                item.record_type,
                item.record_id,
                str(item.attempts),
                item.first_seen.isoformat(timespec="seconds"),
                item.last_seen.isoformat(timespec="seconds"),
                item.reason,
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(_COLUMNS))]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join(cells + [row[-1]]).rstrip())
    return "\n".join(lines)


def items_to_json(items: Sequence[WorkItem]) -> str:
    """Serialize work items as a JSON array with ISO 8601 dates."""
    return json.dumps(
        [
            {
                "id": item.id,
                "flow": item.flow,
                "kind": item.kind,
                "record_type": item.record_type,
                "record_id": item.record_id,
                "reason": item.reason,
                "attempts": item.attempts,
                "first_seen": item.first_seen.isoformat(),
                "last_seen": item.last_seen.isoformat(),
            }
            for item in items
        ],
        indent=2,
    )


def _describe_selection(ids: list[int] | None, flow: str | None) -> str:
    parts = []
    if ids:
        parts.append("ids " + ", ".join(str(item_id) for item_id in ids))
    if flow:
        parts.append(f"flow {flow}")
    return " and ".join(parts) if parts else "all flows"


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None) -> int:
    """Run the command line and return its exit code.

    :param argv: arguments without the program name, ``sys.argv[1:]`` if None.
    :param stdout: stream for the output, ``sys.stdout`` if None.
    """
    out = stdout or sys.stdout
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    if args.verb == "clear" and not args.yes:
        print(
            f"error: clear deletes the open items of {_describe_selection(args.ids, args.flow)} "
            "without retrying them. Add --yes to confirm, or use retry to run them again.",
            file=sys.stderr,
        )
        return EXIT_USAGE

    try:
        store = open_store(args.url, args.conn_id)
        try:
            if args.verb == "list":
                items = store.open_work_items(flow=args.flow, kind=args.kind)
                if args.json:
                    print(items_to_json(items), file=out)
                elif items:
                    print(format_items(items), file=out)
                else:
                    print("No open work items.", file=out)
            elif args.verb == "retry":
                count = store.requeue_work_items(args.ids, flow=args.flow)
                selection = _describe_selection(args.ids, args.flow)
                print(
                    f"Moved {count} quarantined items of {selection} back to pending. "
                    "The next run retries them.",
                    file=out,
                )
            else:
                count = store.clear_work_items(args.ids, flow=args.flow)
                selection = _describe_selection(args.ids, args.flow)
                print(
                    f"Cleared {count} open items of {selection}.",
                    file=out,
                )
        finally:
            store.dispose()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StateStoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_STATE_DB_ERROR
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
