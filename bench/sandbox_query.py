"""Time incremental Contact query pages on a 200,000-Contact Salesforce sandbox.

Seeds 200,000 Contacts straight into a store in a temporary folder, starts the Salesforce
sandbox server as a child process, and times 50 pages of
``SELECT ... FROM Contact WHERE SystemModstamp > X ORDER BY SystemModstamp`` (2,000 records
each, each with a different watermark X) over HTTP. Prints one line:
``sandbox_query_p95_ms=N p50_ms=M contacts=200000``.

Run with ``.venv/bin/python bench/sandbox_query.py``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from include.sandbox.runner import start_sandbox  # noqa: E402
from include.sandbox.salesforce.settings import SalesforceSandboxSettings  # noqa: E402
from include.sandbox.salesforce.store import SalesforceStore  # noqa: E402

FIELDS = (
    "Id, FirstName, LastName, Email, HasOptedOutOfEmail, Cerkl_Subscriber_Id__c, SystemModstamp"
)
START = datetime(2025, 1, 1, tzinfo=UTC)


def seed_contacts(data_dir: Path, count: int) -> None:
    """Insert ``count`` Contacts with SystemModstamp one second apart from 2025-01-01."""
    store = SalesforceStore(data_dir / "salesforce.sqlite3", lambda: datetime.now(UTC))
    batch: list[dict[str, object]] = []
    for index in range(count):
        stamp = START + timedelta(seconds=index)
        batch.append(
            {
                "FirstName": f"First{index}",
                "LastName": f"Last{index}",
                "Email": f"person{index}@example.com",
                "Cerkl_Subscriber_Id__c": f"sub-{index}",
                "HasOptedOutOfEmail": index % 10 == 0,
                "CreatedDate": stamp,
                "LastModifiedDate": stamp,
                "SystemModstamp": stamp,
            }
        )
        if len(batch) == 10_000:
            store.insert_records("Contact", batch)
            batch = []
    if batch:
        store.insert_records("Contact", batch)
    store.connection.execute("ANALYZE")
    store.connection.close()


def login(base_url: str) -> str:
    """Return a session id from the OAuth password grant."""
    settings = SalesforceSandboxSettings()
    response = requests.post(
        f"{base_url}/services/oauth2/token",
        data={
            "grant_type": "password",
            "client_id": settings.consumer_key,
            "client_secret": settings.consumer_secret,
            "username": settings.username,
            "password": settings.password + settings.security_token,
        },
        timeout=30,
    )
    response.raise_for_status()
    return response.json()["access_token"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=200_000, help="Contacts to seed")
    parser.add_argument("--pages", type=int, default=50, help="pages to time")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="sandbox-query-bench-") as folder:
        data_dir = Path(folder)
        seed_started = time.perf_counter()
        seed_contacts(data_dir, options.contacts)
        seed_seconds = time.perf_counter() - seed_started
        print(f"seeded {options.contacts} contacts in {seed_seconds:.1f} s", file=sys.stderr)
        with start_sandbox(data_dir, servers=("salesforce",)) as sandbox:
            assert sandbox.salesforce_url is not None
            base_url = sandbox.salesforce_url
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {login(base_url)}"
            url = f"{base_url}/services/data/v59.0/query/"
            timings_ms: list[float] = []
            span = max(1, options.contacts - 2_000)
            for page in range(options.pages + 1):
                watermark = START + timedelta(seconds=(page * 7_919) % span)
                statement = (
                    f"SELECT {FIELDS} FROM Contact WHERE SystemModstamp > "
                    f"{watermark.strftime('%Y-%m-%dT%H:%M:%SZ')} ORDER BY SystemModstamp"
                )
                started = time.perf_counter()
                response = session.get(url, params={"q": statement}, timeout=30)
                elapsed_ms = (time.perf_counter() - started) * 1000
                response.raise_for_status()
                if len(response.json()["records"]) != 2_000:
                    raise SystemExit(f"page {page} returned fewer than 2,000 records")
                if page > 0:  # the first request warms the page cache
                    timings_ms.append(elapsed_ms)
    timings_ms.sort()
    p95 = timings_ms[max(0, int(len(timings_ms) * 0.95) - 1)]
    p50 = statistics.median(timings_ms)
    print(f"sandbox_query_p95_ms={p95:.1f} p50_ms={p50:.1f} contacts={options.contacts}")


if __name__ == "__main__":
    main()
