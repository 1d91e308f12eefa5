"""The embedded Kafka-protocol broker: Tansu with memory storage."""

from __future__ import annotations

import functools
import logging
import os
import struct
import uuid
from pathlib import Path

from pipestatus_dev.embedded.binaries import free_port, tansu_binary
from pipestatus_dev.embedded.errors import (
    LOOPBACK,
)
from pipestatus_dev.embedded.probe import kafka_broker_info
from pipestatus_dev.embedded.process import EmbeddedService, ExitedEarlyError, child_env, port_taken

_log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- Kafka


class EmbeddedKafka(EmbeddedService):
    """A Tansu broker (Kafka protocol, memory storage) on 127.0.0.1.

    ``bootstrap_servers`` is ``"127.0.0.1:PORT"``. Tansu has no idempotent
    producer and no transactions (InitProducerId fails); see docs/notes-embedded.md.
    ``advertised_port`` makes the broker tell clients (in metadata) to connect to another
    port of 127.0.0.1 than the one it listens on: a proxy's, for network-fault tests.
    """

    _what = "embedded Kafka (Tansu)"

    def __init__(
        self,
        *,
        port: int | None = None,
        advertised_port: int | None = None,
        cluster_id: str | None = None,
        binary: str | os.PathLike[str] | None = None,
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        keep_logs: bool = False,
        rust_log: str = "warn",
    ) -> None:
        super().__init__(
            startup_timeout=startup_timeout, stop_timeout=stop_timeout, keep_logs=keep_logs
        )
        self._requested_port = port
        self.advertised_port = advertised_port
        self.cluster_id = cluster_id or f"pipestatus-{uuid.uuid4().hex[:12]}"
        self._binary = Path(binary) if binary is not None else None
        self.rust_log = rust_log

    @property
    def binary(self) -> Path | None:
        return self._binary

    @property
    def bootstrap_servers(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def _start(self) -> None:
        binary = self._binary or tansu_binary()
        self._binary = binary
        workdir = self._make_workdir("pipestatus-kafka-")
        env = child_env(
            (),
            # Tansu reads these as defaults; the command line sets the first four, and a
            # schema registry or OTLP exporter inherited from the shell would change behaviour.
            drop=(
                "CLUSTER_ID",
                "LISTENER_URL",
                "ADVERTISED_LISTENER_URL",
                "STORAGE_ENGINE",
                "SCHEMA_REGISTRY",
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ),
        )
        env.setdefault("RUST_LOG", self.rust_log)
        attempts = 1 if self._requested_port is not None else 3
        for attempt in range(1, attempts + 1):
            port = self._requested_port or free_port()
            self._port = port
            url = f"tcp://{LOOPBACK}:{port}"
            advertised = f"tcp://{LOOPBACK}:{self.advertised_port or port}"
            argv = [
                str(binary),
                "broker",
                "--cluster-id",
                self.cluster_id,
                "--listener-url",
                url,
                "--advertised-listener-url",
                advertised,
                "--storage-engine",
                "memory://tansu/",
            ]
            self._spawn(argv, env=env, cwd=workdir)
            try:
                self._wait_ready(functools.partial(self._answers, port), f"Tansu broker {binary}")
            except ExitedEarlyError:
                if attempt < attempts and port_taken(self._log_path):
                    _log.info("port %d was taken; retrying on another port", port)
                    continue
                raise
            return

    def _answers(self, port: int) -> bool:
        try:
            info = kafka_broker_info(LOOPBACK, port, timeout=1.0)
        except (OSError, ValueError, struct.error):
            return False
        # Only our broker knows our random cluster id (a stale process may hold the port).
        return info.cluster_id == self.cluster_id
