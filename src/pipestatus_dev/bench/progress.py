"""Progress lines on stderr while the bench runs."""

from __future__ import annotations

import sys
import time


class Progress:
    """Progress lines on stderr, stamped with the time since the bench started."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self._last: dict[str, float] = {}

    def say(self, message: str) -> None:
        elapsed = time.monotonic() - self.started
        sys.stderr.write(f"[bench {int(elapsed) // 60:02d}:{int(elapsed) % 60:02d}] {message}\n")
        sys.stderr.flush()

    def every(self, key: str, seconds: float, message: str) -> None:
        now = time.monotonic()
        if now - self._last.get(key, 0.0) >= seconds:
            self._last[key] = now
            self.say(message)
