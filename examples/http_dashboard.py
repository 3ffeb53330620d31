"""The HTTP API and dashboard mounted inside your own Starlette app (FastAPI works alike:
`fastapi_app.mount("/durable", create_app(runtime))`).

Your app keeps its routes; durable's API answers under /durable/api/... and the
dashboard at /durable/. The runtime lives as long as the app (Starlette's lifespan).

    pip install "durable-pg[server]"
    DURABLE_DSN=postgresql://localhost/postgres python examples/http_dashboard.py
    # then open http://127.0.0.1:8000/durable/
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from durable import Context, Runtime, workflow
from durable.http import create_app


@workflow
async def publish_article(ctx: Context, article: dict) -> dict:
    await ctx.emit_event("submitted", {"title": article["title"]})
    review = await ctx.wait_for_signal("review", timeout="7d")
    if not review or not review.get("approved"):
        return {"published": False}
    return {"published": True, "by": review["editor"]}


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"hello": "from your own app"})


def build_app(runtime: Runtime, token: str | None = None) -> Starlette:
    """Your application, with durable mounted at /durable."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with runtime:
            yield

    return Starlette(
        routes=[
            Route("/hello", hello),
            Mount("/durable", app=create_app(runtime, token=token)),
        ],
        lifespan=lifespan,
    )


async def main(dsn: str | None = None, schema: str = "durable") -> dict[str, Any]:
    """Drive the mounted API in-process (no network): trigger, signal, read the result."""
    rt = Runtime(dsn, schema=schema, workflows=[publish_article])
    app = build_app(rt, token="example-token")
    auth = {"Authorization": "Bearer example-token"}
    async with rt:  # httpx's ASGI transport does not run the lifespan: enter it here
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            mine = (await client.get("/hello")).json()
            r = await client.post(
                "/durable/api/workflows/runs",
                json={"workflow": "publish_article", "input": {"title": "Durable HTTP"}},
                headers=auth,
            )
            run_id = r.json()["run_id"]
            while (await client.get(f"/durable/api/workflows/runs/{run_id}", headers=auth)).json()[
                "status"
            ] != "suspended":
                await asyncio.sleep(0.02)
            await client.post(
                f"/durable/api/workflows/runs/{run_id}/signals/review",
                json={"payload": {"approved": True, "editor": "ed"}},
                headers=auth,
            )
            output = await rt.handle(run_id).result(timeout=10)
            page = await client.get("/durable/")
            events = await client.get(f"/durable/api/workflows/runs/{run_id}/events", headers=auth)
    return {
        "mine": mine,
        "output": output,
        "events": [e["type"] for e in events.json()],
        "dashboard_base": '<base href="/durable/">' in page.text,
    }


if __name__ == "__main__":
    import uvicorn

    runtime = Runtime(os.environ.get("DURABLE_DSN"), workflows=[publish_article])
    uvicorn.run(build_app(runtime), host="127.0.0.1", port=8000)
