"""A hand-written Kafka Metadata v2 probe: does a port speak Kafka, and which cluster answers."""

from __future__ import annotations

import random
import socket
import struct
from dataclasses import dataclass

# ------------------------------------------------------------ Kafka metadata probe


@dataclass(frozen=True, slots=True)
class KafkaBrokerInfo:
    """What a Kafka-protocol server says about itself in a Metadata (v2) response."""

    cluster_id: str | None
    controller_id: int
    brokers: tuple[tuple[int, str, int], ...]  # (node_id, host, port)


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self._data, self._pos)
        self._pos += struct.calcsize(fmt)
        return int(value)

    def string(self) -> str | None:
        length = self.take(">h")
        if length < 0:
            return None
        raw = self._data[self._pos : self._pos + length]
        if len(raw) != length:
            raise ValueError("truncated string in Kafka response")
        self._pos += length
        return raw.decode()


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("connection closed by the server")
        chunks += chunk
    return bytes(chunks)


def kafka_broker_info(host: str, port: int, *, timeout: float = 2.0) -> KafkaBrokerInfo:
    """Send one Kafka Metadata v2 request (no topics) and parse the brokers and cluster id.

    Proves the port speaks the Kafka protocol, and which cluster answers (so a
    stale process on a reused port is not mistaken for ours). Raises ``OSError``
    or ``ValueError`` when it does not.
    """
    correlation_id = random.randint(1, 2**31 - 1)  # noqa: S311 - not security relevant
    client_id = b"pipestatus-probe"
    # header v1: api_key=3 (Metadata), api_version=2, correlation_id, client_id; body: 0 topics
    body = struct.pack(">hhih", 3, 2, correlation_id, len(client_id)) + client_id
    body += struct.pack(">i", 0)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        if not 4 <= size <= 16 * 1024 * 1024:
            raise ValueError(f"not a Kafka response (frame size {size})")
        cursor = _Cursor(_recv_exact(sock, size))
    if cursor.take(">i") != correlation_id:
        raise ValueError("Kafka response correlation id does not match")
    brokers = []
    for _ in range(cursor.take(">i")):
        node_id = cursor.take(">i")
        broker_host = cursor.string() or ""
        broker_port = cursor.take(">i")
        cursor.string()  # rack
        brokers.append((node_id, broker_host, broker_port))
    cluster_id = cursor.string()
    controller_id = cursor.take(">i")
    return KafkaBrokerInfo(cluster_id, controller_id, tuple(brokers))
