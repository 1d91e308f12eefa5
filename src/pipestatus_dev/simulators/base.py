"""What every simulator shares: a request log, injected 429s, JSON answers."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


@dataclass
class Simulator:
    """Counts requests and throttles some of them."""

    #: Answer every n-th request with 429 (0: never), besides the queued throttles.
    rate_limit_every: int = 0
    retry_after_s: float = 1.0
    #: Seconds every answer takes (to hold a poll open, e.g. while a second replica tries).
    latency_s: float = 0.0
    #: Runs move on by themselves (``evolve()``) at most this often, on requests (0: never).
    evolve_every_s: float = 0.0
    _evolved_at: float = field(default_factory=time.monotonic)
    requests: list[str] = field(default_factory=list)
    throttled: int = 0
    _throttle_next: int = 0

    def app(self) -> Starlette:
        raise NotImplementedError

    def evolve(self) -> None:
        """Moves the world on: live runs advance a step (most simulators also start one)."""
        raise NotImplementedError

    def throttle(self, count: int = 1, *, retry_after_s: float | None = None) -> None:
        """The next ``count`` authorized requests get 429 + ``Retry-After``."""
        self._throttle_next += count
        if retry_after_s is not None:
            self.retry_after_s = retry_after_s

    async def admit(self, request: Request) -> Response | None:
        """Logs the request; a 429 response when this one is throttled."""
        self.requests.append(f"{request.method} {request.url.path}")
        now = time.monotonic()
        if self.evolve_every_s and now - self._evolved_at >= self.evolve_every_s:
            self._evolved_at = now
            self.evolve()
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        every = self.rate_limit_every
        if self._throttle_next > 0 or (every and len(self.requests) % every == 0):
            self._throttle_next = max(self._throttle_next - 1, 0)
            self.throttled += 1
            return JSONResponse(
                {"error": "rate limited"},
                status_code=429,
                headers={"Retry-After": f"{self.retry_after_s:g}"},
            )
        return None


def unauthorized(message: str = "unauthorized") -> Response:
    return JSONResponse({"error": {"code": "Unauthorized", "message": message}}, status_code=401)


def not_found(message: str) -> Response:
    return JSONResponse({"error": {"code": "NotFound", "message": message}}, status_code=404)
