"""Endpoint keys of Salesforce requests, and the session adapter that counts them.

An endpoint key is ``"<METHOD> <path>"`` with the variable parts of the path replaced:

- an API version segment such as ``v59.0`` becomes ``vXX.X``;
- the version segment of SOAP and Bulk 1.0 paths (``/services/Soap/u/59.0``,
  ``/services/async/59.0``) becomes ``{version}``;
- a record Id, job Id or query locator segment becomes ``{id}``. An Id is 15 or 18 letters
  and digits with at least one digit, and a locator is an Id followed by ``-<offset>``. By
  position, the segment after ``query``, ``queryAll`` and ``jobs/ingest`` is an Id, and so
  is the segment after ``sobjects/<sObject>`` (``sobjects/<sObject>/<field>/<value>``: the
  value) unless it is ``describe``, ``updated`` or ``deleted``.

sObject and field names stay literal, and the query string and a trailing slash are dropped
(``/services/data/``, the list of API versions, keeps its slash).
Examples: ``GET /services/data/vXX.X/query``, ``GET /services/data/vXX.X/query/{id}``,
``PATCH /services/data/vXX.X/composite/sobjects/Contact/Cerkl_Subscriber_Id__c``,
``POST /services/Soap/u/{version}``. The sandbox server counts requests under the same keys,
so a test can compare the client's counts with the server's.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter

_API_VERSION_SEGMENT = re.compile(r"^v\d+\.\d+$")
_PLAIN_VERSION_SEGMENT = re.compile(r"^\d+\.\d+$")
_ID_SEGMENT = re.compile(r"^(?=[A-Za-z0-9]*[0-9])[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
_LOCATOR_SEGMENT = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?-\d+$")
_API_USAGE = re.compile(r"(?:^|[;\s])api-usage=(\d+)/(\d+)")

# Path segments after which a bare version number (``59.0``) is a version segment.
_VERSIONED_PARENTS = frozenset({"u", "m", "c", "T", "async"})
_QUERY_RESOURCES = frozenset({"query", "queryAll"})
_VERSIONS_PATH = "/services/data/"
_SOBJECT_RESOURCES = frozenset({"describe", "updated", "deleted", ""})


def endpoint_key(method: str, url: str) -> str:
    """Return the endpoint key of a request, following the rules in the module docstring.

    :param method: the HTTP method, in any case.
    :param url: an absolute URL or a path, with or without a query string.
    :return: the key, for example ``GET /services/data/vXX.X/query/{id}``.
    """
    path = urlsplit(url).path
    if path.endswith("/") and path != _VERSIONS_PATH:
        path = path.rstrip("/")
    segments = path.lstrip("/").split("/")
    keyed = list(segments)
    for position, segment in enumerate(segments):
        parent = segments[position - 1] if position else ""
        if _API_VERSION_SEGMENT.match(segment):
            keyed[position] = "vXX.X"
        elif parent in _VERSIONED_PARENTS and _PLAIN_VERSION_SEGMENT.match(segment):
            keyed[position] = "{version}"
        elif segment and (_ID_SEGMENT.match(segment) or _LOCATOR_SEGMENT.match(segment)):
            keyed[position] = "{id}"
    for position in _id_positions(segments):
        if segments[position]:
            keyed[position] = "{id}"
    return f"{method.upper()} /" + "/".join(keyed)


def _id_positions(segments: list[str]) -> list[int]:
    """Return the positions of the REST path segments that are Ids by where they stand."""
    if len(segments) < 4 or segments[:2] != ["services", "data"]:
        return []
    start = 3
    rest = segments[start:]
    positions: list[int] = []
    if len(rest) >= 2 and rest[0] in _QUERY_RESOURCES:
        positions.append(start + 1)
    if len(rest) >= 3 and rest[0] == "sobjects" and rest[2] not in _SOBJECT_RESOURCES:
        positions.append(start + 3 if len(rest) >= 4 and rest[3] else start + 2)
    if len(rest) >= 3 and rest[0] == "jobs" and rest[1] in ("ingest", "query"):
        positions.append(start + 2)
    return positions


ENDPOINT_KEY: Callable[[str, str], str] = endpoint_key


def parse_api_usage(headers: Mapping[str, str]) -> tuple[int, int] | None:
    """Return ``(used, max)`` from a ``Sforce-Limit-Info: api-usage=18/5000`` header, or None."""
    value = headers.get("Sforce-Limit-Info")
    if not value:
        return None
    match = _API_USAGE.search(value)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))


class RequestCounter:
    """Thread-safe count of requests by endpoint key, plus the last reported API usage."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: Counter[str] = Counter()
        self._api_usage: tuple[int, int] | None = None

    def record_request(self, request: requests.PreparedRequest) -> None:
        key = endpoint_key(request.method or "GET", request.url or "")
        with self._lock:
            self._calls[key] += 1

    def record_response(self, response: requests.Response) -> None:
        usage = parse_api_usage(response.headers)
        if usage is not None:
            with self._lock:
                self._api_usage = usage

    def snapshot(self) -> Counter[str]:
        """Return a copy of the counts, safe to read while other threads send requests."""
        with self._lock:
            return Counter(self._calls)

    @property
    def api_usage(self) -> tuple[int, int] | None:
        with self._lock:
            return self._api_usage


class CountingAdapter(BaseAdapter):
    """Transport adapter that counts each request before handing it to the wrapped adapter.

    Counting happens before the request is sent, so a request whose connection drops or
    times out is counted as the server counts it.
    """

    def __init__(self, wrapped: BaseAdapter, counter: RequestCounter) -> None:
        super().__init__()
        self.wrapped = wrapped
        self.counter = counter

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.counter.record_request(request)
        response = self.wrapped.send(request, **kwargs)
        self.counter.record_response(response)
        return response

    def close(self) -> None:
        self.wrapped.close()


def install_request_counter(session: requests.Session, counter: RequestCounter) -> None:
    """Wrap every adapter mounted on ``session`` in a :class:`CountingAdapter`.

    Adapters mounted after this call are not counted, so call it once the session is built.
    """
    for prefix, adapter in list(session.adapters.items()):
        session.mount(prefix, CountingAdapter(adapter, counter))
