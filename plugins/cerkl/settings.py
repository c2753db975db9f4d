"""Parse a Cerkl connection: its base URL and its extras.

Every extra is a client setting, never an HTTP header: the HTTP provider would send unknown
extras as headers, so :class:`~cerkl.hooks.CerklHook` parses the extras here and rejects
keys it does not know. Headers that must be sent go under the ``headers`` extra.
docs/cerkl-hook.md lists every key with its default.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from cerkl.exceptions import CerklConfigError

#: Maximum ``page_size`` Cerkl accepts on list endpoints.
MAX_PAGE_SIZE = 1000

#: Logical field names the product uses, mapped to Cerkl's API names by default.
DEFAULT_FIELD_NAMES: dict[str, str] = {
    "email": "email",
    "first_name": "first_name",
    "last_name": "last_name",
    "subscriber_status": "subscriber_status",
    "subscriber_privacy_level": "subscriber_privacy_level",
    "engagement_score": "engagement_score",
    "date_created_utc": "date_created_utc",
    "date_modified_utc": "date_modified_utc",
    "date_unsubscribed_utc": "date_unsubscribed_utc",
    "external_id": "external_id",
    "description": "description",
}

JSON_FORM_EXAMPLE = (
    '{"conn_type": "http", "host": "https://api.cerkl.com/v3", "login": "<client id>", '
    '"password": "<client secret>", "extra": {"page_size": 1000}}'
)


@dataclass(frozen=True)
class CerklHookSettings:
    """Client settings read from the connection extras; field names are the extra keys."""

    page_size: int = MAX_PAGE_SIZE
    create_batch_size: int = 100
    requests_per_second: float = 10.0
    max_concurrent_requests: int = 4
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_attempts: int = 6
    retry_deadline_seconds: float = 300.0
    backoff_initial_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    token_path: str = "oauth/Token"
    token_renewal_margin_seconds: float = 300.0
    since_filter_operator: str = "gte"
    field_names: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_FIELD_NAMES))
    new_subscriber_status_id: int | None = None
    new_subscriber_status_description: str = "Email Blasts & News Digests"
    new_subscriber_privacy_level_id: int = 1
    integration_unsubscribe_params: dict[str, str] = field(
        default_factory=lambda: {"source": "integration"}
    )
    headers: dict[str, str] = field(default_factory=dict)
    verify: bool | str = True

    @classmethod
    def from_extras(cls, extras: Mapping[str, Any], *, conn_id: str) -> CerklHookSettings:
        """Build settings from a connection's extras, with defaults for absent keys.

        :param extras: the connection's extra dict.
        :param conn_id: the connection id, named in error messages.
        :return: validated settings.
        :raises CerklConfigError: on an unknown key or an invalid value.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(extras) - known)
        if unknown:
            raise CerklConfigError(
                f"Connection {conn_id!r} has unknown extra keys {unknown}. Known keys: "
                f"{sorted(known)}. Put HTTP headers under the 'headers' extra, e.g. "
                '{"headers": {"Accept-Language": "en_US"}}.'
            )

        values: dict[str, Any] = {}
        for name in ("page_size", "create_batch_size", "max_concurrent_requests", "max_attempts"):
            if name in extras:
                values[name] = _positive_int(extras[name], name, conn_id)
        for name in (
            "requests_per_second",
            "connect_timeout",
            "read_timeout",
            "retry_deadline_seconds",
            "backoff_initial_seconds",
            "backoff_max_seconds",
        ):
            if name in extras:
                values[name] = _positive_float(extras[name], name, conn_id)
        if "token_renewal_margin_seconds" in extras:
            values["token_renewal_margin_seconds"] = _non_negative_float(
                extras["token_renewal_margin_seconds"], "token_renewal_margin_seconds", conn_id
            )
        for name in ("token_path", "new_subscriber_status_description"):
            if name in extras:
                values[name] = _non_empty_str(extras[name], name, conn_id)
        if "new_subscriber_status_id" in extras and extras["new_subscriber_status_id"] is not None:
            values["new_subscriber_status_id"] = _positive_int(
                extras["new_subscriber_status_id"], "new_subscriber_status_id", conn_id
            )
        if "new_subscriber_privacy_level_id" in extras:
            values["new_subscriber_privacy_level_id"] = _positive_int(
                extras["new_subscriber_privacy_level_id"],
                "new_subscriber_privacy_level_id",
                conn_id,
            )
        if "since_filter_operator" in extras:
            operator = extras["since_filter_operator"]
            if operator not in ("gt", "gte"):
                raise CerklConfigError(
                    f"Connection {conn_id!r} extra 'since_filter_operator' is {operator!r}; "
                    "use 'gte' (default, re-reads records modified in the watermark's second) "
                    "or 'gt'."
                )
            values["since_filter_operator"] = operator
        if "field_names" in extras:
            values["field_names"] = _field_names(extras["field_names"], conn_id)
        for name in ("integration_unsubscribe_params", "headers"):
            if name in extras:
                values[name] = _str_mapping(extras[name], name, conn_id)
        if "verify" in extras:
            verify = extras["verify"]
            if not isinstance(verify, (bool, str)) or verify == "":
                raise CerklConfigError(
                    f"Connection {conn_id!r} extra 'verify' is {verify!r}; use true, false or "
                    "the path of a CA bundle file."
                )
            values["verify"] = verify

        settings = cls(**values)
        if settings.page_size > MAX_PAGE_SIZE:
            raise CerklConfigError(
                f"Connection {conn_id!r} extra 'page_size' is {settings.page_size}; Cerkl "
                f"accepts at most {MAX_PAGE_SIZE}."
            )
        if settings.backoff_max_seconds < settings.backoff_initial_seconds:
            raise CerklConfigError(
                f"Connection {conn_id!r} extra 'backoff_max_seconds' "
                f"({settings.backoff_max_seconds}) is below 'backoff_initial_seconds' "
                f"({settings.backoff_initial_seconds}); raise it or lower the initial wait."
            )
        return settings

    @property
    def timeout(self) -> tuple[float, float]:
        """The ``(connect, read)`` timeout pair passed to requests, in seconds."""
        return (self.connect_timeout, self.read_timeout)


