"""The Codat webhook simulator against the real ingress: signed, retried like Svix, stored once."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from pipestatus.settings import Settings
from pipestatus_dev.embedded import LOOPBACK, free_port
from pipestatus_dev.provision.services import TestServices
from pipestatus_dev.simulators.codat_webhooks import CodatWebhookSender, read_completed
from tests.integration.ingress_tools import NEW, ingress_settings, read_topic, running_ingress
from tests.integration.poll_tools import fresh_topic, headers, value

pytestmark = [pytest.mark.services]


async def test_a_delivery_retried_until_the_ingress_is_up_is_one_record(
    services: TestServices,
) -> None:
    topic = await fresh_topic(services.kafka_bootstrap, "codat")
    port = free_port()
    base: Settings = ingress_settings(services.kafka_bootstrap, topic)
    settings = base.model_copy(
        update={"ingress": base.ingress.model_copy(update={"host": LOOPBACK, "port": port})}
    )
    # 5 s, 5 min, 30 min … scaled to 10 ms, 0.6 s, 3.6 s: the ingress starts during the wait
    sender = CodatWebhookSender(f"http://{LOOPBACK}:{port}/webhooks/codat", NEW, time_scale=0.002)
    event = read_completed(str(uuid.uuid4()), str(uuid.uuid4()), ["invoices", "bills"])
    delivery = asyncio.create_task(sender.deliver(event))
    await asyncio.sleep(0.2)  # the first two attempts find nothing listening
    async with running_ingress(settings):
        assert await asyncio.wait_for(delivery, 30)
    outcomes = [outcome for _id, _n, outcome in sender.attempts]
    assert outcomes[:2] == ["ConnectError", "ConnectError"]
    assert outcomes[-1] == "204"
    assert len({msg_id for msg_id, _n, _o in sender.attempts}) == 1  # one webhook id throughout
    [record] = await read_topic(services.kafka_bootstrap, topic, 1)
    assert value(record) == event
    assert headers(record)["webhook-id"] == sender.attempts[0][0]


async def test_a_wrong_secret_is_retried_to_the_end_of_the_schedule(
    services: TestServices,
) -> None:
    topic = await fresh_topic(services.kafka_bootstrap, "codat")
    wrong = "whsec_" + "d3Jvbmctc2VjcmV0LW9mLXRoaXJ0eS10d28tYnl0ZXM="
    async with running_ingress(ingress_settings(services.kafka_bootstrap, topic)) as server:
        sender = CodatWebhookSender(f"{server.url}/webhooks/codat", wrong, time_scale=0.00002)
        event = read_completed(str(uuid.uuid4()), str(uuid.uuid4()), ["invoices"])
        assert not await asyncio.wait_for(sender.deliver(event), 30)
    assert [outcome for _id, _n, outcome in sender.attempts] == ["401"] * 8
