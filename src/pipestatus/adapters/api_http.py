"""``/api/v1``: the read API's routes, its bearer-token check, and RFC 9457 problems.

Every error (a bad parameter, an unknown run, a refused token, a database outage) is
answered as ``application/problem+json``. The only write, dead-letter replay, needs the
configured bearer token; the comparison is constant-time (``hmac.compare_digest``).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from pipestatus.adapters import api_queries as q
from pipestatus.adapters.postgres import PgStore
from pipestatus.api_models import (
    DEFAULT_LIMIT,
    MAX_ID,
    MAX_LIMIT,
    AlertsView,
    CursorError,
    DeadLetterDetail,
    DeadLetterPage,
    PipelinePage,
    Problem,
    ReplayRequest,
    ReplayResult,
    RunDetail,
    RunPage,
    StatsView,
)
from pipestatus.domain.states import Provider, RunState, provider_named
from pipestatus.errors import InfrastructureError

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
#: Provider names as the API accepts them: each provider's own spelling and its topic's.
ProviderName = Literal["zoho_dataprep", "zoho-dataprep", "krenalis", "codat", "nuvo"]
#: Filter times are clamped to this range: every stored time is inside it.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
MAX_BUCKETS = 1000

Replay = Callable[[ReplayRequest], Awaitable[ReplayResult]]


@dataclass(frozen=True, slots=True)
class ApiDeps:
    """What the routes need: the pool, and replay with its token (both None: replay off)."""

    store: PgStore
    replay: Replay | None = None
    write_token: str | None = None


class ApiProblemError(Exception):
    """Raised by a route: answered as a problem document."""

    def __init__(
        self, status: int, title: str, detail: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.problem = Problem(title=title, status=status, detail=detail)
        self.headers = headers


def problem_response(
    request: Request, problem: Problem, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body = problem.model_copy(update={"instance": request.url.path}).model_dump(
        mode="json", exclude_none=True
    )
    return JSONResponse(body, status_code=problem.status, media_type=PROBLEM_JSON, headers=headers)


def install_problems(app: FastAPI) -> None:
    """Answers every error of ``app`` as an RFC 9457 problem document."""

    @app.exception_handler(ApiProblemError)
    async def on_problem(request: Request, exc: ApiProblemError) -> JSONResponse:
        return problem_response(request, exc.problem, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = {404: "Not Found", 405: "Method Not Allowed"}.get(exc.status_code, "Error")
        problem = Problem(title=title, status=exc.status_code, detail=str(exc.detail))
        return problem_response(request, problem, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(part) for part in e["loc"]], "msg": str(e["msg"]), "type": str(e["type"])}
            for e in exc.errors()
        ]
        problem = Problem(
            title="Invalid request",
            status=422,
            detail="; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors),
            errors=errors,
        )
        return problem_response(request, problem)

    @app.exception_handler(InfrastructureError)
    async def on_outage(request: Request, exc: InfrastructureError) -> JSONResponse:
        logger.warning("request failed: %s", exc)
        problem = Problem(title="Service Unavailable", status=503, detail="database unavailable")
        return problem_response(request, problem, {"Retry-After": "5"})


def _problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": Problem, "description": "a problem document"} for status in statuses}


def as_problem_json(document: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document with every 4xx/5xx body documented as ``application/problem+json``."""
    for path in document.get("paths", {}).values():
        for operation in path.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if status[0] in "45" and "application/json" in content:
                    content[PROBLEM_JSON] = content.pop("application/json")
    return document


def parse_provider(name: str | None) -> Provider | None:
    if name is None:
        return None
    try:
        return provider_named(name)
    except ValueError as exc:
        raise ApiProblemError(422, "Invalid request", str(exc)) from None


def moment(value: datetime | None) -> datetime | None:
    """A filter time, naive read as UTC, clamped to 1970..2200: an earlier ``since`` means
    "from the start", a later ``until`` "to the end" (no stored time is outside)."""
    if value is None:
        return None
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    try:
        return min(max(aware, EARLIEST), LATEST)
    except OverflowError:  # year 1 or 9999 with an offset: not representable in UTC
        return EARLIEST if aware.year < EARLIEST.year else LATEST


def _cursor_problem(exc: CursorError) -> ApiProblemError:
    return ApiProblemError(400, "Bad cursor", str(exc))


Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size")]
Cursor = Annotated[str | None, Query(max_length=2000, description="`next_cursor` of a page")]
_bearer = HTTPBearer(auto_error=False, description="PIPESTATUS_API__WRITE_TOKEN")


