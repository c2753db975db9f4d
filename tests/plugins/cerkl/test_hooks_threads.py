"""CerklHook connection reuse, sessions per thread, rate budget and concurrency limit."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import requests
from cerkl import hooks as hooks_module
from cerkl.hooks import CerklHook
from requests_toolbelt.adapters.socket_options import TCPKeepAliveAdapter


def test_connection_read_once_across_calls_and_threads(make_hook, monkeypatch):
    hook = make_hook()
    calls: list[str] = []
    original = CerklHook.get_connection

    def counting_get_connection(conn_id, *args, **kwargs):
        calls.append(conn_id)
        return original(conn_id, *args, **kwargs)

    monkeypatch.setattr(CerklHook, "get_connection", staticmethod(counting_get_connection))

    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(lambda _: hook.list_privacy_levels(), range(9)))
    hook.list_subscriber_statuses()

    assert calls == ["cerkl_test"]


def test_one_session_per_thread(make_hook, monkeypatch):
    created: list[requests.Session] = []

    class CountingSession(requests.Session):
        def __init__(self) -> None:
            super().__init__()
            created.append(self)

    monkeypatch.setattr(hooks_module.requests, "Session", CountingSession)
    hook = make_hook()
    barrier = threading.Barrier(3)

    def work() -> None:
        barrier.wait()
        for _ in range(4):
            hook.list_privacy_levels()

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    hook.list_privacy_levels()

    assert len(created) == 4  # three workers and the main thread
    assert hook.api_calls["GET subscriber_privacy_level"] == 13


def test_extras_never_sent_as_headers(make_hook):
    extras = {
        "page_size": 500,
        "create_batch_size": 50,
        "requests_per_second": 1000,
        "max_attempts": 3,
        "token_path": "oauth/Token",
        "new_subscriber_privacy_level_id": 1,
        "headers": {"X-Cerkl-Client": "cerkl-salesforce-sync"},
    }
    hook = make_hook(extras=extras)
    sent: list[requests.PreparedRequest] = []
    hook.get_conn().hooks["response"].append(lambda response, **_: sent.append(response.request))

    hook.create_subscribers([{"email": "h@example.com", "first_name": "H"}])
    list(hook.iter_subscribers())

    assert sent
    for request in sent:
        names = {name.lower() for name in request.headers}
        assert names.isdisjoint({key.lower() for key in extras if key != "headers"})
        assert request.headers["X-Cerkl-Client"] == "cerkl-salesforce-sync"


def test_two_hooks_stay_under_server_rate_limit(make_hook, cerkl_controls):
    cerkl_controls.set_rate_limit(20)
    extras = {"requests_per_second": 8}
    first = make_hook(conn_id="cerkl_first", extras=extras)
    second = make_hook(conn_id="cerkl_second", extras=extras)

    def work(hook: CerklHook) -> None:
        for _ in range(12):
            hook.list_privacy_levels()

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(work, [first, second]))

    for hook in (first, second):
        assert hook.api_calls["GET subscriber_privacy_level"] == 12
        assert hook.test_sleep.waits == []
    counters = cerkl_controls.counters()["by_endpoint"]
    assert counters["GET subscriber_privacy_level"] == 24


def test_rate_budget_paces_one_hook(make_hook, cerkl_controls):
    cerkl_controls.set_rate_limit(5)
    hook = make_hook(extras={"requests_per_second": 4})

    for _ in range(8):
        hook.list_privacy_levels()

    assert hook.test_sleep.waits == []
    assert hook.api_calls["GET subscriber_privacy_level"] == 8


def test_concurrency_limit_bounds_requests_in_flight(make_hook, cerkl_controls, monkeypatch):
    cerkl_controls.set_latency(fixed_ms=50)
    hook = make_hook(extras={"max_concurrent_requests": 2})
    lock = threading.Lock()
    in_flight = 0
    peak = 0
    original = requests.Session.request

    def tracking_request(self, *args, **kwargs):
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        try:
            return original(self, *args, **kwargs)
        finally:
            with lock:
                in_flight -= 1

    monkeypatch.setattr(requests.Session, "request", tracking_request)

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(lambda _: hook.list_privacy_levels(), range(12)))

    assert peak <= 2
    assert hook.api_calls["GET subscriber_privacy_level"] == 12


def test_session_adapter_pool_and_keep_alive(make_hook):
    keep_alive = make_hook(extras={"max_concurrent_requests": 3})
    plain = make_hook(conn_id="cerkl_plain", tcp_keep_alive=False)

    keep_alive_adapter = keep_alive.get_conn().get_adapter("http://127.0.0.1")
    plain_adapter = plain.get_conn().get_adapter("http://127.0.0.1")

    assert isinstance(keep_alive_adapter, TCPKeepAliveAdapter)
    assert keep_alive_adapter._pool_maxsize == 3
    assert keep_alive_adapter.max_retries.total == 0
    assert not isinstance(plain_adapter, TCPKeepAliveAdapter)
    assert plain.list_privacy_levels()
