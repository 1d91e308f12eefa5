"""The web page: server-rendered Jinja2 views of the read API's data (no build step).

Filters live in the URL (shareable); a tiny vendored script (``static/refresh.js``)
swaps in fresh rows every few seconds, and every page reads fine without it. Nothing is
loaded from another host. Replay from the page needs the write token in the form, so a
page open in a browser cannot be made to replay by another site.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from pipestatus.adapters import api_queries as q
from pipestatus.adapters.api_http import ApiDeps, ApiProblemError, authorized_replay
from pipestatus.api_models import DEFAULT_LIMIT, MAX_LIMIT, CursorError, ReplayRequest, RunPage
from pipestatus.domain.states import Provider, RunState, provider_named

logger = logging.getLogger(__name__)

_ENV = Environment(
    loader=PackageLoader("pipestatus", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_SCRIPT = resources.files("pipestatus").joinpath("static/refresh.js").read_bytes()


class _BadFilterError(ValueError):
    pass


def render(name: str, code: int = 200, /, **context: Any) -> HTMLResponse:
    html = _ENV.get_template(name).render(**context)
    return HTMLResponse(html, status_code=code, headers={"Cache-Control": "no-store"})


def _one(params: dict[str, list[str]], name: str) -> str | None:
    values = [v for v in params.get(name, []) if v.strip()]
    return values[-1].strip() if values else None


def _moment(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _BadFilterError(f"{name}: not an ISO 8601 time ({text!r})") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise _BadFilterError(f"per page: a number from 1 to {MAX_LIMIT}")
    return int(text)


def _provider(text: str | None) -> Provider | None:
    try:
        return None if text is None else provider_named(text)
    except ValueError as exc:
        raise _BadFilterError(str(exc)) from None


def run_query(params: dict[str, list[str]]) -> q.RunQuery:
    """The runs page's filters, read from its URL."""
    try:
        states = tuple(RunState(s) for s in params.get("state", []) if s)
    except ValueError:
        raise _BadFilterError(f"state: one of {', '.join(s.value for s in RunState)}") from None
    warnings = _one(params, "warnings")
    if warnings not in (None, "true", "false"):
        raise _BadFilterError("warnings: true or false")
    return q.RunQuery(
        provider=_provider(_one(params, "provider")),
        states=states,
        pipeline_id=_one(params, "pipeline_id"),
        since=_moment(_one(params, "since"), "since"),
        until=_moment(_one(params, "until"), "until"),
        ended_since=_moment(_one(params, "ended_since"), "ended_since"),
        ended_until=_moment(_one(params, "ended_until"), "ended_until"),
        warnings=None if warnings is None else warnings == "true",
        cursor=_one(params, "cursor"),
        limit=_limit(_one(params, "limit")),
    )


def _with_cursor(path: str, params: dict[str, list[str]], cursor: str | None) -> str:
    kept = [(k, v) for k, values in params.items() if k != "cursor" for v in values if v]
    if cursor is not None:
        kept.append(("cursor", cursor))
    return f"{path}?{urlencode(kept)}" if kept else path


