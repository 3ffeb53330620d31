"""The ASGI application: every VSKI endpoint over a Runtime, plus the dashboard.

Starlette does the HTTP (routing, parsing, streaming); msgspec validates bodies and
encodes answers. Each handler checks everything before its single runtime call, so a
request that fails writes nothing. Errors always answer `{"error": CODE, "message": ...}`.
"""

from __future__ import annotations

import asyncio
import hmac
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from html import escape
from importlib import resources
from typing import Any, TypeVar

import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from durable.errors import (
    PayloadTooLarge,
    RunClosed,
    RunNotFound,
    SerializationError,
    ValidationError,
    WorkflowNotFound,
)
from durable.http import bodies as b
from durable.http.live import LiveFeed
from durable.http.openapi import openapi_document
from durable.runtime import RunStatus, Runtime, check_tags
from durable.schedules import ScheduleNotFound
from durable.workflow import check_name

T = TypeVar("T")
Handler = Callable[[Request], Awaitable[Response]]
_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})

MAX_LIMIT = 500
DEFAULT_LIMIT = 50
_JSON = "application/json"


class ApiError(Exception):
    """An answer other than success: HTTP status, error code and a one-line message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _json(value: Any, status: int = 200) -> Response:
    return Response(msgspec.json.encode(value), status_code=status, media_type=_JSON)


def _error(status: int, code: str, message: str) -> Response:
    return _json(b.Error(error=code, message=message), status)


def _translate(exc: Exception) -> ApiError:
    """Map the runtime's errors to HTTP answers (the contract's status codes)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, PayloadTooLarge):
        return ApiError(413, "payload_too_large", str(exc))
    if isinstance(exc, RunNotFound | WorkflowNotFound | ScheduleNotFound):
        return ApiError(404, "not_found", str(exc))
    if isinstance(exc, RunClosed):
        return ApiError(409, "conflict", str(exc))
    if isinstance(exc, ValidationError | SerializationError | UnicodeError):
        return ApiError(400, "bad_request", str(exc))
    raise exc


