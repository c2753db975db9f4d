"""Tests of the link lock across processes and of concurrent writers on one state DB."""

from __future__ import annotations

import multiprocessing
import threading
import time
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Event

import pytest
from sqlalchemy import create_engine, text

from include.cerkl_sync.state import Link, StateStoreError, SyncStateStore
from include.cerkl_sync.state import store as store_module

# Fork keeps the child start fast. Each child creates its own store from the URL.
FORK = multiprocessing.get_context("fork")


def contact(number: int) -> str:
    return f"003{number:015d}"


def hold_link_lock(url: str, owner: str, acquired: Event, release: Event) -> None:
    """Take the link lock in a child process and hold it until ``release`` is set."""
    child_store = SyncStateStore(url)
    with child_store.link_lock(owner, timeout=10):
        acquired.set()
        release.wait(30)
    child_store.dispose()


@pytest.fixture
def lock_holder(state_url: str):
    """Start a child process that holds the link lock as 'holder-task' until released."""
    acquired = FORK.Event()
    release = FORK.Event()
    child = FORK.Process(target=hold_link_lock, args=(state_url, "holder-task", acquired, release))
    child.start()
    assert acquired.wait(30), "the child process did not take the link lock"
    yield release
    release.set()
    child.join(30)
    assert child.exitcode == 0


def test_link_lock_times_out_naming_holder(store: SyncStateStore, lock_holder: Event) -> None:
    started = time.monotonic()

    with pytest.raises(StateStoreError) as raised:
        with store.link_lock("second-task", timeout=0.5):
            pytest.fail("the link lock was taken while another process held it")

    assert "'holder-task'" in str(raised.value)
    assert "Timed out after 0.5 s" in str(raised.value)
    assert time.monotonic() - started >= 0.5


def test_link_lock_taken_after_holder_releases(store: SyncStateStore, lock_holder: Event) -> None:
    threading.Timer(0.5, lock_holder.set).start()
    started = time.monotonic()

    with store.link_lock("second-task", timeout=20):
        waited = time.monotonic() - started

    assert waited >= 0.4


def test_link_lock_zero_timeout_tries_once(store: SyncStateStore) -> None:
    with store.link_lock("first-task", timeout=0):
        with pytest.raises(StateStoreError, match="'first-task'"):
            with store.link_lock("second-task", timeout=0):
                pass

    with store.link_lock("third-task", timeout=0):
        pass


def test_link_lock_released_on_error(store: SyncStateStore) -> None:
    with pytest.raises(RuntimeError):
        with store.link_lock("failing-task", timeout=0):
            raise RuntimeError("task failed")

    with store.link_lock("next-task", timeout=0):
        pass


def test_link_lock_rejects_negative_timeout(store: SyncStateStore) -> None:
    with pytest.raises(ValueError, match="timeout"):
        with store.link_lock("task", timeout=-1):
            pass


def test_sqlite_lock_expired_row_taken_over(sqlite_url: str) -> None:
    store = SyncStateStore(sqlite_url)
    store.migrate()
    expired = (datetime.now(UTC) - timedelta(seconds=1)).replace(tzinfo=None)
    engine = create_engine(sqlite_url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO sync_lock (name, owner, token, acquired_at, expires_at) "
                "VALUES ('link', 'crashed-task', 'x', :at, :at)"
            ),
            {"at": expired},
        )
    engine.dispose()

    with store.link_lock("new-task", timeout=0):
        pass

    store.dispose()


def test_sqlite_lock_renewed_while_held(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "LOCK_LEASE_SECONDS", 0.6)
    monkeypatch.setattr(store_module, "LOCK_RENEW_SECONDS", 0.1)
    store = SyncStateStore(sqlite_url)
    store.migrate()

    with store.link_lock("long-task", timeout=0):
        time.sleep(1.2)  # twice the lease: only renewals keep the lock
        with pytest.raises(StateStoreError, match="'long-task'"):
            with store.link_lock("second-task", timeout=0):
                pass

    store.dispose()


# -- many writers ------------------------------------------------------------------------------


def test_threads_write_links_and_work_items_without_loss(store: SyncStateStore) -> None:
    thread_count = 8
    rounds = 10
    links_per_round = 25
    errors: list[BaseException] = []
    start = threading.Barrier(thread_count)

    def write(thread_number: int) -> None:
        try:
            start.wait()
            for round_number in range(rounds):
                first = (thread_number * rounds + round_number) * links_per_round
                numbers = range(first + 1, first + links_per_round + 1)
                store.save_links([Link(contact(number), number) for number in numbers])
                store.add_work_items(
                    "contacts",
                    "pending",
                    [("Contact", contact(number), "http_500") for number in numbers],
                )
                # Every thread also counts attempts on one shared record.
                store.add_work_items("contacts", "pending", [("Contact", contact(0), "shared")])
                store.complete_window(
                    "contacts", datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=round_number)
                )
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(number,)) for number in range(thread_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert errors == []
    total = thread_count * rounds * links_per_round
    assert store.count_links() == total
    items = {item.record_id: item for item in store.open_work_items()}
    assert len(items) == total + 1
    assert items[contact(0)].attempts == thread_count * rounds
    assert store.get_window_end("contacts") == datetime(2026, 1, 1, tzinfo=UTC) + timedelta(
        days=rounds - 1
    )


def migrate_in_child(url: str) -> None:
    SyncStateStore(url).migrate()


def test_processes_migrate_at_once(empty_url: str) -> None:
    children = [FORK.Process(target=migrate_in_child, args=(empty_url,)) for _ in range(3)]
    for child in children:
        child.start()
    for child in children:
        child.join(60)

    assert [child.exitcode for child in children] == [0, 0, 0]
    store = SyncStateStore(empty_url)
    store.check()
    store.dispose()


def count_links_in_child(store: SyncStateStore, result: multiprocessing.Queue) -> None:
    result.put(store.count_links())


def test_store_used_after_fork(store: SyncStateStore) -> None:
    store.save_links([Link(contact(1), 101)])
    result = FORK.Queue()

    child = FORK.Process(target=count_links_in_child, args=(store, result))
    child.start()
    child.join(30)

    assert child.exitcode == 0
    assert result.get(timeout=5) == 1
    store.save_links([Link(contact(2), 102)])
    assert store.count_links() == 2


def test_threads_relink_same_contacts(store: SyncStateStore) -> None:
    thread_count = 4
    rounds = 10
    contact_count = 50
    errors: list[BaseException] = []
    start = threading.Barrier(thread_count)

    def relink(thread_number: int) -> None:
        try:
            start.wait()
            for _ in range(rounds):
                store.save_links(
                    [
                        Link(contact(number), thread_number * 1000 + number)
                        for number in range(1, contact_count + 1)
                    ]
                )
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=relink, args=(number,)) for number in range(thread_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert errors == []
    links = store.get_links_by_contact([contact(n) for n in range(1, contact_count + 1)])
    assert len(links) == contact_count
    assert store.count_links() == contact_count
