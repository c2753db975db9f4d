"""Tests of the quarantine command (list, retry, clear) on a SQLite state DB."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from include.cerkl_sync.quarantine import EXIT_OK, EXIT_STATE_DB_ERROR, EXIT_USAGE, main
from include.cerkl_sync.state import SyncStateStore

REPOSITORY_ROOT = Path(__file__).resolve().parents[3]
CONTACT_1 = "003000000000000001"
CONTACT_2 = "003000000000000002"
CAMPAIGN_1 = "701000000000000001"


@pytest.fixture
def state(tmp_path: Path) -> Iterator[tuple[str, SyncStateStore]]:
    """Return the URL and store of a state DB with one pending and two quarantined items."""
    url = f"sqlite:///{tmp_path}/state.db"
    store = SyncStateStore(url)
    store.migrate()
    store.add_work_items("contacts", "pending", [("Contact", CONTACT_1, "http_500")])
    store.add_work_items("contacts", "quarantined", [("Contact", CONTACT_2, "invalid_email")])
    store.add_work_items("contacts", "quarantined", [("Contact", CONTACT_2, "invalid_email")])
    store.add_work_items("campaigns", "quarantined", [("Campaign", CAMPAIGN_1, "segment_gone")])
    yield url, store
    store.dispose()


def run(*argv: str) -> tuple[int, str]:
    output = io.StringIO()
    code = main(list(argv), stdout=output)
    return code, output.getvalue()


def test_list_prints_every_open_item(state: tuple[str, SyncStateStore]) -> None:
    url, _ = state

    code, output = run("list", "--url", url)

    lines = output.splitlines()
    assert code == EXIT_OK
    assert lines[0].split() == [
        "id",
        "flow",
        "kind",
        "record_type",
        "record_id",
        "attempts",
        "first_seen",
        "last_seen",
        "reason",
    ]
    assert len(lines) == 4
    assert lines[2].split()[:6] == ["2", "contacts", "quarantined", "Contact", CONTACT_2, "2"]
    assert lines[2].endswith("invalid_email")
    assert "+00:00" in lines[2]


def test_list_filters_flow_and_kind(state: tuple[str, SyncStateStore]) -> None:
    url, _ = state

    code, output = run("list", "--url", url, "--flow", "contacts", "--kind", "quarantined")

    assert code == EXIT_OK
    rows = output.splitlines()[1:]
    assert [row.split()[4] for row in rows] == [CONTACT_2]


def test_list_json(state: tuple[str, SyncStateStore]) -> None:
    url, _ = state

    code, output = run("list", "--url", url, "--json", "--kind", "pending")

    items = json.loads(output)
    assert code == EXIT_OK
    assert len(items) == 1
    assert items[0]["record_id"] == CONTACT_1
    assert items[0]["attempts"] == 1
    assert items[0]["reason"] == "http_500"
    assert items[0]["first_seen"].endswith("+00:00")


def test_list_empty_says_so(state: tuple[str, SyncStateStore]) -> None:
    url, _ = state

    code, output = run("list", "--url", url, "--flow", "no_such_flow")

    assert code == EXIT_OK
    assert output.strip() == "No open work items."


def test_retry_moves_quarantined_to_pending(state: tuple[str, SyncStateStore]) -> None:
    url, store = state

    code, output = run("retry", "--url", url, "--flow", "contacts")

    assert code == EXIT_OK
    assert "Moved 1 quarantined items of flow contacts back to pending" in output
    items = {item.record_id: item for item in store.open_work_items()}
    assert items[CONTACT_2].kind == "pending"
    assert items[CONTACT_2].attempts == 0
    assert items[CAMPAIGN_1].kind == "quarantined"


def test_retry_by_id(state: tuple[str, SyncStateStore]) -> None:
    url, store = state
    campaign_item_id = store.open_work_items(flow="campaigns")[0].id

    code, output = run("retry", "--url", url, "--id", str(campaign_item_id))

    assert code == EXIT_OK
    assert f"Moved 1 quarantined items of ids {campaign_item_id}" in output
    assert [item.record_id for item in store.open_work_items(kind="quarantined")] == [CONTACT_2]


def test_clear_without_yes_rejected(
    state: tuple[str, SyncStateStore], capsys: pytest.CaptureFixture[str]
) -> None:
    url, store = state

    code, output = run("clear", "--url", url, "--flow", "contacts")

    assert code == EXIT_USAGE
    assert output == ""
    assert "Add --yes to confirm" in capsys.readouterr().err
    assert len(store.open_work_items()) == 3


def test_clear_with_yes_deletes_selection(state: tuple[str, SyncStateStore]) -> None:
    url, store = state
    pending_id = store.open_work_items(kind="pending")[0].id

    code, output = run("clear", "--url", url, "--id", str(pending_id), "--yes")

    assert code == EXIT_OK
    assert f"Cleared 1 open items of ids {pending_id}." in output
    assert CONTACT_1 not in {item.record_id for item in store.open_work_items()}

    code, output = run("clear", "--url", url, "--yes")

    assert code == EXIT_OK
    assert "Cleared 2 open items of all flows." in output
    assert store.open_work_items() == []


def test_invalid_flow_is_usage_error(
    state: tuple[str, SyncStateStore], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = state

    code, _ = run("list", "--url", url, "--flow", "bad flow")

    assert code == EXIT_USAGE
    assert "Invalid flow name 'bad flow'" in capsys.readouterr().err


def test_unmigrated_db_is_state_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run("list", "--url", f"sqlite:///{tmp_path}/empty.db")

    assert code == EXIT_STATE_DB_ERROR
    assert "python -m include.cerkl_sync.state migrate" in capsys.readouterr().err


def test_unknown_kind_rejected_by_parser(state: tuple[str, SyncStateStore]) -> None:
    url, _ = state

    with pytest.raises(SystemExit) as raised:
        run("list", "--url", url, "--kind", "failed")

    assert raised.value.code == EXIT_USAGE


def test_quarantine_runs_as_module(state: tuple[str, SyncStateStore]) -> None:
    url, _ = state

    result = subprocess.run(
        [sys.executable, "-m", "include.cerkl_sync.quarantine", "list", "--url", url, "--json"],
        cwd=REPOSITORY_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)) == 3
