"""Property tests of the read API driven by the committed ``schemas/openapi.json``.

schemathesis generates requests from the committed document (not from the app), sends
them over real HTTP to ``pipestatus serve`` on a database the real worker filled, and
runs its checks on every answer: no 5xx, every status, content type and body as the
document says, and 401/403 for the replay when its token is left out.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import Case
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import positive_data_acceptance

from pipestatus.adapters.asgi import AsgiServer
from pipestatus.serve import run_serve
from pipestatus_dev.provision.services import TestServices
from tests.integration.api_tools import TOKEN, Filled, filled_database, serve_settings

pytestmark = [pytest.mark.services, pytest.mark.slow]

COMMITTED = Path(__file__).resolve().parents[2] / "schemas" / "openapi.json"
SCHEMA = schemathesis.openapi.from_path(COMMITTED)
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations() if isinstance(result, Ok)]
EXAMPLES = 60


@pytest.fixture(scope="module")
def filled(services: TestServices) -> Iterator[Filled]:
    yield from filled_database(services)


@pytest.fixture(scope="module")
def base_url(filled: Filled) -> Iterator[str]:
    """``pipestatus serve`` on a loop in a thread of its own (schemathesis calls are
    synchronous)."""
    ready = threading.Event()
    found: dict[str, object] = {}

    async def main() -> None:
        stop = asyncio.Event()
        found["stop"], found["loop"] = stop, asyncio.get_running_loop()

        def on_ready(server: AsgiServer) -> None:
            found["url"] = server.url
            ready.set()

        try:
            await run_serve(serve_settings(filled), stop=stop, on_ready=on_ready)
        finally:
            ready.set()

    thread = threading.Thread(target=asyncio.run, args=(main(),), name="serve")
    thread.start()
    try:
        assert ready.wait(60), "serve did not start"
        assert "url" in found, "serve stopped while starting"
        yield str(found["url"])
    finally:
        loop, stop = found["loop"], found["stop"]
        assert isinstance(loop, asyncio.AbstractEventLoop)
        assert isinstance(stop, asyncio.Event)
        loop.call_soon_threadsafe(stop.set)
        thread.join(60)


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.label)
def test_the_api_keeps_its_openapi_contract(base_url: str, operation: Any) -> None:
    strategy = operation.as_strategy()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(case=strategy)
    def check(case: Case[Any]) -> None:
        # A cursor is opaque: the document cannot say which strings the API handed out, so
        # a made-up one is rightly refused (400, a problem document, checked all the same).
        made_up_cursor = "cursor" in (case.query or {})
        case.call_and_validate(
            base_url=base_url,
            headers={"Authorization": f"Bearer {TOKEN}"},
            excluded_checks=[positive_data_acceptance] if made_up_cursor else [],
        )

    check()
