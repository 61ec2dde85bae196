"""The webhooks service's clock: real time, or real time run fast (`STRATUS_CLOCK_SCALE`, for
tests: at 36,000 the 72-hour retry window passes in 7.2 seconds). Every decision of the service
takes its `now` from here, and the dispatcher sleeps real time divided by the scale, so a fast
clock changes nothing but how long a test waits."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta


class Clock:
    def __init__(self, scale: float | None = None) -> None:
        raw = os.environ.get("STRATUS_CLOCK_SCALE", "").strip()
        self.scale = scale if scale is not None else (float(raw) if raw else 1.0)
        if self.scale <= 0:
            raise ValueError("STRATUS_CLOCK_SCALE must be positive")
        self._origin = datetime.now(UTC)
        self._start = time.monotonic()

    def __call__(self) -> datetime:
        if self.scale == 1.0:
            return datetime.now(UTC)
        return self._origin + timedelta(seconds=(time.monotonic() - self._start) * self.scale)

    def real_seconds(self, until: datetime) -> float:
        """Real seconds from now until the clock shows `until` (0 when it is past)."""
        return max((until - self()).total_seconds() / self.scale, 0.0)


CLOCK = Clock()
