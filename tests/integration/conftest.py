"""Real services for the integration tests: one broker and one PostgreSQL per session.

See pipestatus_dev/provision/services.py for how they are chosen (env, testcontainers, embedded).
Every test that asks for ``database_url`` gets a database of its own. A fault-test module
that asks for ``small`` gets the 20 000-record backlog and its undisturbed baseline.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipestatus_dev.provision.databases import temporary_database
from pipestatus_dev.provision.services import TestServices
from tests.integration.fault_tools import Backlog, drain_baseline

SMALL = 20_000


@pytest.fixture(scope="session")
def services() -> Iterator[TestServices]:
    """``.kafka_bootstrap``, ``.database_url`` (admin database) and ``.source``."""
    started = TestServices().start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def database_url(services: TestServices) -> Iterator[str]:
    """A fresh, empty database on the session's server, dropped after the test."""
    with temporary_database(services.database_url) as url:
        yield url


@pytest.fixture
def second_database_url(services: TestServices) -> Iterator[str]:
    """Another fresh database, for tests that compare two runs."""
    with temporary_database(services.database_url) as url:
        yield url


@pytest.fixture(scope="module")
def small(services: TestServices, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backlog]:
    """20 000 mixed records (seed 11) drained by an undisturbed worker: once per module."""
    yield from drain_baseline(services, tmp_path_factory.mktemp("small"), SMALL, seed=11)
