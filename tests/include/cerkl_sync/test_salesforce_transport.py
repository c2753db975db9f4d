"""The transport adapter that routes Salesforce traffic to the sandbox."""

from __future__ import annotations

import pathlib

import pytest
import requests

from include.cerkl_sync.salesforce_transport import (
    SANDBOX_URL_ENV,
    SalesforceSandboxAdapter,
    build_salesforce_session,
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://login.salesforce.com/services/Soap/u/59.0",
            "http://127.0.0.1:8701/services/Soap/u/59.0",
        ),
        (
            "https://sandbox.my.salesforce.com/services/data/v59.0/query/?q=SELECT+Id",
            "http://127.0.0.1:8701/services/data/v59.0/query/?q=SELECT+Id",
        ),
        (
            "https://acme--uat.sandbox.my.salesforce.com:443/services/oauth2/token",
            "http://127.0.0.1:8701/services/oauth2/token",
        ),
        ("https://api.cerkl.com/v3/subscriber", "https://api.cerkl.com/v3/subscriber"),
        ("https://salesforce.com.evil.example/x", "https://salesforce.com.evil.example/x"),
        ("http://login.salesforce.com/x", "http://login.salesforce.com/x"),
    ],
)
def test_adapter_rewrite_url(url: str, expected: str) -> None:
    adapter = SalesforceSandboxAdapter("http://127.0.0.1:8701")
    assert adapter.rewrite_url(url) == expected


@pytest.mark.parametrize(
    "value",
    ["127.0.0.1:8701", "ftp://127.0.0.1", "http://127.0.0.1:8701/path", "http://", "http://h:x"],
)
def test_adapter_rejects_malformed_url(value: str) -> None:
    with pytest.raises(ValueError, match="expected http://HOST:PORT") as caught:
        build_salesforce_session(value)
    assert repr(value) in str(caught.value)


def test_session_without_setting_is_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SANDBOX_URL_ENV, raising=False)
    session = build_salesforce_session()
    assert not isinstance(
        session.get_adapter("https://login.salesforce.com"), SalesforceSandboxAdapter
    )
    monkeypatch.setenv(SANDBOX_URL_ENV, "")
    assert not isinstance(
        build_salesforce_session().get_adapter("https://x.salesforce.com"), SalesforceSandboxAdapter
    )


def test_session_reads_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SANDBOX_URL_ENV, "http://127.0.0.1:9")
    adapter = build_salesforce_session().get_adapter("https://login.salesforce.com")
    assert isinstance(adapter, SalesforceSandboxAdapter)
    assert adapter.sandbox_netloc == "127.0.0.1:9"
    monkeypatch.setenv(SANDBOX_URL_ENV, "not a url")
    with pytest.raises(ValueError, match="CERKL_SYNC_SALESFORCE_SANDBOX_URL"):
        build_salesforce_session()


def test_session_routes_requests_to_local_server() -> None:
    import http.server
    import threading

    paths: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib handler's method name
            paths.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            return

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        session = build_salesforce_session(f"http://127.0.0.1:{server.server_port}")
        response = session.get("https://login.salesforce.com/services/data/?a=1", timeout=5)
        assert response.text == "ok"
        assert paths == ["/services/data/?a=1"]
    finally:
        server.shutdown()
        server.server_close()


def test_no_code_disables_certificate_checks() -> None:
    root = pathlib.Path(__file__).resolve().parents[3]
    sources = [
        root / "include/cerkl_sync/salesforce_transport.py",
        *sorted((root / "include/sandbox/salesforce").glob("*.py")),
    ]
    for source in sources:
        assert "verify=False" not in source.read_text(encoding="utf-8"), source


def test_plain_session_type() -> None:
    assert type(build_salesforce_session("")) is requests.Session
