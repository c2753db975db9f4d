"""Salesforce access layer of the sync: every Salesforce request of the tasks goes through here.

See :class:`SalesforceClient` for queries, sObject Collections writes and describes, and
``docs/salesforce-access.md`` for the retry, session and counting rules.
"""

from __future__ import annotations

from include.cerkl_sync.salesforce_io.client import (
    COLLECTION_BATCH_SIZE,
    TRANSIENT_ERROR_CODES,
    SalesforceClient,
)
from include.cerkl_sync.salesforce_io.endpoints import ENDPOINT_KEY, endpoint_key, parse_api_usage
from include.cerkl_sync.salesforce_io.errors import (
    SalesforceApiLimitError,
    SalesforceAuthError,
    SalesforceRequestError,
    SalesforceSyncError,
    SalesforceWriteOutcomeUnknownError,
    WriteResult,
)
from include.cerkl_sync.salesforce_io.soql import (
    MAX_REQUEST_URI_BYTES,
    MAX_STATEMENT_CHARS,
    pack_in_statements,
)

__all__ = [
    "COLLECTION_BATCH_SIZE",
    "ENDPOINT_KEY",
    "MAX_REQUEST_URI_BYTES",
    "MAX_STATEMENT_CHARS",
    "TRANSIENT_ERROR_CODES",
    "SalesforceApiLimitError",
    "SalesforceAuthError",
    "SalesforceClient",
    "SalesforceRequestError",
    "SalesforceSyncError",
    "SalesforceWriteOutcomeUnknownError",
    "WriteResult",
    "endpoint_key",
    "pack_in_statements",
    "parse_api_usage",
]
