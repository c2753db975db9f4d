"""Exceptions raised by the Cerkl API client.

Messages carry HTTP statuses, Cerkl error codes, request paths and ids. They never carry
a token, a client secret or an email address: the server's own message is passed through
:func:`cerkl.redaction.redact_emails` first.
"""

from __future__ import annotations


class CerklError(Exception):
    """Base class of every error the Cerkl client raises."""


class CerklConfigError(CerklError, ValueError):
    """The Airflow connection or one of its extras is invalid; the message names the fix."""


class CerklApiError(CerklError):
    """Cerkl responded to a request with an HTTP error that is not retried.

    :param status: HTTP status code of the response.
    :param code: Cerkl's error code (``error.code`` in the body), or ``None`` when the body
        had none.
    :param message: Cerkl's error message with email addresses redacted.
    :param method: HTTP method of the request.
    :param path: request path relative to the base URL, without the query string.
    """

    def __init__(
        self, status: int, code: str | None, message: str, *, method: str, path: str
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.method = method
        self.path = path
        super().__init__(
            f"Cerkl API {method} {path} failed with HTTP {status} {code or 'no error code'}: "
            f"{message or 'no message'}"
        )


class CerklAuthError(CerklApiError):
    """Cerkl rejected the credentials or the token (HTTP 401 or 403)."""


class CerklNotFoundError(CerklApiError):
    """The addressed resource does not exist (HTTP 404)."""


class CerklConflictError(CerklApiError):
    """The request conflicts with existing data (HTTP 409), e.g. ``DUPLICATE_EMAIL``."""


class CerklRetryError(CerklError):
    """A retryable failure (429, 5xx, timeout, dropped connection) outlasted the retry budget.

    :param method: HTTP method of the request.
    :param path: request path relative to the base URL, without the query string.
    :param attempts: number of attempts made.
    :param reason: the last failure, e.g. ``"HTTP 503 UNAVAILABLE"`` or ``"ReadTimeout"``.
    """

    def __init__(self, message: str, *, method: str, path: str, attempts: int, reason: str):
        self.method = method
        self.path = path
        self.attempts = attempts
        self.reason = reason
        super().__init__(message)


def api_error_class(status: int) -> type[CerklApiError]:
    """Return the :class:`CerklApiError` subclass for an HTTP status."""
    if status in (401, 403):
        return CerklAuthError
    if status == 404:
        return CerklNotFoundError
    if status == 409:
        return CerklConflictError
    return CerklApiError