class Api:
    """The handlers, bound to one runtime."""

    def __init__(self, runtime: Runtime, token: str | None) -> None:
        self.rt = runtime
        self.token = token
        limit = runtime.max_payload
        # JSON is larger than the stored MessagePack; anything beyond this cannot fit.
        self.max_body = 64 * 1024 * 1024 if limit is None else 2 * limit + 64 * 1024
        self.live = LiveFeed(runtime)
        # A fair queue in front of the pool: asyncpg's pool lets a newly arrived request
        # take a connection ahead of one already waiting (asyncio.Queue re-queues a woken
        # getter that lost the race at the back), so under load a few requests waited
        # for hundreds of others. asyncio.Semaphore serves waiters first come, first served.
        self.gate = asyncio.Semaphore(runtime.pool_size)

    # -- plumbing ---------------------------------------------------------------------

    def route(self, handler: Handler, *, public: bool = False) -> Handler:
        """Wrap a handler: bearer check (unless public) and the error translation."""

        async def endpoint(request: Request) -> Response:
            try:
                if not public:
                    self._authorize(request)
                if request.method in _WITH_BODY:
                    # Read before the gate: a slow upload must not hold a connection slot.
                    await self._read(request)
                async with self.gate:
                    return await handler(request)
            except Exception as exc:
                err = _translate(exc)
                return _error(err.status, err.code, err.message)

        return endpoint

    def _authorize(self, request: Request) -> None:
        if self.token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), self.token.encode()
        ):
            raise ApiError(401, "unauthorized", "missing or wrong bearer token")

    async def _read(self, request: Request) -> bytes:
        """The request body, within `max_body` (Starlette keeps it: read once)."""
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            raise ApiError(413, "payload_too_large", f"body over {self.max_body} bytes")
        raw = await request.body()
        if len(raw) > self.max_body:
            raise ApiError(413, "payload_too_large", f"body over {self.max_body} bytes")
        return raw

    async def _body(self, request: Request, type_: type[T], *, optional: bool = False) -> T:
        raw = await self._read(request)
        if optional and not raw.strip():
            raw = b"{}"
        try:
            return msgspec.json.decode(raw, type=type_)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise ApiError(400, "bad_request", f"invalid JSON body: {exc}") from None

    @staticmethod
    def _path(request: Request, name: str) -> str:
        value = str(request.path_params[name])
        if "\x00" in value:
            raise ApiError(404, "not_found", f"no such {name}")
        return value

    # -- runs -------------------------------------------------------------------------

    async def trigger(self, request: Request) -> Response:
        body = await self._body(request, b.TriggerBody)
        rt = self.rt
        defn = rt.registry.get(body.workflow, body.version)
        for value, what in (
            (body.run_id, "run id"),
            (body.idempotency_key, "idempotency key"),
        ):
            if value is not None:
                check_name(value, what)
        if body.tags is not None:
            check_tags(body.tags)
        try:
            defn.validate_input(body.input)
        except ValidationError as exc:
            raise ApiError(422, "invalid_input", str(exc)) from None
        handle = await rt.trigger(
            defn,
            body.input,
            run_id=body.run_id,
            idempotency_key=body.idempotency_key,
            parent_run_id=body.parent_run_id,
            tags=body.tags,
        )
        status = await handle.status()
        return _json(b.Triggered(handle.run_id, status), 201 if handle.created else 200)

    async def list_runs(self, request: Request) -> Response:
        q = request.query_params
        allowed = {"workflow", "status", "tag", "limit", "cursor"}
        unknown = set(q.keys()) - allowed
        if unknown:
            raise ApiError(400, "bad_request", f"unknown query parameter(s) {sorted(unknown)}")
        status = q.get("status")
        if status is not None and status not in {s.value for s in RunStatus}:
            raise ApiError(400, "bad_request", f"invalid status {status!r}")
        tags: dict[str, str] = {}
        for item in q.getlist("tag"):
            key, sep, value = item.partition(":")
            if not sep or not key:
                raise ApiError(400, "bad_request", f"invalid tag filter {item!r}: use key:value")
            tags[key] = value
        check_tags(tags)
        raw_limit = q.get("limit")
        limit = DEFAULT_LIMIT
        if raw_limit is not None:
            if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
                raise ApiError(400, "bad_request", f"invalid limit: 1 to {MAX_LIMIT}")
            limit = int(raw_limit)
        cursor = q.get("cursor")
        before = None if cursor is None else _decode_cursor(cursor)
        workflow = q.get("workflow") or None
        if workflow is not None and "\x00" in workflow:
            raise ApiError(400, "bad_request", "invalid workflow name")
        runs = await self.rt.list_runs(
            workflow=workflow, status=status, limit=limit, tags=tags or None, before=before
        )
        nxt = _encode_cursor(runs[-1].created_at, runs[-1].run_id) if len(runs) == limit else None
        return _json(b.RunPage(runs=runs, next_cursor=nxt))

    async def get_run(self, request: Request) -> Response:
        return _json(await self.rt.get_run(self._path(request, "run_id")))

    async def patch_run(self, request: Request) -> Response:
        run_id = self._path(request, "run_id")
        body = await self._body(request, b.PatchRunBody)
        return _json(await self.rt.update_run(run_id, tags=body.tags))

    async def cancel(self, request: Request) -> Response:
        run_id = self._path(request, "run_id")
        await self.rt.cancel(run_id)
        return _json(b.Cancelled(run_id=run_id, status="cancelled"))

    async def children(self, request: Request) -> Response:
        return _json(await self.rt.get_child_runs(self._path(request, "run_id")))

    async def parent(self, request: Request) -> Response:
        return _json(await self.rt.get_parent_run(self._path(request, "run_id")))

    async def events(self, request: Request) -> Response:
        events = await self.rt.get_events(self._path(request, "run_id"))
        return _json([b.custom_event(e) for e in events])

    async def emit_event(self, request: Request) -> Response:
        body = await self._body(request, b.EmitEventBody)
        await self.rt.emit_event(body.run_id, body.type, body.payload)
        return _json(b.Emitted(run_id=body.run_id, type=body.type), 201)

    async def signal(self, request: Request) -> Response:
        run_id = self._path(request, "run_id")
        name = self._path(request, "name")
        body = await self._body(request, b.PayloadBody, optional=True)
        await self.rt.signal(run_id, name, body.payload)
        return _json(b.Signalled(run_id=run_id, name=name), 202)

    # -- hooks ------------------------------------------------------------------------

    async def create_hook(self, request: Request) -> Response:
        body = await self._body(request, b.CreateHookBody)
        token = await self.rt.create_hook(body.run_id, body.name, body.metadata)
        return _json(b.HookCreated(token=token), 201)

    async def execute_hook(self, request: Request) -> Response:
        token = self._path(request, "token")
        body = await self._body(request, b.PayloadBody, optional=True)
        return _json(b.HookExecuted(run_id=await self.rt.execute_hook(token, body.payload)))

    # -- schedules --------------------------------------------------------------------

    async def schedules(self, request: Request) -> Response:
        return _json(await self.rt.list_schedules())

    async def pause(self, request: Request) -> Response:
        name = self._path(request, "name")
        await self.rt.pause_schedule(name)
        return _json(b.ScheduleState(name=name, paused=True))

    async def resume(self, request: Request) -> Response:
        name = self._path(request, "name")
        await self.rt.resume_schedule(name)
        return _json(b.ScheduleState(name=name, paused=False))

    # -- service ----------------------------------------------------------------------

    async def openapi(self, request: Request) -> Response:
        return _json(openapi_document())

    async def health(self, request: Request) -> Response:
        try:
            await self.rt.list_runs(limit=1)
        except Exception as exc:
            return _error(503, "unavailable", f"database check failed: {type(exc).__name__}")
        return _json(b.Health(status="ok", database="ok"))

    async def stream(self, request: Request) -> Response:
        return StreamingResponse(
            self.live.stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def index(self, request: Request) -> Response:
        # <base> makes every URL of the dashboard relative to where the app is mounted.
        root = request.scope.get("root_path", "").rstrip("/") + "/"
        html = _INDEX.replace("{{BASE}}", escape(root, quote=True))
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})


