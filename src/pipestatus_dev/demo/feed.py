"""Demo traffic: the benchmark's realistic workload, paced, with some runs left stuck."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer

from pipestatus.domain.states import Provider
from pipestatus_dev.world import BenchRecord, generate

#: Share of runs whose life is cut after its first report, so PipelineRunStuck fires.
STUCK_SHARE = 0.03


def demo_records(count: int, seed: int = 7) -> list[BenchRecord]:
    """All four providers, duplicates, reorderings, reruns, invalid records, a few stuck."""
    workload = generate(count, seed=seed)
    lives = sorted({r.life for r in workload.records if r.life >= 0})
    chooser = random.Random(seed)  # noqa: S311  # reproducible demo data, not secrets
    stuck = set(chooser.sample(lives, max(1, int(len(lives) * STUCK_SHARE))))
    return [r for r in workload.records if r.life not in stuck or r.step == 0]


class Feeder:
    """Produces records to the provider topics at a steady rate."""

    def __init__(self, bootstrap: str, topics: dict[Provider, str], rate: float) -> None:
        self._bootstrap = bootstrap
        self._topics = topics
        self._rate = rate
        self.produced = 0

    async def run(self, records: Sequence[BenchRecord], stop: asyncio.Event) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self._bootstrap, enable_idempotence=False)
        await producer.start()
        try:
            loop = asyncio.get_running_loop()
            began = loop.time()
            for index, record in enumerate(records):
                if stop.is_set():
                    return
                due = began + index / self._rate
                if (wait := due - loop.time()) > 0:
                    try:
                        async with asyncio.timeout(wait):
                            await stop.wait()
                        return
                    except TimeoutError:
                        pass
                await producer.send(
                    self._topics[record.provider],
                    record.value,
                    key=record.key,
                    headers=list(record.headers),
                )
                self.produced += 1
            await producer.flush()
        finally:
            await producer.stop()
