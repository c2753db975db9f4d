"""Memory bound of paging: 100,000 subscribers stream through in under 20 MB."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime

from include.sandbox.cerkl.store import CerklStore

SUBSCRIBER_COUNT = 100_000
PEAK_LIMIT_BYTES = 20 * 1024 * 1024


def test_paging_100k_subscribers_peaks_under_20_mb(make_hook, sandbox, cerkl_controls):
    store = CerklStore(sandbox.data_dir / "cerkl.sqlite3", lambda: datetime.now(UTC))
    try:
        store.insert_subscribers(
            {
                "email": f"member{index}@example.com",
                "first_name": f"First{index}",
                "last_name": f"Last{index}",
                "subscriber_status_id": 1,
                "subscriber_privacy_level_id": 1,
                "engagement_score": index % 100,
            }
            for index in range(SUBSCRIBER_COUNT)
        )
    finally:
        store.close()
    hook = make_hook()
    hook.list_privacy_levels()  # token and session exist before measuring

    count = 0
    pages = 0
    tracemalloc.start()
    try:
        for page in hook.iter_subscriber_pages():
            count += len(page)
            pages += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert count == SUBSCRIBER_COUNT
    assert pages == SUBSCRIBER_COUNT // 1000
    assert peak < PEAK_LIMIT_BYTES, f"peak {peak / 1024 / 1024:.1f} MB"
