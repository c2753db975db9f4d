"""Token bucket pacing, measured on a fake clock."""

from __future__ import annotations

import threading

import pytest
from cerkl.throttle import TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def test_bucket_first_acquire_is_free():
    clock = FakeClock()
    bucket = TokenBucket(5, clock=clock, sleep=clock.sleep)

    assert bucket.acquire() == 0.0


def test_bucket_spaces_acquires_by_rate():
    clock = FakeClock()
    bucket = TokenBucket(5, clock=clock, sleep=clock.sleep)

    for _ in range(11):
        bucket.acquire()

    assert clock.now == pytest.approx(2.0)


def test_bucket_refills_after_idle_time():
    clock = FakeClock()
    bucket = TokenBucket(2, capacity=3, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        bucket.acquire()
    clock.now += 10.0

    waits = [bucket.acquire() for _ in range(3)]

    assert waits == [0.0, 0.0, 0.0]


def test_bucket_reserves_slots_across_threads():
    clock = FakeClock()
    bucket = TokenBucket(10, clock=clock, sleep=lambda seconds: None)
    waits: list[float] = []
    lock = threading.Lock()

    def take() -> None:
        wait = bucket.acquire()
        with lock:
            waits.append(wait)

    threads = [threading.Thread(target=take) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(waits) == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])


@pytest.mark.parametrize("rate", [0, -1])
def test_bucket_rejects_non_positive_rate(rate):
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(rate)
