"""Creating and deleting topics on whichever broker was provisioned."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from pipestatus.adapters.kafka import client_options
from pipestatus.settings import KafkaSettings

logger = logging.getLogger(__name__)


def _admin(kafka: KafkaSettings | str) -> AIOKafkaAdminClient:
    if isinstance(kafka, str):
        return AIOKafkaAdminClient(bootstrap_servers=kafka)
    return AIOKafkaAdminClient(**client_options(kafka))


async def create_topics(
    kafka: KafkaSettings | str, names: Iterable[str], *, partitions: int = 1
) -> None:
    """Create ``names`` (replication factor 1) on a bootstrap string or configured cluster."""
    admin = _admin(kafka)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in names]
        )
    finally:
        await admin.close()


async def delete_topics(kafka: KafkaSettings | str, names: Iterable[str]) -> None:
    """Best-effort deletion (a configured cluster may refuse it); failures are logged."""
    admin = _admin(kafka)
    try:
        await admin.start()
        await admin.delete_topics(list(names))
    except Exception as exc:  # noqa: BLE001  # best-effort clean-up
        logger.warning("could not delete topics: %s", exc)
    finally:
        await admin.close()
