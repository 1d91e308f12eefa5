"""The bench's one error: it could not run (as opposed to a mismatch it measured)."""

from __future__ import annotations


class BenchError(RuntimeError):
    """The bench could not run (a service, a child process, a timeout)."""
