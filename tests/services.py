"""The tests' services: re-exported from the one provisioning layer (pipestatus_dev.provision)."""

from __future__ import annotations

from pipestatus_dev.provision.databases import (
    create_database,
    database_url_for,
    drop_database,
    drop_database_async,
    fresh_database,
    temporary_database,
)
from pipestatus_dev.provision.services import (
    DATABASE_ENV,
    KAFKA_ENV,
    KAFKA_IMAGE,
    PATHS_ENV,
    POSTGRES_IMAGE,
    ServicesUnavailableError,
    TestServices,
    docker_available,
)

__all__ = [
    "DATABASE_ENV",
    "KAFKA_ENV",
    "KAFKA_IMAGE",
    "PATHS_ENV",
    "POSTGRES_IMAGE",
    "ServicesUnavailableError",
    "TestServices",
    "create_database",
    "database_url_for",
    "docker_available",
    "drop_database",
    "drop_database_async",
    "fresh_database",
    "temporary_database",
]
