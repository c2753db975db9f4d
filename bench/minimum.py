"""Lower bounds of a sync run: the fewest Salesforce calls and the latency-bound wall time.

The bounds count what the Salesforce REST API allows at best, login and describe calls
excluded:

- a query returns at most 2,000 rows a page, so ``rows`` rows take ``ceil(rows / 2000)`` calls;
- a look-up of many keys sends them in ``IN`` lists, and a request URI is limited to 16,384
  bytes. So the keys take at least ``ceil(encoded key bytes / bytes left in one URI)``
  calls, which is ``ceil(keys / k)`` with ``k`` the most keys whose ``IN`` clause fits;
- sObject Collections write at most 200 records a request: ``ceil(rows / 200)`` calls per
  kind of write (create, update, upsert, delete);
- a Bulk API 2.0 job costs 4 calls (create, upload, close, poll) plus one per result page, so
  it is the bound instead when that is cheaper.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from urllib.parse import quote_plus

QUERY_PAGE_ROWS = 2_000
WRITE_BATCH_ROWS = 200
MAX_REQUEST_URI_BYTES = 16_384
BULK_JOB_CALLS = 4
BULK_RESULT_PAGE_ROWS = 50_000


def query_calls(rows: int) -> int:
    """Return the fewest query calls that read ``rows`` rows (one call for none)."""
    return max(1, math.ceil(rows / QUERY_PAGE_ROWS))


def write_calls(rows: int, *, bulk: bool = True) -> int:
    """Return the fewest calls that write ``rows`` records of one kind of write.

    :param bulk: also consider one Bulk API 2.0 job and take it when it is cheaper.
    """
    if rows <= 0:
        return 0
    rest = math.ceil(rows / WRITE_BATCH_ROWS)
    if not bulk:
        return rest
    return min(rest, BULK_JOB_CALLS + math.ceil(rows / BULK_RESULT_PAGE_ROWS))


def lookup_calls(keys: Iterable[str], *, uri_prefix: str, soql_head: str, soql_tail: str) -> int:
    """Return the fewest ``IN`` look-up calls for ``keys``, each within one request URI.

    :param keys: the distinct values to look up.
    :param uri_prefix: the request URL before the encoded statement, e.g.
        ``https://host/services/data/v59.0/query?q=``.
    :param soql_head: the statement before the ``IN`` list, e.g. ``SELECT Id FROM Contact
        WHERE Email IN (``.
    :param soql_tail: the statement after the list, usually ``)``.
    :return: 0 for no keys.
    :raises ValueError: when one key alone does not fit a request URI.
    """
    fixed = len(uri_prefix) + len(quote_plus(soql_head + soql_tail, safe=""))
    room = MAX_REQUEST_URI_BYTES - fixed
    total = 0
    for key in set(keys):
        escaped = key.replace("\\", "\\\\").replace("'", "\\'")
        size = len(quote_plus(f"'{escaped}',", safe=""))
        if size > room:
            raise ValueError(
                f"a key of {size} encoded bytes does not fit the {room} bytes left in one "
                "request URI: shorten the SOQL statement"
            )
        total += size
    return math.ceil(total / room) if total else 0


def keys_per_lookup(key: str, *, uri_prefix: str, soql_head: str, soql_tail: str) -> int:
    """Return ``k``, the most keys of the size of ``key`` (URL-encoded) one ``IN`` call holds."""
    fixed = len(uri_prefix) + len(quote_plus(soql_head + soql_tail, safe=""))
    return (MAX_REQUEST_URI_BYTES - fixed) // len(quote_plus(f"'{key}',", safe=""))


def latency_bound_seconds(
    *,
    salesforce_calls: int,
    cerkl_calls: int,
    latency_seconds: float,
    cerkl_concurrency: int,
    cerkl_rate: float,
) -> float:
    """Return the wall time the calls need at the least, from latency, concurrency and rate.

    ``max(cerkl_calls * latency / concurrency, cerkl_calls / rate)
    + salesforce_calls * latency``: Cerkl calls overlap up to the concurrency and are held to
    the rate, and Salesforce calls are sent one after another.
    """
    if cerkl_concurrency < 1 or cerkl_rate <= 0:
        raise ValueError(
            f"invalid cerkl_concurrency={cerkl_concurrency!r} or cerkl_rate={cerkl_rate!r}: "
            "both must be positive"
        )
    cerkl = max(cerkl_calls * latency_seconds / cerkl_concurrency, cerkl_calls / cerkl_rate)
    return cerkl + salesforce_calls * latency_seconds
