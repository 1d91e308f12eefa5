"""``pipestatus ingress`` over real HTTP with a real broker: statuses, the record, the worker.

Signatures come from the ``standardwebhooks`` package (an independent implementation).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from pipestatus.adapters.asgi import AsgiServer
from pipestatus.domain.states import Provider
from pipestatus_dev.embedded import LOOPBACK, EmbeddedKafka, free_port
from pipestatus_dev.provision.services import TestServices
from tests.integration.db_tools import fetch
from tests.integration.ingress_tools import (
    NEW,
    TOKEN,
    ingress_settings,
    read_topic,
    running_ingress,
    signed,
)
from tests.integration.kafka_tools import create_topics, worker_settings
from tests.integration.tcp_proxy import TcpProxy
from tests.integration.worker_tools import eventually, get, running_worker

pytestmark = [pytest.mark.services]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "codat"
#: Codat's read.completed as Svix delivers it, odd spacing kept: the record must be these bytes.
BODY = (FIXTURES / "read_completed.json").read_bytes().replace(b'"id":', b'"id" :', 1)
BAD_SECRET = "whsec_" + "d3Jvbmctc2VjcmV0LW9mLXRoaXJ0eS10d28tYnl0ZXM="


@pytest.fixture
async def topic(services: TestServices) -> str:
    name = f"runs.codat.ingress.{uuid.uuid4().hex[:10]}"
    await create_topics(services.kafka_bootstrap, [name])
    return name


@pytest.fixture
async def ingress(services: TestServices, topic: str) -> AsyncIterator[AsgiServer]:
    async with running_ingress(
        ingress_settings(services.kafka_bootstrap, topic, max_body_bytes=4096)
    ) as server:
        yield server


async def post(
    server: AsgiServer, source: str, body: bytes, headers: dict[str, str]
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        return await client.post(f"/webhooks/{source}", content=body, headers=headers)


async def test_a_signed_delivery_becomes_its_bytes_on_kafka(
    services: TestServices, ingress: AsgiServer, topic: str
) -> None:
    headers = signed(BODY, msg_id="msg_2pJ9")
    response = await post(ingress, "codat", BODY, headers)
    assert (response.status_code, response.content) == (204, b"")

    [record] = await read_topic(services.kafka_bootstrap, topic, 1)
    assert record.value == BODY  # byte for byte
    carried = {name: value.decode() for name, value in record.headers}
    assert carried["webhook-id"] == carried["ce_id"] == "msg_2pJ9"
    assert carried["webhook-timestamp"] == headers["webhook-timestamp"]
    assert carried["ce_specversion"] == "1.0"
    assert carried["ce_source"] == "codat"
    assert carried["ce_type"] == "io.codat.read.completed"
    assert record.key == b"msg_2pJ9"  # five runs in one delivery: keyed by the webhook id


STATUS_CASES: dict[str, tuple[Callable[[], dict[str, str]], bytes, int]] = {
    "rotated: the new secret": (lambda: signed(BODY, NEW), BODY, 204),
    "svix-* spellings": (
        lambda: {k.replace("webhook-", "svix-"): v for k, v in signed(BODY).items()}, BODY, 204
    ),
    "tampered body": (lambda: signed(BODY), BODY.replace(b"Complete", b"Completf", 1), 401),
    "wrong secret": (lambda: signed(BODY, BAD_SECRET), BODY, 401),
    "stale timestamp": (lambda: signed(BODY, at=time.time() - 301), BODY, 401),
    "future timestamp": (lambda: signed(BODY, at=time.time() + 301), BODY, 401),
    "no signature header": (
        lambda: {k: v for k, v in signed(BODY).items() if k != "webhook-signature"}, BODY, 401
    ),
    "no headers at all": (dict, BODY, 401),
    "oversize": (lambda: signed(b" " * 5000 + BODY), b" " * 5000 + BODY, 413),
    "empty body": (lambda: signed(b""), b"", 400),
}  # fmt: skip


@pytest.mark.parametrize("case", list(STATUS_CASES))
async def test_each_kind_of_request_gets_its_status(
    services: TestServices, ingress: AsgiServer, topic: str, case: str
) -> None:
    make_headers, body, expected = STATUS_CASES[case]
    response = await post(ingress, "codat", body, make_headers())
    assert response.status_code == expected
    if expected == 401:
        assert response.content == b""  # no hint of what was wrong
    stored = await read_topic(services.kafka_bootstrap, topic, 0, within_s=0)
    assert len(stored) == (1 if expected == 204 else 0)


async def test_an_oversize_body_without_a_length_is_cut_off_while_streaming(
    ingress: AsgiServer,
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 1024

    async with httpx.AsyncClient(base_url=ingress.url, timeout=30) as client:
        response = await client.post(
            "/webhooks/codat", content=chunks(), headers=signed(b"x" * 10240)
        )
    assert response.status_code == 413


async def test_unknown_sources_tokens_and_open_sources(
    services: TestServices, ingress: AsgiServer, topic: str
) -> None:
    assert (await post(ingress, "nobody", BODY, signed(BODY))).status_code == 404
    assert (await post(ingress, "jobs", BODY, {"x-pipestatus-token": "guess"})).status_code == 401
    assert (await post(ingress, "jobs", BODY, {})).status_code == 401
    assert (await post(ingress, "jobs", BODY, {"X-Pipestatus-Token": TOKEN})).status_code == 204
    assert (await post(ingress, "open", BODY, {})).status_code == 204
    records = await read_topic(services.kafka_bootstrap, topic, 2)
    ids = [dict(r.headers)["ce_id"].decode() for r in records]
    digest = ids[0]
    assert digest.startswith("sha256:")
    assert ids == [digest, digest]  # the same body: one event
    metrics = (await get(f"{ingress.url}/metrics")).text
    assert 'pipestatus_ingress_requests_total{result="unauthorized",source="jobs"} 2.0' in metrics
    assert 'pipestatus_ingress_requests_total{result="stored",source="open"} 1.0' in metrics
    assert 'pipestatus_ingress_requests_total{result="unknown_source",source="unknown"} 1.0' in (
        metrics
    )


async def test_three_deliveries_of_one_webhook_have_one_effect(
    services: TestServices, ingress: AsgiServer, topic: str, database_url: str
) -> None:
    """As Codat's retries do: the same webhook id and body, three times."""
    headers = signed(BODY, msg_id="msg_retried")
    for _ in range(3):
        assert (await post(ingress, "codat", BODY, headers)).status_code == 204
    settings = worker_settings(services.kafka_bootstrap, database_url, {topic: Provider.codat})
    line = 'pipestatus_records_consumed_total{{outcome="{}",provider="codat"}} {}'
    async with running_worker(settings) as worker:

        async def consumed() -> bool:
            text = (await get(f"{worker.url}/metrics")).text.splitlines()
            return line.format("applied", "1.0") in text and line.format("duplicate", "2.0") in text

        await eventually(consumed, what="one applied and two duplicates")
    runs = await fetch(database_url, "SELECT run_id, state FROM runs ORDER BY run_id")
    document = json.loads(BODY)
    assert len(runs) == len(document["payload"]["dataTypes"])
    events = await fetch(database_url, "SELECT event_id FROM processed_events")
    assert [e["event_id"] for e in events] == ["ce:codat#msg_retried"]


