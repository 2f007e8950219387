"""Token buckets: how many requests a key (an address, a client) may make, and when next.

Each key has a bucket of ``burst`` tokens refilled at ``rate`` per second; a request
takes one. An empty bucket answers with the seconds until a token is back, which
becomes ``Retry-After`` (RFC 9110 §10.2.3) on a 429 (RFC 6585 §4). Buckets live in the
process's memory, bounded by ``max_keys`` (the least recently used go first): with
several worker processes each one enforces the limit on what it serves.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class TokenBuckets:
    """Per-key token buckets (see the module docstring)."""

    def __init__(self, rate: float, burst: int, *, max_keys: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a rate limit needs a positive rate and a burst of at least 1")
        self.rate = float(rate)
        self.burst = float(burst)
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Take one token for ``key``: 0 when allowed, else the seconds to wait."""
        now = self.clock()
        with self._lock:
            tokens, stamp = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - stamp) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                wait = 0.0
            else:
                self._buckets[key] = (tokens, now)
                wait = (1 - tokens) / self.rate
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        return wait

    @staticmethod
    def retry_after(wait: float) -> str:
        """``Retry-After`` value in whole seconds (at least 1)."""
        return str(max(1, math.ceil(wait)))
