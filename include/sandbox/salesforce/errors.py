"""The error type the Salesforce sandbox raises and renders in Salesforce's JSON shape."""

from __future__ import annotations

from typing import Any


class SalesforceApiError(Exception):
    """An API error as Salesforce reports it: HTTP status, error code, message and fields."""

    def __init__(
        self, status: int, error_code: str, message: str, fields: list[str] | None = None
    ) -> None:
        super().__init__(f"{error_code}: {message}")
        self.status = status
        self.error_code = error_code
        self.message = message
        self.fields = list(fields or [])

    def rest_body(self) -> list[dict[str, Any]]:
        """Return the REST error body: a list with one ``errorCode`` entry."""
        entry: dict[str, Any] = {"message": self.message, "errorCode": self.error_code}
        if self.fields:
            entry["fields"] = self.fields
        return [entry]

    def save_result_error(self) -> dict[str, Any]:
        """Return the error entry of a collection or Bulk save result (``statusCode`` key)."""
        return {"statusCode": self.error_code, "message": self.message, "fields": self.fields}


def malformed_query(message: str) -> SalesforceApiError:
    """Build a MALFORMED_QUERY error (HTTP 400)."""
    return SalesforceApiError(400, "MALFORMED_QUERY", message)


def invalid_field(message: str, fields: list[str] | None = None) -> SalesforceApiError:
    """Build an INVALID_FIELD error (HTTP 400)."""
    return SalesforceApiError(400, "INVALID_FIELD", message, fields)


def not_found(message: str = "The requested resource does not exist") -> SalesforceApiError:
    """Build a NOT_FOUND error (HTTP 404)."""
    return SalesforceApiError(404, "NOT_FOUND", message)
