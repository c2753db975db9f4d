"""A local SMTP server (aiosmtpd) that keeps every message, for tests of e-mail alerts."""

from __future__ import annotations

import email
import json
import socket
from collections.abc import Iterator
from email.message import Message
from typing import Any

import pytest


class SmtpInbox:
    """aiosmtpd handler that keeps every message it receives and its recipients."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.recipients: list[list[str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(email.message_from_bytes(envelope.content))
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def message_text(message: Message) -> str:
    """Return the decoded text of every part of a message."""
    parts = message.walk() if message.is_multipart() else [message]
    texts = []
    for part in parts:
        payload = part.get_payload(decode=True)
        if payload:
            texts.append(payload.decode(part.get_content_charset() or "utf-8"))
    return "\n".join(texts)


def serve_smtp_inbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpInbox]:
    """Start the server and point the ``smtp_default`` connection at it until the test ends."""
    from aiosmtpd.controller import Controller

    inbox = SmtpInbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    connection = {
        "conn_type": "smtp",
        "host": "127.0.0.1",
        "port": port,
        "extra": {
            "disable_tls": True,
            "disable_ssl": True,
            "timeout": 10,
            "retry_limit": 0,
            "from_email": "airflow@example.com",
        },
    }
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(connection))
    try:
        yield inbox
    finally:
        controller.stop()
