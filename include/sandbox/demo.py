"""Run the daily sync DAG end to end against a seeded sandbox: ``make demo``.

The first run on a fresh data folder seeds a generated org (2,000 Contacts and 1,500
subscribers by default), then runs the DAG for yesterday as the initial full sync, because the
org's records predate the day. Later runs reuse the folder and run the plain daily sync for
yesterday; with nothing changed in the sandbox they write nothing. The summary goes to standard
output and the last line is the report's path. ``--reset`` starts over.

Sandbox state, the sync-state DB and the Airflow home live in the data folder (default
``.sandbox-data``), which contains generated personal data and is ignored by git.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _prepare_environment(data_dir: Path) -> None:
    # Airflow reads these once, on first import, so they are set before anything imports it.
    airflow_home = data_dir / "airflow"
    airflow_home.mkdir(parents=True, exist_ok=True)
    os.environ["AIRFLOW_HOME"] = str(airflow_home)
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
    os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("CERKL_SYNC_RETRY_DELAY_SECONDS", "5")
    for path in (str(REPO), str(REPO / "plugins"), str(REPO / "dags")):
        if path not in sys.path:
            sys.path.insert(0, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        default=".sandbox-data",
        type=Path,
        help="folder for sandbox state, the sync-state DB and the Airflow home",
    )
    parser.add_argument("--reset", action="store_true", help="delete the data folder first")
    parser.add_argument("--contacts", type=int, default=2_000, help="Contacts in a new org")
    parser.add_argument("--subscribers", type=int, default=1_500, help="subscribers in a new org")
    args = parser.parse_args(argv)

    data_dir = args.data_dir.resolve()
    if args.reset and data_dir.exists():
        shutil.rmtree(data_dir)
    sandbox_dir = data_dir / "sandbox"
    fresh = not (sandbox_dir / "salesforce.sqlite3").exists()
    _prepare_environment(data_dir)

    from include.cerkl_sync.report import summarize
    from include.cerkl_sync.state import SyncStateStore
    from include.sandbox.client import SandboxControlClient
    from include.sandbox.generator import OrgSpec
    from include.sandbox.local_airflow import (
        configure_environment,
        load_dag,
        migrate_airflow_db,
        run_dag,
    )
    from include.sandbox.runner import start_sandbox
    from include.sandbox.seeding import seed_data_dir

    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if fresh:
        spec = OrgSpec(
            contacts=args.contacts, subscribers=args.subscribers, now=today - timedelta(days=2)
        )
        counts = seed_data_dir(sandbox_dir, spec)
        print(
            f"Seeded a new org: {counts.get('Contact', 0)} Contacts, "
            f"{counts.get('subscribers', 0)} subscribers, {counts.get('Campaign', 0)} Campaigns"
        )

    state_url = f"sqlite:///{data_dir / 'sync-state.db'}"
    store = SyncStateStore(state_url)
    store.migrate()
    first_run = store.get_window_end("contacts_to_subscribers") is None
    store.dispose()
    if not (data_dir / "airflow" / "airflow.db").exists():
        print("Creating the Airflow metadata DB (SQLite) ...")
        migrate_airflow_db()

    with start_sandbox(sandbox_dir) as sandbox:
        for url in (sandbox.salesforce_url, sandbox.cerkl_root_url):
            with SandboxControlClient(url) as client:
                client.set_clock(None)
                client.reset_counters()
        configure_environment(
            salesforce_url=sandbox.salesforce_url,
            cerkl_url=sandbox.cerkl_url,
            state_url=state_url,
            work_dir=data_dir,
        )
        kind = "initial full sync" if first_run else "daily sync"
        print(f"Running {kind} for {(today - timedelta(days=1)).date()} ...")
        outcome = run_dag(load_dag(), today, {"full_sync": first_run})
        writes = {}
        for name, url in (
            ("Salesforce", sandbox.salesforce_url),
            ("Cerkl", sandbox.cerkl_root_url),
        ):
            with SandboxControlClient(url) as client:
                by_endpoint = client.counters()["by_endpoint"]
            writes[name] = sum(
                count
                for key, count in by_endpoint.items()
                if key.split(" ", 1)[0] in {"POST", "PUT", "PATCH", "DELETE"}
                and "oauth" not in key.lower()
                and "Soap" not in key
                and "query" not in key
            )

    if outcome.report is None:
        print(f"The run ended {outcome.state} without a report; task states: {outcome.task_states}")
        return 1
    print(summarize(outcome.report))
    print(f"Writes seen by the sandbox: Salesforce {writes['Salesforce']}, Cerkl {writes['Cerkl']}")
    print(outcome.report_path)
    return 0 if outcome.state == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
