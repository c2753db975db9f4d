"""No secret, token or email address in any log line or error; counters match the sandbox."""

from __future__ import annotations

import base64
import logging
from collections import Counter
from urllib.parse import quote, quote_plus

import pytest
import structlog
from cerkl.exceptions import CerklError

from tests.plugins.cerkl.helpers import CLIENT_ID, CLIENT_SECRET, subscriber


class CapturingHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        line = f"{record.name} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + logging.Formatter().formatException(record.exc_info)
        self.lines.append(line)


@pytest.fixture
def capture_all_loggers(capfd):
    """Capture every log line at DEBUG: stdlib loggers and Airflow's structlog output.

    One DEBUG handler goes on the root logger and on every existing logger (urllib3,
    requests, the HTTP provider and the hook included). Airflow's own hook loggers write
    through structlog straight to stdout, so structlog is lowered to DEBUG and the
    process's stdout and stderr are captured as well.
    """
    handler = CapturingHandler()
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    for name in ("urllib3", "urllib3.connectionpool", "requests", "airflow.providers.http"):
        loggers.append(logging.getLogger(name))
    saved = [(logger, logger.level, logger.disabled) for logger in loggers]
    saved_structlog = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        logger.disabled = False
        logger.addHandler(handler)

    def text() -> str:
        output = capfd.readouterr()
        handler.lines.extend([output.out, output.err])
        return "\n".join(handler.lines)

    yield text
    for logger, level, disabled in saved:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.disabled = disabled
    structlog.configure(**saved_structlog)


def forbidden_variants(value: str) -> set[str]:
    return {value, quote(value), quote_plus(value), quote(value, safe="")}


def test_calls_log_no_secrets_or_emails(make_hook, cerkl_controls, capture_all_loggers):
    hook = make_hook(extras={"create_batch_size": 2})
    tokens: list[str] = []
    fetch_token = hook._fetch_token

    def recording_fetch_token(config):
        token = fetch_token(config)
        tokens.append(token.value)
        return token

    hook._fetch_token = recording_fetch_token
    seeded = cerkl_controls.seed({"subscribers": [subscriber(1), subscriber(2)]})["subscribers"]
    emails = ["person1@example.com", "person2@example.com", "fresh.one@example.com",
              "Fresh.Two@Example.com", "broken@@example.com"]  # fmt: skip
    errors: list[str] = []

    def call(function, *args, **kwargs):
        try:
            return function(*args, **kwargs)
        except CerklError as exc:
            errors.append(f"{exc!s} {exc!r}")
            return None

    call(hook.test_connection)
    cerkl_controls.add_fault(path="^/v3/subscriber$", method="POST", status=503, count=1)
    results = call(
        hook.create_subscribers,
        [{"email": email, "first_name": "Name"} for email in emails[:5]],
    )
    cerkl_controls.add_fault(path="^/v3/subscriber$", method="GET", action="drop", count=1)
    call(hook.find_subscriber_by_email, emails[2])
    call(hook.find_subscriber_by_email, "missing.person@example.com")
    emails.append("missing.person@example.com")
    call(hook.get_subscriber, seeded[0])
    call(hook.update_subscriber, seeded[1], {"email": emails[0]})  # 409 DUPLICATE_EMAIL
    call(hook.update_subscriber, seeded[1], {"email": "renamed@example.com"})
    emails.append("renamed@example.com")
    call(hook.update_subscriber, seeded[1], {"email": "not an email"})
    cerkl_controls.expire_tokens()
    call(hook.unsubscribe_subscriber, seeded[0])
    call(hook.get_unsubscribe, seeded[0])
    list(hook.iter_unsubscribes())
    list(hook.iter_subscribers())
    call(hook.get_subscriber_interests, seeded[1])
    segment = call(hook.create_segment, "Campaign", "SF_701000000000009AAA")
    call(hook.add_segment_member, segment["id"], seeded[1])
    list(hook.iter_segment_members(segment["id"]))
    call(hook.remove_segment_member, segment["id"], seeded[1])
    cerkl_controls.add_fault(path="^/v3/segment$", method="GET", status=429, retry_after=1, count=1)
    call(hook.find_segment_by_external_id, "SF_701000000000009AAA")
    call(hook.get_subscriber, 99999)

    text = capture_all_loggers() + "\n".join(errors)
    assert results is not None and all(
        r.error_message is None or "@" not in r.error_message for r in results
    )
    assert len(tokens) == 2
    secrets = [CLIENT_SECRET, base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()]
    for forbidden in [*secrets, *tokens]:
        assert forbidden not in text
    for email in emails:
        for variant in forbidden_variants(email) | forbidden_variants(email.lower()):
            assert variant not in text, f"email leaked in the form {variant!r}"
    assert "@" not in text.replace("<redacted>", "")
    assert "Fetched a Cerkl access token" in text
    assert "Sending Cerkl request GET subscriber" in text
    assert "/v3/subscriber?<redacted>" in text


def test_api_calls_equal_sandbox_counters(make_hook, cerkl_controls):
    hook = make_hook()
    [subscriber_id] = cerkl_controls.seed({"subscribers": [subscriber(1)]})["subscribers"]
    cerkl_controls.add_fault(path="^/v3/subscriber/", method="GET", status=503, count=2)
    cerkl_controls.add_fault(path="^/v3/segment$", method="POST", action="drop", count=1)

    hook.get_subscriber(subscriber_id)
    hook.update_subscriber(subscriber_id, {"first_name": "Changed"})
    hook.create_subscribers([{"email": "c@example.com", "first_name": "C"}])
    segment = hook.create_segment("Counted", "SF_701000000000010AAA")
    hook.add_segment_member(segment["id"], subscriber_id)
    hook.remove_segment_member(segment["id"], subscriber_id)
    cerkl_controls.expire_tokens()
    list(hook.iter_subscribers(page_size=1))
    hook.unsubscribe_subscriber(subscriber_id)

    sandbox_counts = Counter(cerkl_controls.counters()["by_endpoint"])
    assert hook.api_calls == sandbox_counts
    assert hook.api_calls["GET subscriber/{id}"] == 4
    assert hook.api_calls["POST oauth/Token"] == 2