def web_router(deps: ApiDeps) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    store = deps.store

    @router.get("/static/refresh.js")
    async def script() -> Response:
        return Response(_SCRIPT, media_type="text/javascript")

    @router.get("/", response_class=HTMLResponse)
    async def runs_page(request: Request) -> HTMLResponse:
        params = parse_qs(request.url.query)
        filters = {
            "provider": _one(params, "provider"),
            "states": params.get("state", []),
            "pipeline_id": _one(params, "pipeline_id"),
            "since": _one(params, "since"),
            "until": _one(params, "until"),
            "warnings": _one(params, "warnings"),
            "limit": _one(params, "limit") or DEFAULT_LIMIT,
        }
        context: dict[str, Any] = {
            "section": "Runs",
            "filters": filters,
            "providers": [p.value for p in Provider],
            "states": [s.value for s in RunState],
        }
        try:
            query = run_query(params)
            page = await q.list_runs_page(store, query)
        except (_BadFilterError, CursorError) as exc:
            empty = RunPage(items=[], next_cursor=None)
            return render("runs.html", 400, error=str(exc), page=empty, **context)
        return render(
            "runs.html",
            page=page,
            live=query.cursor is None,
            next_page=_with_cursor("/", params, page.next_cursor) if page.next_cursor else None,
            first_page=_with_cursor("/", params, None) if query.cursor else None,
            **context,
        )

    @router.get("/runs/{provider}/{run_id:path}", response_class=HTMLResponse)
    async def run_page(provider: str, run_id: str) -> HTMLResponse:
        try:
            found = await q.run_detail(store, provider_named(provider), run_id)
        except ValueError:
            found = None
        if found is None:
            return render("error.html", 404, status=404, message=f"No run {provider}/{run_id}.")
        return render("run.html", section="Runs", detail=found)

    @router.get("/pipelines", response_class=HTMLResponse)
    async def pipelines_page(request: Request) -> HTMLResponse:
        params = parse_qs(request.url.query)
        try:
            page = await q.list_pipelines(
                store,
                provider=_provider(_one(params, "provider")),
                cursor=_one(params, "cursor"),
                limit=_limit(_one(params, "limit")),
            )
        except (_BadFilterError, CursorError) as exc:
            return render("error.html", 400, status=400, message=str(exc))
        next_page = (
            _with_cursor("/pipelines", params, page.next_cursor) if page.next_cursor else None
        )
        return render("pipelines.html", section="Pipelines", page=page, next_page=next_page)

    @router.get("/dead-letters", response_class=HTMLResponse)
    async def letters_page(request: Request) -> HTMLResponse:
        params = parse_qs(request.url.query)
        status = _one(params, "status") or "open"
        filters = {"reason": _one(params, "reason"), "status": status}
        try:
            if status not in ("open", "replayed", "all"):
                raise _BadFilterError("status: open, replayed or all")
            page = await q.list_dead_letters_page(
                store,
                reason=filters["reason"],
                provider=_provider(_one(params, "provider")),
                status=status,  # type: ignore[arg-type]  # checked just above
                cursor=_one(params, "cursor"),
                limit=_limit(_one(params, "limit")),
            )
        except (_BadFilterError, CursorError) as exc:
            return render("error.html", 400, status=400, message=str(exc))
        next_page = (
            _with_cursor("/dead-letters", params, page.next_cursor) if page.next_cursor else None
        )
        return render(
            "dead_letters.html",
            section="Dead letters",
            page=page,
            filters=filters,
            next_page=next_page,
        )

    @router.get("/dead-letters/{letter_id}", response_class=HTMLResponse)
    async def letter_page(letter_id: int, request: Request) -> HTMLResponse:
        return await _letter(letter_id, notice=request.query_params.get("replayed"))

    async def _letter(
        letter_id: int, *, notice: str | None = None, error: str | None = None, status: int = 200
    ) -> HTMLResponse:
        letter = await q.dead_letter_detail(store, letter_id) if 0 < letter_id < 2**63 else None
        if letter is None:
            return render("error.html", 404, status=404, message=f"No dead letter {letter_id}.")
        return render(
            "dead_letter.html",
            status,
            section="Dead letters",
            letter=letter,
            replay_enabled=deps.replay is not None and deps.write_token is not None,
            notice=f"Replayed: {notice}" if notice else None,
            error=error,
        )

    @router.post("/dead-letters/{letter_id}/replay", response_class=HTMLResponse)
    async def replay_from_page(letter_id: int, request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        try:
            replay = authorized_replay(deps, _one(form, "token"))
        except ApiProblemError as exc:
            logger.info("replay from the page refused: %s", exc.problem.detail)
            return await _letter(
                letter_id, error=f"Refused: {exc.problem.detail}.", status=exc.problem.status
            )
        result = await replay(ReplayRequest(ids=[letter_id]))
        outcome = ", ".join(f"{k}={v}" for k, v in result.model_dump().items() if v) or "nothing"
        query = urlencode({"replayed": outcome})
        return RedirectResponse(f"/dead-letters/{letter_id}?{query}", status_code=303)

    @router.get("/alerts", response_class=HTMLResponse)
    async def alerts_page() -> HTMLResponse:
        return render("alerts.html", section="Alerts", view=await q.alerts(store, limit=100))

    return router
