"""`pipestatus demo --duration` runs unattended, shows runs reaching every state, and runs
arriving through the pollers and the ingress."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys

import pytest

from pipestatus.domain.states import Provider, RunState

pytestmark = [pytest.mark.services, pytest.mark.slow]


def final_totals(output: str) -> dict[str, int]:
    """The `all` row of the last RUNS table the demo printed."""
    header = [line for line in output.splitlines() if line.startswith("RUNS")][-1].split()[1:]
    totals = [line for line in output.splitlines() if re.match(r"^all\s", line)][-1].split()[1:]
    return dict(zip(header, map(int, totals), strict=True))


async def test_demo_runs_unattended_and_reaches_every_state() -> None:
    """The demo starts its own services, feeds all providers and every state shows up."""
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "pipestatus", "demo", "--duration", "30", "--rate", "80"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "metrics at http://127.0.0.1:" in out
    assert "web page at http://127.0.0.1:" in out
    totals = final_totals(out)
    missing = [s.value for s in RunState if totals.get(s.value, 0) == 0]
    assert not missing, f"no runs reached {missing}:\n{out[-2500:]}"
    assert re.search(r"DEAD LETTERS .*not_json=\d+", out)
    assert "FIRING" in out
    assert "[ok]" in out
    assert "BAD SIGNATURE" not in out
    # the edge: runs of all four providers came through the real poller, Codat's also
    # through the real ingress; one webhook in ten is signed wrongly and refused
    via_pollers = [line for line in out.splitlines() if line.startswith("ARRIVED VIA POLLERS")][-1]
    for provider in Provider:
        assert re.search(rf"\b{provider.value}=[1-9]", via_pollers), via_pollers
    assert re.search(r"ARRIVED VIA INGRESS\s+codat=[1-9]", out)
    assert re.search(r"EDGE  polls=[1-9]\d* published=[1-9]", out)
    assert re.search(r"webhooks delivered=[1-9]\d* refused_bad_signature=[1-9]", out)
