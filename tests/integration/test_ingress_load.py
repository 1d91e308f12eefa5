"""The ingress as a real process under load from this one (``pipestatus_dev.bench.ingress_load``).

Figures are reported, not asserted (docs/benchmarks.md quotes the benchmark command);
what is asserted is that every answer is honest: each 2xx is a record on the topic.
"""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from pipestatus_dev.bench.ingress_load import run_load
from pipestatus_dev.provision.services import TestServices

pytestmark = [pytest.mark.services]


async def test_a_fixed_rate_of_signed_requests_is_stored_one_record_per_answer(
    services: TestServices,
) -> None:
    report = await run_load(services.kafka_bootstrap, rate=100, seconds=3)
    print("\nINGRESS_LOAD " + json.dumps(asdict(report)))
    assert report.statuses == {204: 300}
    assert report.errors == {}
    assert report.on_topic == 300
    assert report.acknowledged_missing == 0
    assert report.ingress_exit == 0


async def test_sigterm_mid_load_finishes_requests_in_flight_and_exits_cleanly(
    services: TestServices,
) -> None:
    report = await run_load(services.kafka_bootstrap, rate=100, seconds=3, sigterm_midway=True)
    print("\nINGRESS_SIGTERM " + json.dumps(asdict(report)))
    assert report.ingress_exit == 0
    assert set(report.statuses) == {204}  # after the signal: refused connections, never a 5xx
    assert set(report.errors) <= {
        "ClientConnectorError",
        "ServerDisconnectedError",
        "ClientOSError",
    }
    assert report.statuses[204] + sum(report.errors.values()) == report.sent
    assert report.acknowledged_missing == 0  # every 2xx is on the topic ...
    assert report.on_topic == report.statuses[204]  # ... and nothing else is
