"""At most one log line per key and interval, for refusals a peer can cause at any rate (bad frames, foreign
state images, unauthenticated connections): the first at once, the rest counted until the interval has passed."""

from __future__ import annotations

import time
from collections.abc import Callable


class LogThrottle:
    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self._logged_at: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def admit(self, key: str = "") -> int | None:
        """None while `key` was logged less than an interval ago (this one is counted); otherwise log it now: the
        number of lines held back since the last one is returned."""
        now = self.clock()
        last = self._logged_at.get(key)
        if last is not None and now - last < self.interval_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return None
        self._logged_at[key] = now
        return self._suppressed.pop(key, 0)
