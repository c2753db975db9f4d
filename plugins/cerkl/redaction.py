"""Keep email addresses and filter values out of log lines and error messages.

A look-up by email sends the address in the ``filters_json`` query parameter, and urllib3
logs every request line, query string included, at DEBUG. :func:`install_log_redaction`
adds a filter to urllib3's connection-pool logger that replaces query strings with
``?<redacted>`` before the record reaches any handler.
"""

from __future__ import annotations

import logging
import re

REDACTED = "<redacted>"

# An address as it appears in plain text and in a URL-encoded query (`@` written `%40`).
_EMAIL_PATTERN = re.compile(r"[^\s\"'<>,;:(){}\[\]&=?/]+(?:@|%40)[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_QUERY_PATTERN = re.compile(r"\?[^\s\"']*")

_URLLIB3_LOGGERS = ("urllib3.connectionpool",)


def redact_emails(text: str) -> str:
    """Replace every email address in ``text`` (plain or URL-encoded) with ``<redacted>``."""
    return _EMAIL_PATTERN.sub(REDACTED, text)


def redact_query(text: str) -> str:
    """Replace every query string (``?`` up to the next space or quote) with ``?<redacted>``."""
    return _QUERY_PATTERN.sub(f"?{REDACTED}", text)


class QueryRedactingFilter(logging.Filter):
    """Logging filter that removes query strings and email addresses from a record.

    The record is rendered once, cleaned, and stored back with no arguments, so handlers
    and formatters downstream see only the cleaned text.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_emails(redact_query(message))
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True


_FILTER = QueryRedactingFilter()


def install_log_redaction() -> None:
    """Add :class:`QueryRedactingFilter` to urllib3's connection-pool logger (idempotent)."""
    for name in _URLLIB3_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
