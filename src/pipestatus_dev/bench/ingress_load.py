"""Load test of ``pipestatus ingress`` (docs/benchmarks.md, "Ingress load").

The ingress runs as its own process (the real command); this process offers signed Codat
``read.completed`` deliveries at a fixed rate over loopback, open loop: request *i* is
due at ``start + i / rate`` and its latency counts from then, so a slow server cannot
hide its queueing by slowing the sender down. At the end the ingress gets SIGTERM, and
the records on the topic are counted against the 2xx answers.

    python -m pipestatus_dev.bench.ingress_load --rate 200 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import statistics
import sys
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from pipestatus.edge.signatures import sign, signing_key
from pipestatus_dev.embedded import EmbeddedKafka, free_port
from pipestatus_dev.provision.topics import create_topics

SECRET = "whsec_" + base64.b64encode(b"ingress-load-test-secret-32bytes").decode()
KAFKA_ENV = "PIPESTATUS_BENCH_KAFKA_BOOTSTRAP"
PARTITIONS = 3


@dataclass
class LoadReport:
    offered_rps: float
    seconds: float
    sent: int
    statuses: dict[int, int]
    achieved_rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    on_topic: int
    #: Answered 2xx but not on the topic: must be 0 (never acknowledge what is not stored).
    acknowledged_missing: int
    ingress_exit: int | None
    errors: dict[str, int] = field(default_factory=dict)


def delivery(company: str) -> bytes:
    """One Codat ``read.completed`` webhook body, unique per call."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    document = {
        "id": str(uuid.uuid4()),
        "eventType": "read.completed",
        "generatedDate": now,
        "payload": {
            "referenceCompany": {"id": company, "name": "Load Test Ltd"},
            "modifiedFromDate": now,
            "dataTypes": [
                {"connectionId": str(uuid.uuid4()), "dataType": "invoices",
                 "recordsModified": True, "status": "Complete", "issues": []},
            ],
        },
    }  # fmt: skip
    return json.dumps(document).encode()


def signed_headers(key: bytes, body: bytes) -> dict[str, str]:
    msg_id, stamp = f"msg_{uuid.uuid4().hex}", str(int(time.time()))
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": stamp,
        "webhook-signature": "v1," + sign(key, msg_id, stamp, body),
        "content-type": "application/json",
    }


async def offer(
    url: str, *, rate: float, seconds: float, sigterm: asyncio.subprocess.Process | None = None
) -> tuple[Counter[int], list[float], Counter[str], float, set[str]]:
    """Sends ``rate * seconds`` requests on schedule: statuses, latencies (s), errors, the
    span, and the webhook ids answered 2xx."""
    key = signing_key(SECRET)
    company = str(uuid.uuid4())
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    latencies: list[float] = []
    acknowledged: set[str] = set()
    loop = asyncio.get_running_loop()
    total = int(rate * seconds)
    # Built before the clock starts: the schedule measures the ingress, not the generator.
    prepared = []
    for _ in range(total):
        body = delivery(company)
        prepared.append((body, signed_headers(key, body)))
    connector = aiohttp.TCPConnector(limit=64)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:

        async def one(due: float, body: bytes, headers: dict[str, str]) -> None:
            try:
                async with client.post(url, data=body, headers=headers) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                errors[type(exc).__name__] += 1
                return
            statuses[status] += 1
            latencies.append(loop.time() - due)
            if 200 <= status < 300:
                acknowledged.add(headers["webhook-id"])

        start = loop.time()
        tasks = []
        for i, (body, headers) in enumerate(prepared):
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - loop.time()))
            tasks.append(asyncio.create_task(one(due, body, headers)))
            if sigterm is not None and i == total // 2:
                sigterm.send_signal(signal.SIGTERM)  # mid-load: in-flight requests finish
        await asyncio.gather(*tasks)
        span = loop.time() - start
    return statuses, latencies, errors, span, acknowledged


