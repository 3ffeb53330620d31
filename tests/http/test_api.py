"""Every endpoint and every error code through httpx against the ASGI app, on Postgres."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import apps
import asyncpg
import httpfix
import httpx
import pytest
from httpfix import MakeRuntime

from durable import Runtime
from durable.http import create_app

make_rt = httpfix.make_rt
TOKEN = "s3cret-token"
WORKFLOWS = (apps.order, apps.approval, apps.family, apps.steps, apps.nightly)


@pytest.fixture
async def rt(make_rt: MakeRuntime) -> AsyncIterator[Runtime]:
    async with make_rt(*WORKFLOWS, max_payload_bytes=10_000) as runtime:
        yield runtime


@pytest.fixture
async def client(rt: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(rt, token=TOKEN)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://test",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as c:
        yield c


async def snapshot(db: asyncpg.Connection) -> tuple[Any, ...]:
    tables = ("runs", "events", "inbox", "hooks", "run_events")
    counts = [await db.fetchval(f"SELECT count(*) FROM {t}") for t in tables]
    tags = await db.fetchval("SELECT string_agg(tags::text, ',' ORDER BY id) FROM runs")
    return (*counts, tags)


def err(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == code and isinstance(body["message"], str) and body["message"]


async def until_status(c: httpx.AsyncClient, run_id: str, status: str) -> dict[str, Any]:
    async with asyncio.timeout(10):
        while True:
            body: dict[str, Any] = (await c.get(f"/api/workflows/runs/{run_id}")).json()
            if body["status"] == status:
                return body
            await asyncio.sleep(0.02)


async def test_run_lifecycle_over_http(client: httpx.AsyncClient) -> None:
    c = client
    r = await c.post(
        "/api/workflows/runs",
        json={"workflow": "approval", "input": {"x": 1}, "tags": {"team": "ops"}},
    )
    assert r.status_code == 201, r.text
    run_id = r.json()["run_id"]
    assert r.json()["status"] in ("pending", "running", "suspended")
    info = await until_status(c, run_id, "suspended")
    assert info["tags"] == {"team": "ops"} and info["input"] == {"x": 1}
    assert info["pending"] and info["pending"][0]["name"] == "approve"
    assert info["history"] and info["started_at"] and info["finished_at"] is None
    assert info["continued_as"] is None

    r = await c.patch(f"/api/workflows/runs/{run_id}", json={"tags": {"team": None, "a": "b"}})
    assert r.status_code == 200 and r.json()["tags"] == {"a": "b"}
    r = await c.post("/api/workflows/events", json={"run_id": run_id, "type": "note", "payload": 7})
    assert r.status_code == 201
    r = await c.post("/api/workflows/hooks", json={"run_id": run_id, "name": "approve"})
    assert r.status_code == 201
    token = r.json()["token"]

    # The hook is executed without a bearer: its token is the credential.
    async with httpx.AsyncClient(transport=c._transport, base_url="http://test") as anon:
        err(await anon.get("/api/workflows/runs"), 401, "unauthorized")
        r = await anon.post(f"/api/workflows/hooks/{token}", json={"payload": {"ok": 1}})
        assert r.status_code == 200 and r.json() == {"run_id": run_id}
        err(await anon.post(f"/api/workflows/hooks/{token}"), 409, "conflict")
        err(await anon.post("/api/workflows/hooks/unknown"), 404, "not_found")
    done = await until_status(c, run_id, "completed")
    assert done["output"] == {"input": {"x": 1}, "answer": {"ok": 1}}
    assert done["finished_at"]
    r = await c.get(f"/api/workflows/runs/{run_id}/events")
    assert [(e["seq"], e["type"], e["payload"]) for e in r.json()] == [
        (1, "asked", {"for": {"x": 1}}),
        (2, "note", 7),
    ]
    err(await c.delete(f"/api/workflows/runs/{run_id}"), 409, "conflict")
    err(await c.post(f"/api/workflows/runs/{run_id}/signals/approve"), 409, "conflict")
    err(
        await c.post("/api/workflows/events", json={"run_id": run_id, "type": "late"}),
        409,
        "conflict",
    )
    err(
        await c.post("/api/workflows/hooks", json={"run_id": run_id, "name": "x"}),
        409,
        "conflict",
    )


async def test_signal_cancel_children_parent(client: httpx.AsyncClient) -> None:
    c = client
    r = await c.post("/api/workflows/runs", json={"workflow": "family", "input": 1})
    parent = r.json()["run_id"]
    await until_status(c, parent, "suspended")
    async with asyncio.timeout(10):
        while not (kids := (await c.get(f"/api/workflows/runs/{parent}/children")).json()):
            await asyncio.sleep(0.02)
    kid = kids[0]["run_id"]
    assert "history" in kids[0] and kids[0]["history"] == []
    r = await c.get(f"/api/workflows/runs/{kid}/parent")
    assert r.status_code == 200 and r.json()["run_id"] == parent
    r = await c.get(f"/api/workflows/runs/{parent}/parent")
    assert r.status_code == 200 and r.json() is None
    await until_status(c, kid, "suspended")
    r = await c.post(f"/api/workflows/runs/{kid}/signals/approve", json={"payload": "yes"})
    assert r.status_code == 202
    done = await until_status(c, parent, "completed")
    assert done["output"]["answer"] == "yes"

    r = await c.post("/api/workflows/runs", json={"workflow": "approval"})
    other = r.json()["run_id"]
    r = await c.delete(f"/api/workflows/runs/{other}")
    assert r.status_code == 200 and r.json() == {"run_id": other, "status": "cancelled"}
    assert (await c.get(f"/api/workflows/runs/{other}")).json()["status"] == "cancelled"


async def test_idempotency_lineage_and_pages(client: httpx.AsyncClient) -> None:
    c = client
    body = {"workflow": "order", "input": {"order_id": 1, "amount": 5}, "idempotency_key": "k1"}
    first = await c.post("/api/workflows/runs", json=body)
    again = await c.post("/api/workflows/runs", json=body)
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["run_id"] == again.json()["run_id"]
    # Keys are scoped per workflow: the same key with another workflow starts its run.
    other = await c.post(
        "/api/workflows/runs", json={"workflow": "steps", "input": 1, "idempotency_key": "k1"}
    )
    assert other.status_code == 201 and other.json()["run_id"] != first.json()["run_id"]
    root = first.json()["run_id"]
    r = await c.post(
        "/api/workflows/runs",
        json={"workflow": "steps", "input": 2, "parent_run_id": root, "run_id": "mine-1"},
    )
    assert r.status_code == 201 and r.json()["run_id"] == "mine-1"
    assert (await c.get("/api/workflows/runs/mine-1/parent")).json()["run_id"] == root
    for _ in range(5):
        await c.post(
            "/api/workflows/runs", json={"workflow": "steps", "input": 1, "tags": {"batch": "b"}}
        )
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, "tag": "batch:b"}
        if cursor:
            params["cursor"] = cursor
        page = (await c.get("/api/workflows/runs", params=params)).json()
        seen += [run["run_id"] for run in page["runs"]]
        # A run arriving between pages shows up on page one, never mid-walk.
        await c.post(
            "/api/workflows/runs", json={"workflow": "steps", "input": 1, "tags": {"batch": "b"}}
        )
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5 == len(set(seen))
    listed = (await c.get("/api/workflows/runs", params={"workflow": "order"})).json()
    assert [run["run_id"] for run in listed["runs"]] == [root]
    await until_status(c, root, "completed")
    done = await c.get("/api/workflows/runs", params={"status": "completed", "workflow": "order"})
    assert [run["run_id"] for run in done.json()["runs"]] == [root]


async def test_errors_write_nothing(client: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    c = client
    r = await c.post("/api/workflows/runs", json={"workflow": "approval"})
    run_id = r.json()["run_id"]
    await until_status(c, run_id, "suspended")
    before = await snapshot(db)
    cases: list[tuple[str, str, Any, int, str]] = [
        ("POST", "/api/workflows/runs", b"{not json", 400, "bad_request"),
        ("POST", "/api/workflows/runs", {"workflow": "approval", "bogus": 1}, 400, "bad_request"),
        ("POST", "/api/workflows/runs", {"workflow": 5}, 400, "bad_request"),
        ("POST", "/api/workflows/runs", {"workflow": "nope"}, 404, "not_found"),
        (
            "POST",
            "/api/workflows/runs",
            {"workflow": "order", "input": {"x": 1}},
            422,
            "invalid_input",
        ),
        (
            "POST",
            "/api/workflows/runs",
            {"workflow": "approval", "input": "x" * 20_000},
            413,
            "payload_too_large",
        ),
        (
            "POST",
            "/api/workflows/runs",
            {"workflow": "approval", "tags": {"k": 1}},
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/workflows/runs",
            {"workflow": "approval", "tags": {"k\u0000": "v"}},
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/workflows/runs",
            {"workflow": "approval", "run_id": "a\u0000b"},
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/workflows/runs",
            {"workflow": "approval", "parent_run_id": "nope"},
            404,
            "not_found",
        ),
        ("POST", "/api/workflows/runs", {"workflow": "approval", "version": "9"}, 404, "not_found"),
        ("GET", "/api/workflows/runs?status=weird", None, 400, "bad_request"),
        ("GET", "/api/workflows/runs?limit=0", None, 400, "bad_request"),
        ("GET", "/api/workflows/runs?limit=abc", None, 400, "bad_request"),
        ("GET", "/api/workflows/runs?cursor=!!!", None, 400, "bad_request"),
        ("GET", "/api/workflows/runs?tag=nocolon", None, 400, "bad_request"),
        ("GET", "/api/workflows/runs?what=1", None, 400, "bad_request"),
        ("GET", "/api/workflows/runs/nope", None, 404, "not_found"),
        ("GET", "/api/workflows/runs/a%00b", None, 404, "not_found"),
        ("GET", "/api/workflows/runs/nope/children", None, 404, "not_found"),
        ("GET", "/api/workflows/runs/nope/parent", None, 404, "not_found"),
        ("GET", "/api/workflows/runs/nope/events", None, 404, "not_found"),
        ("PATCH", "/api/workflows/runs/nope", {"tags": {"a": "b"}}, 404, "not_found"),
        ("PATCH", f"/api/workflows/runs/{run_id}", {"tags": {"a": 1}}, 400, "bad_request"),
        ("PATCH", f"/api/workflows/runs/{run_id}", {}, 400, "bad_request"),
        ("DELETE", "/api/workflows/runs/nope", None, 404, "not_found"),
        ("POST", "/api/workflows/runs/nope/signals/approve", {"payload": 1}, 404, "not_found"),
        ("POST", f"/api/workflows/runs/{run_id}/signals/approve", b"[1]", 400, "bad_request"),
        (
            "POST",
            f"/api/workflows/runs/{run_id}/signals/approve",
            {"payload": "x" * 20_000},
            413,
            "payload_too_large",
        ),
        ("POST", "/api/workflows/events", {"run_id": "nope", "type": "t"}, 404, "not_found"),
        ("POST", "/api/workflows/events", {"run_id": run_id}, 400, "bad_request"),
        ("POST", "/api/workflows/events", {"run_id": run_id, "type": ""}, 400, "bad_request"),
        (
            "POST",
            "/api/workflows/events",
            {"run_id": run_id, "type": "t", "payload": "x" * 20_000},
            413,
            "payload_too_large",
        ),
        ("POST", "/api/workflows/hooks", {"run_id": "nope", "name": "n"}, 404, "not_found"),
        ("POST", "/api/workflows/hooks", {"run_id": run_id, "name": "a\u0000"}, 400, "bad_request"),
        ("POST", "/api/workflows/hooks/nope", {"payload": 1}, 404, "not_found"),
        ("POST", "/api/workflows/schedules/nope/pause", None, 404, "not_found"),
        ("POST", "/api/workflows/schedules/nope/resume", None, 404, "not_found"),
        ("GET", "/api/nothing-here", None, 404, "not_found"),
        ("PUT", "/api/workflows/runs", None, 405, "method_not_allowed"),
    ]
    for method, url, body, status, code in cases:
        content = body if isinstance(body, bytes) else None
        r = await c.request(method, url, content=content, json=None if content else body)
        assert r.status_code == status, (method, url, r.status_code, r.text)
        assert r.json()["error"] == code, (method, url, r.text)
        assert r.headers["content-type"] == "application/json"
    assert await snapshot(db) == before


async def test_auth_schedules_health_openapi_dashboard(client: httpx.AsyncClient) -> None:
    c = client
    async with httpx.AsyncClient(transport=c._transport, base_url="http://test") as anon:
        for method, url in [
            ("GET", "/api/workflows/runs"),
            ("POST", "/api/workflows/runs"),
            ("GET", "/api/health"),
            ("GET", "/api/openapi.json"),
            ("GET", "/api/workflows/schedules"),
            ("DELETE", "/api/workflows/runs/x"),
        ]:
            err(await anon.request(method, url), 401, "unauthorized")
        wrong = {"Authorization": "Bearer nope"}
        err(await anon.get("/api/workflows/runs", headers=wrong), 401, "unauthorized")
        page = await anon.get("/")  # the page itself is public; its API calls are not
        assert page.status_code == 200 and '<base href="/">' in page.text
        assert (await anon.get("/static/app.js")).status_code == 200
    r = await c.get("/api/health")
    assert r.status_code == 200 and r.json() == {"status": "ok", "database": "ok"}
    schedules = (await c.get("/api/workflows/schedules")).json()
    assert [s["name"] for s in schedules] == ["nightly"] and schedules[0]["next_fire_at"]
    r = await c.post("/api/workflows/schedules/nightly/pause")
    assert r.json() == {"name": "nightly", "paused": True}
    assert (await c.get("/api/workflows/schedules")).json()[0]["paused"] is True
    r = await c.post("/api/workflows/schedules/nightly/resume")
    assert r.json() == {"name": "nightly", "paused": False}
    doc = (await c.get("/api/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    for path in (
        "/api/workflows/runs",
        "/api/workflows/runs/{run_id}",
        "/api/workflows/runs/{run_id}/children",
        "/api/workflows/runs/{run_id}/parent",
        "/api/workflows/runs/{run_id}/events",
        "/api/workflows/runs/{run_id}/signals/{name}",
        "/api/workflows/events",
        "/api/workflows/hooks",
        "/api/workflows/hooks/{token}",
        "/api/workflows/schedules",
        "/api/workflows/schedules/{name}/pause",
        "/api/workflows/schedules/{name}/resume",
        "/api/health",
    ):
        assert path in doc["paths"], path
    assert doc["paths"]["/api/workflows/hooks/{token}"]["post"]["security"] == []


async def test_live_stream_sends_run_changes(rt: Runtime) -> None:
    app = create_app(rt)
    api = app.state.durable_api
    stream = api.live.stream()
    assert (await anext(stream)).startswith(b"retry:")
    assert api.live.clients == 1
    h = await rt.trigger(apps.approval, None)
    seen: list[bytes] = []
    async with asyncio.timeout(10):
        while not any(b'"suspended"' in s for s in seen):
            seen.append(await anext(stream))
    assert all(s.startswith(b"event: change\ndata: ") for s in seen)
    assert h.run_id.encode() in seen[0]
    api.live.close()
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    assert api.live.clients == 0


async def test_slow_uploads_do_not_hold_the_connection_slots(rt: Runtime) -> None:
    """More unfinished uploads than the pool has connections: a GET is still answered.

    Bodies are read before a request takes one of the API's `pool_size` slots, so
    clients that send headers and then stall cannot block every other request."""
    app = create_app(rt, token=TOKEN)
    stalled = asyncio.Event()  # never set: the uploads never finish
    started = 0

    async def receive() -> dict[str, Any]:
        nonlocal started
        started += 1
        await stalled.wait()
        return {"type": "http.disconnect"}  # pragma: no cover - never reached

    async def send(message: MutableMapping[str, Any]) -> None:
        return None

    def scope() -> dict[str, Any]:
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/api/workflows/runs",
            "raw_path": b"/api/workflows/runs",
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"authorization", f"Bearer {TOKEN}".encode()),
                (b"content-type", b"application/json"),
                (b"content-length", b"100"),
            ],
            "client": ("127.0.0.1", 1),
            "server": ("test", 80),
        }

    uploads = [asyncio.create_task(app(scope(), receive, send)) for _ in range(rt.pool_size + 2)]
    try:
        async with asyncio.timeout(10):
            while started < len(uploads):
                await asyncio.sleep(0.01)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport,
                base_url="http://test",
                headers={"Authorization": f"Bearer {TOKEN}"},
            ) as c:
                r = await c.get("/api/workflows/runs?limit=5")
        assert r.status_code == 200, r.text
    finally:
        for t in uploads:
            t.cancel()
        await asyncio.gather(*uploads, return_exceptions=True)
