"""Per-office rate limits: a token bucket per office in this process (each server worker keeps its own).

>>> b = RateLimiter(clock=lambda: 0.0)
>>> [b.allow("o", 2) for _ in range(3)]
[True, True, False]
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    """Allow ``per_minute`` requests per office per minute, with bursts up to the same number."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # office -> (tokens, last time)

    def allow(self, office: str, per_minute: int) -> bool:
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(office, (float(per_minute), now))
            tokens = min(float(per_minute), tokens + (now - last) * per_minute / 60.0)
            if tokens < 1.0:
                self._buckets[office] = (tokens, now)
                return False
            self._buckets[office] = (tokens - 1.0, now)
            return True

    def retry_after(self, office: str, per_minute: int) -> int:
        """Seconds until the next request would be allowed (at least 1)."""
        tokens, _ = self._buckets.get(office, (0.0, 0.0))
        return max(1, int((1.0 - tokens) * 60.0 / max(per_minute, 1)) + 1)
