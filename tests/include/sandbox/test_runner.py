"""Sandbox runner and command line: start, readiness errors, stop, ``serve``."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from include.sandbox.__main__ import data_dir_is_empty, main
from include.sandbox.cerkl.store import CerklStore
from include.sandbox.runner import REPOSITORY_ROOT, SandboxStartError, start_sandbox


def test_start_fails_clearly_on_busy_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        with pytest.raises(SandboxStartError) as raised:
            start_sandbox(tmp_path, cerkl_port=port, servers=("cerkl",), startup_timeout=20)

    message = str(raised.value)
    assert "cerkl" in message
    assert str(port) in message
    assert str(tmp_path / "logs" / "cerkl.log") in message


def test_start_rejects_unknown_server(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="hubspot"):
        start_sandbox(tmp_path, servers=("hubspot",))


def test_stop_ends_child_processes(tmp_path: Path) -> None:
    running = start_sandbox(tmp_path, servers=("cerkl",))
    process = running.servers["cerkl"].process
    url = running.cerkl_root_url

    running.stop()
    running.stop()

    assert process.poll() is not None
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/__sandbox__/clock", timeout=2)


def test_data_dir_is_empty(tmp_path: Path) -> None:
    assert data_dir_is_empty(tmp_path) is True

    store = CerklStore(tmp_path / "cerkl.sqlite3", lambda: datetime.now(UTC))
    assert data_dir_is_empty(tmp_path) is True
    store.insert_subscribers([{"email": "one@example.org"}])
    store.close()

    assert data_dir_is_empty(tmp_path) is False


def test_serve_seeds_prints_urls_and_stops(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    command = [
        sys.executable,
        "-m",
        "include.sandbox",
        "serve",
        "--data-dir",
        str(data_dir),
        "--salesforce-port",
        "0",
        "--cerkl-port",
        "0",
        "--seed-if-empty",
        "--contacts",
        "20",
        "--subscribers",
        "10",
    ]
    process = subprocess.Popen(
        command, cwd=REPOSITORY_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Press Ctrl+C" in line:
                break
        output = "".join(lines)
        cerkl_url = re.search(r"Cerkl sandbox:\s+(http://127\.0\.0\.1:\d+/v3)", output)
        assert cerkl_url is not None, output
        token = requests.post(
            f"{cerkl_url.group(1)}/oauth/Token",
            auth=("sandbox-client-id", "sandbox-client-secret"),
            data={"grant_type": "client_credentials"},
            timeout=10,
        ).json()["access_token"]
        subscribers = requests.get(
            f"{cerkl_url.group(1)}/subscriber",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        ).json()["template"]["data"]
    finally:
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=30)

    assert "is empty; seeding it first" in output
    assert re.search(r"Salesforce sandbox: http://127\.0\.0\.1:\d+", output)
    assert "client secret sandbox-client-secret" in output
    assert len(subscribers) == 10
    assert process.returncode == 0
    assert "Sandbox stopped." in rest


def test_load_command_reads_csv_into_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tmp_path / "Contacts.csv"
    export.write_text(
        "Id,FirstName,LastName,npe01__HomeEmail__c\n003000000000001,Ann,Lee,ann.lee@example.org\n",
        encoding="utf-8",
    )

    code = main(
        [
            "load",
            "--data-dir",
            str(tmp_path / "data"),
            str(export),
            "--map",
            "Email=npe01__HomeEmail__c",
        ]
    )

    assert code == 0
    assert "'Contact': 1" in capsys.readouterr().out
    assert data_dir_is_empty(tmp_path / "data") is False


def test_load_command_reports_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "Nope.csv"

    code = main(["load", "--data-dir", str(tmp_path / "data"), str(missing)])

    assert code == 2
    assert "Nope.csv" in capsys.readouterr().err


def test_load_command_rejects_bad_map(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="ProductField=ExportColumn"):
        main(["load", "--data-dir", str(tmp_path), "x.csv", "--map", "Email"])
