"""Route the product's Salesforce traffic to the local sandbox when it is configured.

Set ``CERKL_SYNC_SALESFORCE_SANDBOX_URL`` (for example ``http://127.0.0.1:8701``) and every
request the ``requests.Session`` from :func:`build_salesforce_session` sends to
``https://*.salesforce.com`` (SOAP and OAuth logins, REST, Bulk API 2.0) goes to that URL
instead, with the same path and query. Requests to other hosts pass through unchanged. When
the setting is unset or empty the session is a plain ``requests.Session`` for production.
"""

from __future__ import annotations

import logging
import os
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

logger = logging.getLogger(__name__)

SANDBOX_URL_ENV = "CERKL_SYNC_SALESFORCE_SANDBOX_URL"
SALESFORCE_DOMAIN = "salesforce.com"


def parse_sandbox_url(value: str) -> tuple[str, str]:
    """Validate a sandbox URL and return its (scheme, netloc).

    :param value: ``http://host:port`` or ``https://host:port``, with no path, query or
        credentials (a trailing ``/`` is allowed).
    :raises ValueError: naming the value and the expected form.
    """
    expected = "expected http://HOST:PORT or https://HOST:PORT, for example http://127.0.0.1:8701"
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"invalid {SANDBOX_URL_ENV} {value!r}: {expected}") from exc
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username
        or parts.password
    ):
        raise ValueError(f"invalid {SANDBOX_URL_ENV} {value!r}: {expected}")
    netloc = parts.hostname if port is None else f"{parts.hostname}:{port}"
    if ":" in parts.hostname:
        netloc = f"[{parts.hostname}]" + (f":{port}" if port is not None else "")
    return parts.scheme, netloc


def is_salesforce_url(url: str) -> bool:
    """Return True for an ``https`` URL on ``salesforce.com`` or one of its subdomains."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return parts.scheme == "https" and (
        host == SALESFORCE_DOMAIN or host.endswith("." + SALESFORCE_DOMAIN)
    )


class SalesforceSandboxAdapter(HTTPAdapter):
    """Transport adapter that sends ``https://*.salesforce.com`` requests to the sandbox.

    The scheme, host and port are replaced by the sandbox URL's, and the path and query stay.
    Other requests are sent unchanged. Certificate checks stay on for every https request.
    """

    def __init__(self, sandbox_url: str, **kwargs: object) -> None:
        """Create the adapter.

        :param sandbox_url: the sandbox base URL, such as ``http://127.0.0.1:8701``.
        :raises ValueError: when ``sandbox_url`` is malformed.
        """
        self.sandbox_scheme, self.sandbox_netloc = parse_sandbox_url(sandbox_url)
        super().__init__(**kwargs)  # type: ignore[arg-type]

    def rewrite_url(self, url: str) -> str:
        """Return ``url`` pointed at the sandbox when it is a Salesforce URL, else unchanged."""
        if not is_salesforce_url(url):
            return url
        parts = urlsplit(url)
        return urlunsplit(
            (self.sandbox_scheme, self.sandbox_netloc, parts.path, parts.query, parts.fragment)
        )

    def send(
        self, request: requests.PreparedRequest, *args: object, **kwargs: object
    ) -> requests.Response:
        """Send the request, rewritten to the sandbox when it targets Salesforce."""
        if request.url is not None:
            rewritten = self.rewrite_url(request.url)
            if rewritten != request.url:
                # The path only: a query string can hold SOQL with emails and names.
                logger.debug(
                    "Routing a Salesforce request to the sandbox: %s", urlsplit(request.url).path
                )
                request.url = rewritten
        return super().send(request, *args, **kwargs)  # type: ignore[arg-type]


def build_salesforce_session(sandbox_url: str | None = None) -> requests.Session:
    """Build the ``requests.Session`` the Salesforce client uses.

    :param sandbox_url: the sandbox base URL; None reads ``CERKL_SYNC_SALESFORCE_SANDBOX_URL``.
    :return: a session routing Salesforce traffic to the sandbox, or a plain session when
        the URL is unset or empty.
    :raises ValueError: when the URL is malformed.
    """
    if sandbox_url is None:
        sandbox_url = os.environ.get(SANDBOX_URL_ENV, "")
    session = requests.Session()
    if not sandbox_url.strip():
        return session
    adapter = SalesforceSandboxAdapter(sandbox_url)
    session.mount("https://", adapter)
    logger.info("Salesforce requests go to the sandbox at %s", sandbox_url)
    return session
