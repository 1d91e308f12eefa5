"""A real Alertmanager for the integration tests: Debian's ``prometheus-alertmanager``.

Started on a free 127.0.0.1 port with a one-route config (a receiver that notifies nobody),
its own storage directory and no cluster gossip; stopped when the context ends. A missing
binary fails the test with the install command: these tests are never skipped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

BINARY_ENV = "PIPESTATUS_TEST_ALERTMANAGER"
CANDIDATES = ("prometheus-alertmanager", "alertmanager")
INSTALL_HINT = (
    "Alertmanager binary not found: install the Debian package with "
    "`apt-get update && apt-get install -y prometheus-alertmanager` "
    f"(or point {BINARY_ENV} at an alertmanager binary)"
)
CONFIG = """\
route:
  receiver: nobody
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: nobody
"""


def alertmanager_binary() -> str:
    """The binary's path; fails the calling test (never skips) when there is none."""
    explicit = os.environ.get(BINARY_ENV)
    if explicit:
        if not os.access(explicit, os.X_OK):
            pytest.fail(f"{BINARY_ENV}={explicit} is not an executable file")
        return explicit
    for name in CANDIDATES:
        found = shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/local/bin")
        if found:
            return found
    pytest.fail(INSTALL_HINT)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def running_alertmanager(workdir: Path, *, ready_timeout_s: float = 30.0) -> Iterator[str]:
    """Yields the base URL (``http://127.0.0.1:PORT``) of a ready Alertmanager."""
    binary = alertmanager_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "alertmanager.yml"
    config.write_text(CONFIG)
    port = free_port()
    log_path = workdir / "alertmanager.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_ready(url, process, log_path, ready_timeout_s)
            yield url
        finally:
            _stop(process)


async def get_alerts(client: httpx.AsyncClient, url: str, **filters: str) -> list[dict[str, Any]]:
    """``GET /api/v2/alerts`` with the given filters (``active``, ``silenced``, …)."""
    response = await client.get(f"{url}/api/v2/alerts", params=filters, timeout=5.0)
    response.raise_for_status()
    alerts: list[dict[str, Any]] = response.json()
    return alerts


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"alertmanager exited with {process.returncode}:\n{log.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/-/ready", timeout=1.0).status_code == 200:
                return
        time.sleep(0.1)
    pytest.fail(f"alertmanager not ready after {timeout_s:.0f}s:\n{log.read_text()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