def _encode_cursor(created_at: datetime, run_id: str) -> str:
    """`<microseconds since the epoch>_<run id>`: every string of that shape is valid."""
    delta = created_at - _EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return f"{micros}_{run_id}"


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    micros, sep, run_id = cursor.partition("_")
    if not sep or not micros.isascii() or not micros.isdigit() or len(micros) > 17:
        raise ApiError(400, "bad_request", "invalid cursor: expected <micros>_<run id>")
    if not run_id or "\x00" in run_id:
        raise ApiError(400, "bad_request", "invalid cursor: expected <micros>_<run id>")
    return _EPOCH + timedelta(microseconds=int(micros)), run_id


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STATIC = resources.files("durable.http") / "static"
_INDEX = (_STATIC / "index.html").read_text(encoding="utf-8")


async def _not_found(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
        response = _error(exc.status_code, code, str(exc.detail))
        response.headers.update(exc.headers or {})
        return response
    return _error(500, "internal", "internal error")


def _dispatch(handlers: dict[str, Handler]) -> Handler:
    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return endpoint


def create_app(runtime: Runtime, *, token: str | None = None) -> Starlette:
    """An ASGI app serving the HTTP API under /api and the dashboard at /.

    `token` (else $DURABLE_API_TOKEN) makes every /api request need
    `Authorization: Bearer TOKEN`, except executing a hook, whose token is the
    credential. The runtime's lifecycle stays the caller's (`async with runtime:`).
    """
    token = token or os.environ.get("DURABLE_API_TOKEN") or None
    api = Api(runtime, token)
    r = api.route
    base = "/api/workflows"
    table: dict[str, dict[str, Handler]] = {
        f"{base}/runs": {"POST": r(api.trigger), "GET": r(api.list_runs)},
        f"{base}/runs/{{run_id}}": {
            "GET": r(api.get_run),
            "PATCH": r(api.patch_run),
            "DELETE": r(api.cancel),
        },
        f"{base}/runs/{{run_id}}/children": {"GET": r(api.children)},
        f"{base}/runs/{{run_id}}/parent": {"GET": r(api.parent)},
        f"{base}/runs/{{run_id}}/events": {"GET": r(api.events)},
        f"{base}/runs/{{run_id}}/signals/{{name}}": {"POST": r(api.signal)},
        f"{base}/events": {"POST": r(api.emit_event)},
        f"{base}/hooks": {"POST": r(api.create_hook)},
        f"{base}/hooks/{{token}}": {"POST": r(api.execute_hook, public=True)},
        f"{base}/schedules": {"GET": r(api.schedules)},
        f"{base}/schedules/{{name}}/pause": {"POST": r(api.pause)},
        f"{base}/schedules/{{name}}/resume": {"POST": r(api.resume)},
        f"{base}/live": {"GET": r(api.stream)},
        "/api/openapi.json": {"GET": r(api.openapi)},
        "/api/health": {"GET": r(api.health)},
        "/": {"GET": api.index},
    }
    # One Route per path (dispatching on the method), so a 405 lists every method the
    # path supports in its Allow header.
    routes: list[BaseRoute] = [
        Route(path, _dispatch(handlers), methods=list(handlers)) for path, handlers in table.items()
    ]
    routes.append(Mount("/static", StaticFiles(directory=str(_STATIC)), name="static"))
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: _not_found, Exception: _not_found},
    )
    app.state.durable_api = api
    return app
