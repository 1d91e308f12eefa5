"""The demo's edge: provider simulators polled by ``pipestatus poll``, and signed Codat
webhooks (one in ten with a wrong secret) through ``pipestatus ingress``.

Everything runs in the demo's process and loop: four simulators whose runs evolve by
themselves, the poller polling each every second, the ingress, and a Codat sender
delivering a ``read.completed`` every two seconds with Svix's retry schedule (scaled).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from pipestatus.adapters.asgi import AsgiServer
from pipestatus.adapters.polling import PollMetrics
from pipestatus.ingress import run_ingress
from pipestatus.poller import run_poller
from pipestatus.settings import Settings
from pipestatus_dev.simulators import (
    CodatSimulator,
    KrenalisSimulator,
    NuvoSimulator,
    Simulator,
    ZohoSimulator,
)
from pipestatus_dev.simulators.codat_webhooks import CodatWebhookSender, read_completed
from pipestatus_dev.simulators.zoho import JOB_URL, JOBS_URL

LOOPBACK = "127.0.0.1"


@dataclass
class EdgeStats:
    metrics: PollMetrics = field(default_factory=PollMetrics)
    delivered: int = 0
    rejected: int = 0

    def sample(self, name: str, **labels: str) -> int:
        return int(self.metrics.registry.get_sample_value(name, labels) or 0)

    def line(self) -> str:
        polls = sum(
            self.sample("pipestatus_polls_total", source=p, outcome="ok")
            for p in ("krenalis", "nuvo", "codat", "zoho")
        )
        published = sum(
            self.sample("pipestatus_poll_published_total", source=p)
            for p in ("krenalis", "nuvo", "codat", "zoho")
        )
        return (
            f"EDGE  polls={polls} published={published}  webhooks delivered={self.delivered}"
            f" refused_bad_signature={self.rejected} (401 answers)"
        )


def _worlds() -> dict[str, Simulator]:
    krenalis = KrenalisSimulator(evolve_every_s=3, rate_limit_every=17, retry_after_s=0.5)
    nuvo = NuvoSimulator(evolve_every_s=3)
    codat = CodatSimulator(evolve_every_s=2)
    company = codat.company()
    for data_type in ("invoices", "bills", "customers"):
        codat.request_read(company, data_type)
    zoho = ZohoSimulator(evolve_every_s=3)
    for sim in (krenalis, nuvo, zoho):
        sim.evolve()
    return {"krenalis": krenalis, "nuvo": nuvo, "codat": codat, "zoho": zoho}


def _sources(urls: dict[str, str], sims: dict[str, Any]) -> list[dict[str, Any]]:
    zoho = sims["zoho"]
    return [
        {"name": "krenalis", "provider": "krenalis", "base_url": urls["krenalis"],
         "api_key": sims["krenalis"].api_key, "workspace": "1", "interval_s": 1},
        {"name": "nuvo", "provider": "nuvo", "base_url": urls["nuvo"],
         "license_key": sims["nuvo"].license_key, "interval_s": 1},
        {"name": "codat", "provider": "codat", "base_url": urls["codat"],
         "api_key": sims["codat"].api_key, "interval_s": 1, "quota_reserve": 0},
        {"name": "zoho", "provider": "zoho_dataprep", "base_url": urls["zoho"],
         "accounts_url": urls["zoho"], "client_id": zoho.client_id,
         "client_secret": zoho.client_secret, "refresh_token": zoho.refresh_token,
         "job_url": JOB_URL, "jobs_url": JOBS_URL, "jobs_field": "jobs",
         "pipeline_ids": sorted(zoho.pipelines), "interval_s": 1},
    ]  # fmt: skip


@contextlib.asynccontextmanager
async def running_edge(bootstrap: str, database_url: str) -> AsyncIterator[EdgeStats]:
    """Simulators, poller, ingress and webhook sender until the block ends."""
    stats = EdgeStats()
    sims = _worlds()
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    wrong = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    async with contextlib.AsyncExitStack() as stack:
        urls = {}
        for name, sim in sims.items():
            server = await stack.enter_async_context(
                AsgiServer(sim.app(), host=LOOPBACK, port=0, name=f"{name}-simulator")
            )
            urls[name] = server.url
        settings = Settings(
            kafka={"bootstrap_servers": bootstrap},
            database={"url": database_url},
            http={"enabled": False},
            poll={"sources": _sources(urls, sims), "retry_max_s": 5},
            ingress={"host": LOOPBACK, "port": 0, "sources": [
                {"name": "codat", "provider": "codat", "verify": "standard-webhooks",
                 "secrets": [secret]},
            ]},
        )  # fmt: skip
        ready: asyncio.Future[AsgiServer] = asyncio.get_running_loop().create_future()
        edge_stop = asyncio.Event()
        tasks = [
            asyncio.create_task(run_ingress(settings, stop=edge_stop, on_ready=ready.set_result)),
            asyncio.create_task(run_poller(settings, stop=edge_stop, metrics=stats.metrics)),
        ]
        ingress = await ready
        tasks.append(asyncio.create_task(_webhooks(ingress.url, secret, wrong, stats, edge_stop)))
        try:
            yield stats
        finally:
            edge_stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)


async def _webhooks(
    url: str, secret: str, wrong: str, stats: EdgeStats, stop: asyncio.Event
) -> None:
    connection = str(uuid.uuid4())
    count = 0
    while not stop.is_set():
        count += 1
        key = wrong if count % 10 == 0 else secret
        # Svix's schedule (5 s … 10 h) shrunk: a refused delivery gives up within 2 s
        sender = CodatWebhookSender(f"{url}/webhooks/codat", key, time_scale=0.00002)
        event = read_completed(str(uuid.uuid4()), connection, ["invoices", "bills"])
        if key is secret:
            stats.delivered += await sender.deliver(event)
        else:
            await sender.deliver(event)
            stats.rejected += sum(o == "401" for _id, _n, o in sender.attempts)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await stop.wait()
