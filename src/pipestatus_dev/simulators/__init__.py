"""Provider API simulators for tests, the bench and the demo (README, "Pollers").

Each is a small Starlette app serving a provider's documented resources, enforcing its
auth, paginating as it does, and answering 429 with ``Retry-After`` when told to (or
every ``rate_limit_every``-th request). Runs evolve when a test (or ``evolve()``) moves
them; serve one with ``pipestatus.adapters.asgi.AsgiServer``. ``codat_webhooks`` sends
signed Codat events to the ingress with Svix's retry schedule.
"""

from pipestatus_dev.simulators.base import Simulator
from pipestatus_dev.simulators.codat import CodatSimulator
from pipestatus_dev.simulators.krenalis import KrenalisSimulator
from pipestatus_dev.simulators.nuvo import NuvoSimulator
from pipestatus_dev.simulators.zoho import ZohoSimulator

__all__ = ["CodatSimulator", "KrenalisSimulator", "NuvoSimulator", "Simulator", "ZohoSimulator"]
