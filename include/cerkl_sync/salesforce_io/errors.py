"""Exceptions and per-record results of the Salesforce access layer.

No message built here contains a value from a record: messages name sObjects, fields,
record Ids, positions, counts, endpoint keys and Salesforce error codes only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class WriteResult:
    """Outcome of one record of an sObject Collections write.

    ``error_message`` is Salesforce's own text. It may quote a field value (an email address,
    for instance), so callers log ``error_code`` and keep the message out of logs.
    """

    index: int
    success: bool
    id: str | None
    created: bool | None
    error_code: str | None
    error_message: str | None


class SalesforceSyncError(Exception):
    """Base class of every error the Salesforce access layer raises.

    :ivar partial_results: results of the records that a write call completed before it
        raised, in input order. Empty for reads and when nothing completed.
    """

    def __init__(self, message: str, *, partial_results: Sequence[WriteResult] = ()) -> None:
        super().__init__(message)
        self.partial_results: list[WriteResult] = list(partial_results)


class SalesforceApiLimitError(SalesforceSyncError):
    """Salesforce returned ``REQUEST_LIMIT_EXCEEDED``: the org's API allocation is spent.

    This is systemic, so the task should stop. Retrying only spends more of the allocation.
    """


class SalesforceAuthError(SalesforceSyncError):
    """Login failed, or the session expired again right after a fresh login."""


class SalesforceRequestError(SalesforceSyncError):
    """A request that Salesforce rejected, or that still failed after the allowed retries.

    :ivar endpoint: the endpoint key of the request, such as
        ``GET /services/data/vXX.X/query``.
    :ivar status: the HTTP status, or None when no response arrived.
    :ivar error_code: Salesforce's ``errorCode``, or None when the body had none.
    """

    def __init__(
        self,
        message: str,
        *,
        endpoint: str,
        status: int | None,
        error_code: str | None,
        partial_results: Sequence[WriteResult] = (),
    ) -> None:
        super().__init__(message, partial_results=partial_results)
        self.endpoint = endpoint
        self.status = status
        self.error_code = error_code


class SalesforceWriteOutcomeUnknownError(SalesforceRequestError):
    """A write whose outcome is unknown, so it is not re-sent.

    It is raised for a create request whose connection dropped or that got a 5xx, and for a
    Bulk API 2.0 ingest job whose final state or results could not be read or that did not
    finish in time. The records may or may not be written now. ``record_indices`` lists the
    input positions of the records in that request or job. Callers that need creates to be
    safe to repeat use ``upsert`` on an external Id field instead.
    """

    def __init__(
        self,
        message: str,
        *,
        endpoint: str,
        status: int | None,
        error_code: str | None,
        record_indices: Sequence[int],
        partial_results: Sequence[WriteResult] = (),
    ) -> None:
        super().__init__(
            message,
            endpoint=endpoint,
            status=status,
            error_code=error_code,
            partial_results=partial_results,
        )
        self.record_indices = list(record_indices)