def api_router(deps: ApiDeps) -> APIRouter:
    router = APIRouter(prefix="/api/v1", responses=_problems(422, 503))
    store = deps.store

    @router.get("/runs", response_model=RunPage, responses=_problems(400), tags=["runs"])
    async def get_runs(
        provider: ProviderName | None = None,
        state: Annotated[list[RunState] | None, Query(description="repeatable")] = None,
        pipeline_id: Annotated[str | None, Query(max_length=1000)] = None,
        since: Annotated[datetime | None, Query(description="last change at or after")] = None,
        until: Annotated[datetime | None, Query(description="last change before")] = None,
        ended_since: Annotated[datetime | None, Query(description="ended at or after")] = None,
        ended_until: Annotated[datetime | None, Query(description="ended before")] = None,
        warnings: Annotated[bool | None, Query(description="with (true), without (false)")] = None,
        cursor: Cursor = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> RunPage:
        """Runs, most recently changed first, every filter applied in the database."""
        query = q.RunQuery(
            provider=parse_provider(provider),
            states=tuple(state or ()),
            pipeline_id=pipeline_id,
            since=moment(since),
            until=moment(until),
            ended_since=moment(ended_since),
            ended_until=moment(ended_until),
            warnings=warnings,
            cursor=cursor,
            limit=limit,
        )
        try:
            return await q.list_runs_page(store, query)
        except CursorError as exc:
            raise _cursor_problem(exc) from None

    @router.get(
        "/runs/{provider}/{run_id:path}",
        response_model=RunDetail,
        responses=_problems(404),
        tags=["runs"],
    )
    async def get_run(provider: ProviderName, run_id: str) -> RunDetail:
        """One run and its transitions, oldest first."""
        found = await q.run_detail(store, provider_named(provider), run_id)
        if found is None:
            raise ApiProblemError(404, "Not Found", f"no run {provider}/{run_id}")
        return found

    @router.get(
        "/pipelines", response_model=PipelinePage, responses=_problems(400), tags=["pipelines"]
    )
    async def get_pipelines(
        provider: ProviderName | None = None, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT
    ) -> PipelinePage:
        """Pipelines by provider and id: latest run, failure streak, last success."""
        try:
            return await q.list_pipelines(
                store, provider=parse_provider(provider), cursor=cursor, limit=limit
            )
        except CursorError as exc:
            raise _cursor_problem(exc) from None

    @router.get(
        "/dead-letters",
        response_model=DeadLetterPage,
        responses=_problems(400),
        tags=["dead letters"],
    )
    async def get_dead_letters(
        reason: Annotated[str | None, Query(max_length=200)] = None,
        provider: ProviderName | None = None,
        status: q.DeadLetterStatus = "open",
        cursor: Cursor = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> DeadLetterPage:
        """Dead letters, newest first."""
        try:
            return await q.list_dead_letters_page(
                store,
                reason=reason,
                provider=parse_provider(provider),
                status=status,
                cursor=cursor,
                limit=limit,
            )
        except CursorError as exc:
            raise _cursor_problem(exc) from None

    @router.get(
        "/dead-letters/{letter_id}",
        response_model=DeadLetterDetail,
        responses=_problems(404),
        tags=["dead letters"],
    )
    async def get_dead_letter(
        letter_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    ) -> DeadLetterDetail:
        """One dead letter with the record's bytes."""
        found = await q.dead_letter_detail(store, letter_id)
        if found is None:
            raise ApiProblemError(404, "Not Found", f"no dead letter {letter_id}")
        return found

    @router.post(
        "/dead-letters/replay",
        response_model=ReplayResult,
        responses=_problems(401, 403),
        tags=["dead letters"],
    )
    async def post_replay(
        request: ReplayRequest,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> ReplayResult:
        """Re-validates open dead letters with today's code and applies what passes."""
        replay = authorized_replay(deps, credentials.credentials if credentials else None)
        return await replay(request)

    @router.get("/alerts", response_model=AlertsView, tags=["alerts"])
    async def get_alerts(limit: Limit = DEFAULT_LIMIT) -> AlertsView:
        """Alert states (firing first) and the most recent deliveries."""
        return await q.alerts(store, limit=limit)

    @router.get("/stats", response_model=StatsView, tags=["stats"])
    async def get_stats(
        provider: ProviderName | None = None,
        interval_s: Annotated[int, Query(ge=60, le=31 * 86400)] = 3600,
        since: Annotated[
            datetime | None,
            Query(description=f"default: `until` - 24 h; at most {MAX_BUCKETS} buckets back"),
        ] = None,
        until: Annotated[datetime | None, Query(description="default: now")] = None,
    ) -> StatsView:
        """Runs by provider and state, and runs last changed per time bucket and state."""
        end = moment(until) or datetime.now(UTC)
        start = moment(since) or end - timedelta(days=1)
        # At most MAX_BUCKETS buckets: a wider window is cut at its start (the answer's
        # `since` says where); an empty window has no buckets.
        start = min(max(start, end - MAX_BUCKETS * timedelta(seconds=interval_s)), end)
        return await q.stats(
            store, interval_s=interval_s, since=start, until=end, provider=parse_provider(provider)
        )

    return router


def authorized_replay(deps: ApiDeps, token: str | None) -> Replay:
    """Replay if ``token`` is the configured write token; else the problem that refuses it."""
    if deps.replay is None or deps.write_token is None:
        raise ApiProblemError(
            403, "Forbidden", "replay is off: PIPESTATUS_API__WRITE_TOKEN is unset"
        )
    challenge = {"WWW-Authenticate": 'Bearer realm="pipestatus"'}
    if token is None:
        raise ApiProblemError(401, "Unauthorized", "a bearer token is required", challenge)
    if not hmac.compare_digest(token.encode(), deps.write_token.encode()):
        raise ApiProblemError(401, "Unauthorized", "the bearer token is not valid", challenge)
    return deps.replay
