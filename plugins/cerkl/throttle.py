"""Client-side request-rate budget for the Cerkl API."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """Thread-safe token bucket that paces callers to ``rate`` acquisitions per second.

    The bucket contains at most ``capacity`` tokens and starts full. :meth:`acquire` takes one
    token and sleeps, outside the lock, until that token is due. Callers are served in the
    order they reserved, so a busy thread cannot starve the others.

    :param rate: tokens added per second.
    :param capacity: maximum burst size. The default of 1 spaces requests evenly, which
        keeps the server's own bucket from ever seeing a burst.
    :param clock: monotonic clock in seconds.
    :param sleep: function that sleeps for a number of seconds.
    """

    def __init__(
        self,
        rate: float,
        *,
        capacity: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"Token bucket rate must be above 0, got {rate!r}.")
        if capacity < 1:
            raise ValueError(f"Token bucket capacity must be at least 1, got {capacity!r}.")
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = capacity
        self._updated = clock()

    def acquire(self) -> float:
        """Take one token, sleeping until it is available.

        :return: the number of seconds slept.
        """
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            # Reserve the token now, even when it is not there yet: the balance goes negative
            # and the next caller waits for this one's debt as well.
            self._tokens -= 1.0
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self.rate
        if wait > 0:
            self._sleep(wait)
        return wait
