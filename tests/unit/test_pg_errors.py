"""Driver errors are translated at the edge: retriable ones become ``StoreUnavailableError``."""

from __future__ import annotations

import asyncpg
import pytest

from pipestatus.adapters.postgres import map_pg_errors
from pipestatus.errors import StoreUnavailableError


@pytest.mark.parametrize(
    "error",
    [
        ConnectionResetError("reset by peer"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        # Seen when PostgreSQL stops mid-transaction: the rollback meets a protocol still
        # consuming the previous statement's error.
        asyncpg.exceptions.InternalClientError(
            "cannot switch to state 15; another operation (2) is in progress"
        ),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
        # idle_in_transaction_session_timeout ended the session of a frozen worker
        asyncpg.exceptions.IdleInTransactionSessionTimeoutError("terminating connection"),
    ],
)
def test_errors_a_retry_can_fix_are_retriable(error: Exception) -> None:
    with pytest.raises(StoreUnavailableError) as raised, map_pg_errors():
        raise error
    assert raised.value.retriable
    assert raised.value.__cause__ is error


def test_other_database_errors_are_not_hidden() -> None:
    """A constraint violation is a bug to see, not an outage to wait out."""
    with pytest.raises(asyncpg.exceptions.UniqueViolationError), map_pg_errors():
        raise asyncpg.exceptions.UniqueViolationError("duplicate key")
