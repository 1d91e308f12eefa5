"""SIGTERM and SIGINT stop the bench cleanly: consumers, embedded services, then exit.

Python's default SIGTERM ends the process on the spot, without ``finally`` blocks or
``atexit``: the embedded broker and PostgreSQL (in their own sessions) and the consumer
subprocesses would outlive the bench. ``StopSignals`` replaces the handlers for the whole
run. While the bench's event loop runs, the first signal cancels its main task, so the
task's ``finally`` stops the consumers and drops the databases, and the services'
context manager then stops the services; outside the loop (starting or stopping the
services) the signal raises ``Interrupted`` at once, with the same effect. Later signals
are only reported: the cleanup is bounded (consumers get 5 s before SIGKILL, each
embedded service its stop timeout).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from types import FrameType
from typing import Any

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(BaseException):  # a control signal, like KeyboardInterrupt
    """A stop signal arrived; the bench stopped what it had started."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopSignals:
    """Turns SIGTERM and SIGINT into an orderly stop (see the module docstring)."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._task: asyncio.Task[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        for signum in _SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)

    def watch(self, task: asyncio.Task[Any]) -> None:
        """From now on a signal cancels ``task`` (the bench's main task) instead of raising."""
        self._task = task
        self._loop = task.get_loop()
        if self.received is not None:
            task.cancel()

    def unwatch(self) -> None:
        self._task = self._loop = None

    def check(self) -> None:
        """Raises ``Interrupted`` if a signal arrived (after a cancelled loop has unwound)."""
        if self.received is not None:
            raise Interrupted(self.received)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            sys.stderr.write(
                f"pipestatus bench: {signal.Signals(signum).name} again; still stopping the "
                "consumers and services\n"
            )
            return
        self.received = signum
        sys.stderr.write(
            f"pipestatus bench: {signal.Signals(signum).name}; stopping the consumers and "
            "services\n"
        )
        task, loop = self._task, self._loop
        if task is not None and loop is not None and not task.done():
            task.cancel()
            loop.call_soon_threadsafe(lambda: None)  # wake the selector
            return
        raise Interrupted(signum)
