"""The one shape of every async resource: ``async with`` opens it, leaving closes it."""

from __future__ import annotations

from types import TracebackType


class AsyncClosing:
    """Leaving the ``async with`` block calls ``close()``, which must be idempotent."""

    async def close(self) -> None:
        raise NotImplementedError

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
