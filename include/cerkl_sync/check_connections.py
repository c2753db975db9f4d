"""Check the Cerkl and Salesforce credentials from a shell.

Usage::

    python -m include.cerkl_sync.check_connections [--cerkl-conn-id ID] [--salesforce-conn-id ID]

Prints one line per connection on stdout, ``<conn id>: OK <details>`` or ``<conn id>:
FAILED <reason>``, and exits with status 1 when any check fails. Log records go to stderr,
at WARNING unless ``--verbose`` is given. Connections come from Airflow
(environment variables ``AIRFLOW_CONN_<ID>``, a secrets backend or the metadata database).
Salesforce requests go through :func:`include.cerkl_sync.salesforce_transport.
build_salesforce_session`, which routes them to the local sandbox when
``CERKL_SYNC_SALESFORCE_SANDBOX_URL`` is set. No line contains a password, secret, security
token, access token or email address.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

CERKL_CONN_ID = "cerkl_default"
SALESFORCE_CONN_ID = "salesforce_default"

# Connection extras whose values are credentials and must never be printed.
_SECRET_EXTRA_KEYS = (
    "security_token",
    "consumer_secret",
    "client_secret",
    "private_key",
    "session_id",
    "password",
)


def check_cerkl(conn_id: str) -> tuple[bool, str]:
    """Fetch a Cerkl token and list the privacy levels through :class:`CerklHook`.

    :return: ``(ok, message)``; the message contains no secret.
    """
    from cerkl.hooks import CerklHook

    hook = CerklHook(cerkl_conn_id=conn_id)
    try:
        return hook.test_connection()
    finally:
        hook.close()


def check_salesforce(conn_id: str) -> tuple[bool, str]:
    """Describe the Account object through the provider's ``SalesforceHook``.

    :return: ``(ok, message)``; known secrets of the connection are masked in the message.
    """
    from airflow.providers.salesforce.hooks.salesforce import SalesforceHook

    from include.cerkl_sync.salesforce_transport import build_salesforce_session

    session = build_salesforce_session()
    hook = SalesforceHook(salesforce_conn_id=conn_id, session=session)
    try:
        ok, message = hook.test_connection()
        secrets = _connection_secrets(hook, conn_id)
    finally:
        session.close()
    if ok:
        return True, f"Salesforce accepted the credentials of connection {conn_id!r}"
    return False, mask_secrets(message, secrets)


def _connection_secrets(hook: Any, conn_id: str) -> list[str]:
    try:
        conn = hook.get_connection(conn_id)
    except Exception:  # noqa: BLE001 - a missing connection already failed the check
        return []
    extras = conn.extra_dejson if isinstance(conn.extra_dejson, dict) else {}
    values = [conn.password] + [extras.get(key) for key in _SECRET_EXTRA_KEYS]
    return [value for value in values if isinstance(value, str) and value]


def mask_secrets(message: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret (3 characters or longer) with ``***``.

    Email addresses are replaced with ``<redacted>`` as well.
    """
    from cerkl.redaction import redact_emails

    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 3:
            message = message.replace(secret, "***")
    return redact_emails(message)


def run_checks(
    checks: Sequence[tuple[str, Callable[[str], tuple[bool, str]]]],
) -> list[tuple[bool, str]]:
    """Run each ``(conn_id, check)`` and return ``(ok, output line)`` per connection.

    An exception raised by a check counts as a failure with the exception's type and text.
    """
    results = []
    for conn_id, check in checks:
        try:
            ok, message = check(conn_id)
        except Exception as exc:  # noqa: BLE001 - every failure is reported, never raised
            ok, message = False, mask_secrets(f"{type(exc).__name__}: {exc}", [])
        results.append((ok, f"{conn_id}: {'OK' if ok else 'FAILED'} {message}"))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Check both connections, print one line each and return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m include.cerkl_sync.check_connections",
        description="Check the Cerkl and Salesforce connections' credentials.",
    )
    parser.add_argument(
        "--cerkl-conn-id", default=CERKL_CONN_ID, help="Cerkl connection id to check."
    )
    parser.add_argument(
        "--salesforce-conn-id",
        default=SALESFORCE_CONN_ID,
        help="Salesforce connection id to check.",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="Log at INFO instead of WARNING (on stderr)."
    )
    args = parser.parse_args(argv)

    _make_plugins_importable()
    _send_logs_to_stderr(logging.INFO if args.verbose else logging.WARNING)
    results = run_checks(
        [(args.cerkl_conn_id, check_cerkl), (args.salesforce_conn_id, check_salesforce)]
    )
    for _, line in results:
        print(line)
    return 0 if all(ok for ok, _ in results) else 1


def _send_logs_to_stderr(level: int) -> None:
    """Keep stdout for the result lines: move root log handlers on stdout to stderr.

    Airflow configures logging when it is first imported, so this imports the hook module
    (and with it Airflow) before changing the handlers.
    """
    import cerkl.hooks  # noqa: F401 - configures Airflow's logging

    root = logging.getLogger()
    root.setLevel(level)
    for handler in root.handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)


def _make_plugins_importable() -> None:
    """Put the repository's ``plugins/`` on ``sys.path`` when ``cerkl`` is not importable.

    Airflow adds its plugins folder to ``sys.path`` itself; a shell in a checkout of the
    repository does not, so the command falls back to ``<repository>/plugins``.
    """
    if importlib.util.find_spec("cerkl") is None:
        sys.path.append(str(Path(__file__).resolve().parents[2] / "plugins"))


if __name__ == "__main__":
    sys.exit(main())
