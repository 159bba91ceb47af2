"""In-memory sliding-window counters for login attempts and socket messages. A pure rule
with an injectable clock, so it is tested without a server."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class SlidingWindow:
    """At most `limit` events per `window_s` per key."""

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self.max_keys = max_keys
        self._events: dict[str, deque[float]] = {}

    def _trim(self, key: str) -> deque[float]:
        q = self._events.get(key)
        if q is None:
            if len(self._events) >= self.max_keys:
                self._evict()
            q = self._events[key] = deque()
        cutoff = self.clock() - self.window_s
        while q and q[0] <= cutoff:
            q.popleft()
        return q

    def _evict(self) -> None:
        cutoff = self.clock() - self.window_s
        for k in [k for k, q in self._events.items() if not q or q[-1] <= cutoff]:
            del self._events[k]

    def retry_after(self, key: str) -> float:
        """Seconds until one more event is allowed (0 when allowed now)."""
        q = self._trim(key)
        if len(q) < self.limit:
            return 0.0
        return max(0.0, q[0] + self.window_s - self.clock())

    def hit(self, key: str) -> None:
        self._trim(key).append(self.clock())

    def reset(self, key: str) -> None:
        self._events.pop(key, None)
