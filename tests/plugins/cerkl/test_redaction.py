"""Email and query-string redaction for messages and urllib3 log lines."""

from __future__ import annotations

import logging

from cerkl.redaction import install_log_redaction, redact_emails, redact_query


def test_redact_emails_plain_and_url_encoded():
    text = "jane.doe+x@example.com and jane%40example.org"

    assert redact_emails(text) == "<redacted> and <redacted>"


def test_redact_query_keeps_path():
    line = '"GET /v3/subscriber?page=1&filters_json=%7B%7D HTTP/1.1" 200'

    assert redact_query(line) == '"GET /v3/subscriber?<redacted> HTTP/1.1" 200'


def test_urllib3_log_line_loses_query(caplog):
    install_log_redaction()
    logger = logging.getLogger("urllib3.connectionpool")

    with caplog.at_level(logging.DEBUG, logger="urllib3.connectionpool"):
        logger.debug(
            '%s://%s:%s "%s %s %s" %s %s',
            "http",
            "127.0.0.1",
            80,
            "GET",
            "/v3/subscriber?filters_json=%7B%22email%22%3A%22a%40b.com%22%7D",
            "HTTP/1.1",
            200,
            10,
        )

    assert "a%40b.com" not in caplog.text
    assert "/v3/subscriber?<redacted>" in caplog.text