async def topic_ids(bootstrap: str, topic: str, partitions: int) -> list[str]:
    """The ``webhook-id`` of every record on ``topic``, read from the beginning.

    Read, not taken from the end offsets: Tansu's ListOffsets undercounts batched
    produce requests (3 194 against 3 200 records read back, seen here).
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        assigned = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ids: list[str] = []
        while batches := await consumer.getmany(timeout_ms=2000):
            for records in batches.values():
                ids.extend(dict(r.headers)["webhook-id"].decode() for r in records)
        return ids
    finally:
        await consumer.stop()


async def wait_ready(url: str, process: asyncio.subprocess.Process, within_s: float = 60) -> None:
    deadline = time.monotonic() + within_s
    async with httpx.AsyncClient(timeout=2) as client:
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"the ingress exited early with {process.returncode}")
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the ingress was not ready within {within_s:.0f}s")
            await asyncio.sleep(0.2)


async def run_load(
    bootstrap: str, *, rate: float, seconds: float, sigterm_midway: bool = False
) -> LoadReport:
    """Starts ``pipestatus ingress`` on ``bootstrap``, offers the load, stops it."""
    topic = f"runs.codat.load.{uuid.uuid4().hex[:8]}"
    await create_topics(bootstrap, [topic], partitions=PARTITIONS)
    port = free_port()
    sources = [{"name": "codat", "provider": "codat", "verify": "standard-webhooks",
                "secrets": [SECRET], "topic": topic}]  # fmt: skip
    env = {**os.environ, "PIPESTATUS_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
           "PIPESTATUS_INGRESS__PORT": str(port),
           "PIPESTATUS_INGRESS__SOURCES": json.dumps(sources),
           "PIPESTATUS_LOG_LEVEL": "WARNING"}  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pipestatus", "ingress", env=env
    )
    try:
        base = f"http://127.0.0.1:{port}"
        await wait_ready(f"{base}/readyz", process)
        statuses, latencies, errors, span, acknowledged = await offer(
            f"{base}/webhooks/codat",
            rate=rate,
            seconds=seconds,
            sigterm=process if sigterm_midway else None,
        )
        if not sigterm_midway:
            process.send_signal(signal.SIGTERM)
        exit_code = await asyncio.wait_for(process.wait(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    found = await topic_ids(bootstrap, topic, PARTITIONS)
    ordered = sorted(latencies) or [0.0]
    return LoadReport(
        offered_rps=rate,
        seconds=round(span, 2),
        sent=int(rate * seconds),
        statuses=dict(sorted(statuses.items())),
        achieved_rps=round(sum(statuses.values()) / span, 1) if span else 0.0,
        p50_ms=round(statistics.median(ordered) * 1000, 1),
        p99_ms=round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 1),
        max_ms=round(ordered[-1] * 1000, 1),
        on_topic=len(found),
        acknowledged_missing=len(acknowledged - set(found)),
        ingress_exit=exit_code,
        errors=dict(errors),
    )


async def main_async(args: argparse.Namespace) -> LoadReport:
    bootstrap = os.environ.get(KAFKA_ENV)
    if bootstrap:
        return await run_load(bootstrap, rate=args.rate, seconds=args.seconds)
    print("==> starting an embedded broker", file=sys.stderr)
    async with EmbeddedKafka() as kafka:
        print(f"==> offering {args.rate:g} requests/s for {args.seconds:g}s", file=sys.stderr)
        return await run_load(kafka.bootstrap_servers, rate=args.rate, seconds=args.seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipestatus_dev.bench.ingress_load")
    parser.add_argument("--rate", type=float, default=200, help="requests per second offered")
    parser.add_argument("--seconds", type=float, default=20, help="how long")
    report = asyncio.run(main_async(parser.parse_args(argv)))
    summary: dict[str, Any] = asdict(report)
    print(
        f"offered {report.offered_rps:g}/s for {report.seconds:g}s: {report.achieved_rps:g}/s "
        f"answered, p50 {report.p50_ms:g} ms, p99 {report.p99_ms:g} ms, max {report.max_ms:g} ms; "
        f"statuses {report.statuses}, on the topic {report.on_topic} "
        f"({report.acknowledged_missing} acknowledged but missing)"
    )
    print(json.dumps(summary))
    stored = report.statuses.get(204, 0)
    honest = report.acknowledged_missing == 0 and report.on_topic == stored == report.sent
    return 0 if honest and report.ingress_exit == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
