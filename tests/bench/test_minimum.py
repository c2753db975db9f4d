"""The benchmark's lower bounds: query pages, look-ups, writes and the latency-bound time."""

from __future__ import annotations

import pytest

from bench.minimum import (
    MAX_REQUEST_URI_BYTES,
    keys_per_lookup,
    latency_bound_seconds,
    lookup_calls,
    query_calls,
    write_calls,
)

PREFIX = "https://sandbox.my.salesforce.com/services/data/v59.0/query?q="
HEAD = "SELECT Id FROM Contact WHERE Email IN ("


def test_query_calls_by_page_of_2000():
    assert query_calls(0) == 1
    assert query_calls(2_000) == 1
    assert query_calls(2_001) == 2
    assert query_calls(100_000) == 50


def test_write_calls_by_200_or_bulk_job():
    assert write_calls(0) == 0
    assert write_calls(200) == 1
    assert write_calls(201) == 2
    assert write_calls(201, bulk=False) == 2
    # 10,000 records: 50 collection requests, or one Bulk API 2.0 job of 4 calls + 1 page.
    assert write_calls(10_000) == 5
    assert write_calls(10_000, bulk=False) == 50


def test_lookup_calls_fill_request_uri():
    keys = [f"person{i:05d}@example.com" for i in range(3_000)]
    k = keys_per_lookup(keys[0], uri_prefix=PREFIX, soql_head=HEAD, soql_tail=")")
    calls = lookup_calls(keys, uri_prefix=PREFIX, soql_head=HEAD, soql_tail=")")
    # A key costs its 23 characters, 2 more for "@" as "%40", and 9 for two quotes and a
    # comma. The statement around the list costs 44 encoded bytes.
    assert k == (MAX_REQUEST_URI_BYTES - len(PREFIX) - 44) // (23 + 2 + 9)
    assert calls == 7
    assert calls == -(-len(keys) // k)


def test_lookup_calls_count_duplicates_once():
    keys = ["a@example.com"] * 5
    assert lookup_calls(keys, uri_prefix=PREFIX, soql_head=HEAD, soql_tail=")") == 1
    assert lookup_calls([], uri_prefix=PREFIX, soql_head=HEAD, soql_tail=")") == 0


def test_lookup_calls_reject_key_larger_than_uri():
    with pytest.raises(ValueError, match="does not fit"):
        lookup_calls(["x" * 20_000], uri_prefix=PREFIX, soql_head=HEAD, soql_tail=")")


def test_latency_bound_takes_slower_of_concurrency_and_rate():
    # 1,000 Cerkl calls at 20 per second take 50 s; 8 at once at 50 ms would take 6.25 s.
    bound = latency_bound_seconds(
        salesforce_calls=100,
        cerkl_calls=1_000,
        latency_seconds=0.05,
        cerkl_concurrency=8,
        cerkl_rate=20,
    )
    assert bound == pytest.approx(50 + 5)
    fast = latency_bound_seconds(
        salesforce_calls=0,
        cerkl_calls=1_000,
        latency_seconds=0.05,
        cerkl_concurrency=8,
        cerkl_rate=1_000,
    )
    assert fast == pytest.approx(6.25)


def test_latency_bound_rejects_zero_concurrency():
    with pytest.raises(ValueError, match="cerkl_concurrency"):
        latency_bound_seconds(
            salesforce_calls=1,
            cerkl_calls=1,
            latency_seconds=0.05,
            cerkl_concurrency=0,
            cerkl_rate=20,
        )
