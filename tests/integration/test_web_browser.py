"""The web page in real headless Chromium (Debian's ``chromium``, driven by Playwright).

On a database the real worker filled: filter runs through the form (the filters land in
the URL), page through every run, open a run's timeline, replay a dead letter with the
write token after being refused without it. Screenshots of each step are saved under
``test-artifacts/web/`` (gitignored). Without Chromium these tests fail and say what to
install: they never skip.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Error, Page, async_playwright

from pipestatus.adapters.asgi import AsgiServer
from pipestatus_dev.provision.services import TestServices
from tests.integration.api_tools import (
    AWKWARD_RUN,
    REPLAYABLE_RUN,
    TOKEN,
    Filled,
    filled_database,
    run_uuid,
    running_serve,
    serve_settings,
)
from tests.integration.db_tools import fetch

pytestmark = [pytest.mark.services, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
INSTALL = "install Debian's Chromium: apt-get install -y chromium (the package `chromium`)"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
ORDER = "ORDER BY updated_at DESC, provider DESC, run_id DESC"


@pytest.fixture(scope="module")
def filled(services: TestServices) -> Iterator[Filled]:
    yield from filled_database(services)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"no {CHROMIUM}: {INSTALL}")
    async with async_playwright() as playwright:
        try:
            launched = await playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox"], headless=True
            )
        except Error as exc:
            pytest.fail(f"Chromium at {CHROMIUM} did not start ({exc}): {INSTALL}")
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def server(filled: Filled) -> AsyncIterator[AsgiServer]:
    async with running_serve(serve_settings(filled)) as served:
        yield served


@pytest.fixture
async def page(browser: Browser, server: AsgiServer) -> AsyncIterator[Page]:
    context = await browser.new_context(
        base_url=server.url, viewport={"width": 1400, "height": 900}
    )
    opened = await context.new_page()
    try:
        yield opened
    finally:
        await context.close()


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def shown_runs(page: Page) -> list[str]:
    return [await row.get_attribute("data-run") or "" for row in await page.locator("tr.run").all()]


async def test_filter_failed_runs_through_the_form(page: Page, filled: Filled) -> None:
    await page.goto("/")
    await page.locator("input[name=state][value=failed]").check()
    await page.locator("select[name=provider]").select_option("codat")
    await page.get_by_role("button", name="Filter").click()
    await page.wait_for_url("**/?*state=failed*")
    assert "provider=codat" in page.url
    await shot(page, "runs-filtered")
    await page.screenshot(path=str(ARTIFACTS / "runs-filtered-viewport.png"))
    expected = await fetch(
        filled.database_url,
        f"SELECT provider, run_id FROM runs WHERE state = 'failed' AND provider = 'codat' {ORDER}",  # noqa: S608
    )
    assert len(expected) < 50  # one page
    assert await shown_runs(page) == [f"{r['provider']}/{r['run_id']}" for r in expected]
    states = await page.locator("tr.run td:nth-child(4)").all_inner_texts()
    assert set(states) == {"failed"}
    # The failure reason is in the row.
    row = page.locator(f"tr.run[data-run='codat/{run_uuid('streak-f2')}']")
    assert "mapping: MapError while pulling" in await row.inner_text()
    # The URL is shareable: a fresh page on it shows the same rows.
    again = await page.context.new_page()
    await again.goto(page.url)
    assert await shown_runs(again) == await shown_runs(page)


async def test_page_through_every_run(page: Page, filled: Filled) -> None:
    expected = await fetch(filled.database_url, f"SELECT provider, run_id FROM runs {ORDER}")  # noqa: S608
    await page.goto("/?limit=25")
    seen: list[str] = []
    pages = 0
    while True:
        pages += 1
        seen += await shown_runs(page)
        if pages == 2:
            await shot(page, "runs-page-2")
        older = page.get_by_role("link", name="older »")
        if await older.count() == 0:
            break
        await older.click()
        await page.wait_for_load_state()
    assert pages == -(-len(expected) // 25)
    assert seen == [f"{r['provider']}/{r['run_id']}" for r in expected]


async def test_open_a_run_and_read_its_timeline(page: Page, filled: Filled) -> None:
    run_id = run_uuid("streak-f2")
    [pipeline] = await fetch(
        filled.database_url, "SELECT pipeline_id FROM runs WHERE run_id = $1", run_id
    )
    await page.goto("/pipelines")
    await shot(page, "pipelines")
    streak = page.locator("tr.pipeline", has_text=pipeline["pipeline_id"])
    assert "2" in await streak.locator("td:nth-child(5)").inner_text()
    await streak.get_by_role("link", name=run_id).click()
    await page.wait_for_url(f"**/runs/codat/{run_id}")
    await shot(page, "run")
    transitions = await fetch(
        filled.database_url,
        "SELECT to_state FROM run_transitions WHERE run_id = $1 ORDER BY id",
        run_id,
    )
    items = page.locator("#timeline li.transition")
    assert await items.count() == len(transitions)
    assert "failed" in await items.last.inner_text()
    assert "MapError while pulling" in await page.locator("main").inner_text()


async def test_a_run_id_with_url_characters_opens_from_the_list(page: Page) -> None:
    await page.goto("/?provider=krenalis&limit=500")
    await page.get_by_role("link", name=AWKWARD_RUN, exact=True).click()
    await page.wait_for_load_state()
    assert AWKWARD_RUN in await page.locator("h1").inner_text()
    assert await page.locator("#timeline li.transition").count() >= 1


async def test_replay_a_dead_letter_refused_without_the_token(page: Page, filled: Filled) -> None:
    [letter] = await fetch(
        filled.database_url,
        "SELECT id, replayed_at FROM dead_letters WHERE reason = 'unknown_provider'",
    )
    assert letter["replayed_at"] is None
    await page.goto("/dead-letters")
    await shot(page, "dead-letters")
    await page.get_by_role("link", name=str(letter["id"]), exact=True).click()
    await page.wait_for_url(f"**/dead-letters/{letter['id']}")
    assert REPLAYABLE_RUN in await page.locator("#payload").inner_text()  # the raw payload

    # Without a token (the browser's own `required` check taken off): refused.
    await page.locator("input[name=token]").evaluate("field => field.removeAttribute('required')")
    async with page.expect_response(lambda r: r.request.method == "POST") as without:
        await page.get_by_role("button", name="Replay this dead letter").click()
    assert (await without.value).status == 401
    assert "a bearer token is required" in await page.get_by_role("alert").inner_text()

    await page.locator("input[name=token]").fill("not-the-token")
    async with page.expect_response(lambda r: r.request.method == "POST") as refused:
        await page.get_by_role("button", name="Replay this dead letter").click()
    assert (await refused.value).status == 401
    assert "Refused" in await page.get_by_role("alert").inner_text()
    await shot(page, "replay-refused")
    [after] = await fetch(
        filled.database_url, "SELECT replayed_at FROM dead_letters WHERE id = $1", letter["id"]
    )
    assert after["replayed_at"] is None
    assert (
        await fetch(filled.database_url, "SELECT 1 FROM runs WHERE run_id = $1", REPLAYABLE_RUN)
        == []
    )

    await page.locator("input[name=token]").fill(TOKEN)
    await page.get_by_role("button", name="Replay this dead letter").click()
    await page.wait_for_url("**/dead-letters/*?replayed=*")
    assert "applied=1" in await page.get_by_role("status").inner_text()
    assert "replayed" in await page.locator("#replay-state").inner_text()
    assert await page.locator("#replay-form").count() == 0
    await shot(page, "replay-applied")
    [run] = await fetch(
        filled.database_url, "SELECT state FROM runs WHERE run_id = $1", REPLAYABLE_RUN
    )
    assert run["state"] == "running"


async def test_no_replay_form_without_a_write_token(browser: Browser, filled: Filled) -> None:
    [letter] = await fetch(
        filled.database_url, "SELECT id FROM dead_letters WHERE reason = 'not_json'"
    )
    async with running_serve(serve_settings(filled, token=None)) as server:
        context = await browser.new_context(base_url=server.url)
        page = await context.new_page()
        await page.goto(f"/dead-letters/{letter['id']}")
        assert "status=Complete&id=42" in await page.locator("#payload").inner_text()
        assert await page.locator("#replay-form").count() == 0
        await context.close()


async def test_reads_without_javascript_and_asks_no_other_host(
    browser: Browser, server: AsgiServer
) -> None:
    requested: list[str] = []
    for javascript in (False, True):
        context = await browser.new_context(base_url=server.url, java_script_enabled=javascript)
        page = await context.new_page()
        page.on("request", lambda request: requested.append(request.url))
        for path in ("/", "/pipelines", "/dead-letters", "/alerts"):
            response = await page.goto(path)
            assert response is not None
            assert response.status == 200, path
        await page.goto("/")
        assert await page.locator("tr.run").count() > 0
        if javascript:
            # The vendored script refreshes the rows in place (every 10 s).
            await page.wait_for_function(
                "document.getElementById('live').dataset.refreshed", timeout=45_000
            )
        else:
            await shot(page, "runs-without-javascript")
        await context.close()
    assert requested
    assert all(url.startswith(server.url) for url in requested), requested