def base_url_from_connection(conn_type: str | None, host: str | None, *, conn_id: str) -> str:
    """Return the Cerkl base URL of a connection, which must be its full ``host``.

    The HTTP provider's URI form (``AIRFLOW_CONN_CERKL_DEFAULT='https://...'``) reads the
    scheme as the connection type and loses it from the URL, so an ``https`` base URL would
    silently be called over another scheme. This function rejects that shape.

    :param conn_type: the connection's type; must be ``http``.
    :param host: the connection's host, the whole base URL such as
        ``https://api.cerkl.com/v3``.
    :param conn_id: the connection id, named in error messages.
    :return: the base URL without a trailing slash.
    :raises CerklConfigError: when the connection is not in the expected shape.
    """
    fix = (
        f"Define it in JSON form, for example AIRFLOW_CONN_{conn_id.upper()}='{JSON_FORM_EXAMPLE}'."
    )
    if conn_type not in ("http", None, ""):
        raise CerklConfigError(
            f"Connection {conn_id!r} has conn_type {conn_type!r}, which the HTTP provider's URI "
            "form produces from the URL scheme and which drops https from the base URL. "
            f"Use conn_type 'http' with the full base URL as host. {fix}"
        )
    if not host or "://" not in host:
        raise CerklConfigError(
            f"Connection {conn_id!r} has host {host!r}; the host must be the full base URL "
            f"including the scheme, such as 'https://api.cerkl.com/v3'. {fix}"
        )
    scheme = host.split("://", 1)[0].lower()
    if scheme not in ("http", "https"):
        raise CerklConfigError(
            f"Connection {conn_id!r} host {host!r} has scheme {scheme!r}; use https:// (or "
            f"http:// for a local sandbox). {fix}"
        )
    return host.rstrip("/")


def _positive_int(value: Any, name: str, conn_id: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CerklConfigError(
            f"Connection {conn_id!r} extra {name!r} is {value!r}; use a whole number of 1 or more."
        )
    return value


def _positive_float(value: Any, name: str, conn_id: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise CerklConfigError(
            f"Connection {conn_id!r} extra {name!r} is {value!r}; use a number above 0."
        )
    if not math.isfinite(value):
        raise CerklConfigError(
            f"Connection {conn_id!r} extra {name!r} is {value!r}; use a finite number."
        )
    return float(value)


def _non_negative_float(value: Any, name: str, conn_id: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise CerklConfigError(
            f"Connection {conn_id!r} extra {name!r} is {value!r}; use a number of 0 or more."
        )
    return float(value)


def _non_empty_str(value: Any, name: str, conn_id: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CerklConfigError(
            f"Connection {conn_id!r} extra {name!r} is {value!r}; use a non-empty string."
        )
    return value


def _str_mapping(value: Any, name: str, conn_id: str) -> dict[str, str]:
    # Values are left out of the message because headers may carry credentials.
    if not isinstance(value, Mapping):
        raise CerklConfigError(
            f"Connection {conn_id!r} extra {name!r} is a {type(value).__name__}; use a JSON "
            "object of strings to strings."
        )
    invalid = sorted(
        str(k) for k, v in value.items() if not isinstance(k, str) or not isinstance(v, str)
    )
    if invalid:
        raise CerklConfigError(
            f"Connection {conn_id!r} extra {name!r} has values that are not strings under "
            f"the keys {invalid}; use a JSON object of strings to strings."
        )
    return dict(value)


def _field_names(value: Any, conn_id: str) -> dict[str, str]:
    overrides = _str_mapping(value, "field_names", conn_id)
    unknown = sorted(set(overrides) - set(DEFAULT_FIELD_NAMES))
    if unknown:
        raise CerklConfigError(
            f"Connection {conn_id!r} extra 'field_names' has unknown keys {unknown}. Known "
            f"keys: {sorted(DEFAULT_FIELD_NAMES)}."
        )
    merged = dict(DEFAULT_FIELD_NAMES)
    merged.update(overrides)
    return merged