async def test_broker_down_answers_503_and_nothing_is_lost() -> None:
    """A broker of its own behind the tests' proxy: closing the proxy is the outage."""
    listener, front = free_port(), free_port()
    async with EmbeddedKafka(port=listener, advertised_port=front):
        proxy = await TcpProxy(LOOPBACK, listener, port=front).start()
        topic = "runs.codat.outage"
        await create_topics(proxy.address, [topic])
        settings = ingress_settings(proxy.address, topic, produce_timeout_s=2, retry_after_s=7)
        deliveries = [(BODY, signed(BODY, msg_id=f"msg_{n}")) for n in range(6)]
        async with running_ingress(settings) as ingress:
            before, during, after = deliveries[:2], deliveries[2:4], deliveries[4:]
            assert [(await post(ingress, "codat", b, h)).status_code for b, h in before] == [
                204
            ] * 2
            await proxy.close()  # the broker is unreachable now
            refused = [await post(ingress, "codat", b, h) for b, h in during]
            assert [(r.status_code, r.headers.get("retry-after")) for r in refused] == [
                (503, "7")
            ] * 2
            assert (await get(f"{ingress.url}/readyz")).status_code == 503
            proxy = await TcpProxy(LOOPBACK, listener, port=front).start()
            try:

                async def resent() -> bool:  # the sender's retries, until one lands
                    return all(
                        [(await post(ingress, "codat", b, h)).status_code == 204 for b, h in during]
                    )

                await eventually(resent, within_s=60, what="the broker to take records again")
                assert [(await post(ingress, "codat", b, h)).status_code for b, h in after] == [
                    204
                ] * 2
                records = await read_topic(proxy.address, topic, len(deliveries))
            finally:
                await proxy.close()
    ids = {dict(r.headers)["webhook-id"].decode() for r in records}
    assert ids == {h["webhook-id"] for _, h in deliveries}  # none lost (re-sends may repeat)
    assert all(r.value == BODY for r in records)
