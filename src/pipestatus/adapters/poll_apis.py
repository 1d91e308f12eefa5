"""The client of each provider a poll source can name."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from pipestatus.adapters.poll_codat import CodatApi
from pipestatus.adapters.poll_http import Http, KrenalisApi, NuvoApi, PollApi
from pipestatus.adapters.poll_zoho import ZohoApi
from pipestatus.domain.states import Provider
from pipestatus.settings import PollSourceSettings

CLIENTS: dict[Provider, Callable[[Http], PollApi]] = {
    Provider.krenalis: KrenalisApi,
    Provider.nuvo: NuvoApi,
    Provider.codat: CodatApi,
    Provider.zoho_dataprep: ZohoApi,
}


def poll_api(client: httpx.AsyncClient, source: PollSourceSettings, max_wait_s: float) -> PollApi:
    return CLIENTS[source.provider](Http(client, source, max_wait_s))
