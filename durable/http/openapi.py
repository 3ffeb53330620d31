"""The OpenAPI 3.1 description of the HTTP API, generated from the msgspec structs.

Bodies and answers come from durable.http.bodies (the same types the handlers decode
and encode), so the document cannot drift from what the server does; routes,
parameters and error codes are listed here by hand, next to each other.
"""

from __future__ import annotations

import functools
from typing import Any

import msgspec

from durable.http import bodies as b
from durable.runtime import RunStatus

_TYPES: list[Any] = [
    b.TriggerBody,
    b.PatchRunBody,
    b.EmitEventBody,
    b.CreateHookBody,
    b.PayloadBody,
    b.Triggered,
    b.RunPage,
    b.RunInfo,
    list[b.RunInfo],
    b.RunInfo | None,
    b.Cancelled,
    b.Emitted,
    list[b.CustomEventOut],
    b.HookCreated,
    b.HookExecuted,
    b.Signalled,
    list[b.ScheduleInfo],
    b.ScheduleState,
    b.Health,
    b.Error,
]

_ERRORS = {
    "400": "malformed JSON, unknown field or bad parameter",
    "401": "missing or wrong bearer token",
    "404": "unknown run, token, workflow or schedule",
    "409": "the run is finished or the hook was already used",
    "413": "payload over the runtime's limit",
    "422": "input failing the workflow's schema",
}


def _params(*names: str) -> list[dict[str, Any]]:
    return [
        {"name": n, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
        for n in names
    ]


_TAG_FILTER = "^[^:\\u0000\\u001f]{1,128}:[^\\u0000]{0,1024}$"
_LIST_PARAMS: list[dict[str, Any]] = [
    {"name": "workflow", "in": "query", "schema": {"type": "string", "pattern": "^[^\\u0000]*$"}},
    {
        "name": "status",
        "in": "query",
        "schema": {"type": "string", "enum": [s.value for s in RunStatus]},
    },
    {
        "name": "tag",
        "in": "query",
        "description": "key:value; repeat for several tags (all must match)",
        "schema": {"type": "array", "items": {"type": "string", "pattern": _TAG_FILTER}},
        "style": "form",
        "explode": True,
    },
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
    {
        "name": "cursor",
        "in": "query",
        "description": "next_cursor of the previous page",
        "schema": {"type": "string", "pattern": "^[0-9]{1,17}_[^\\u0000]+$"},
    },
]


_INT64 = {"type": "integer", "minimum": -(2**63), "maximum": 2**64 - 1}
_JSON_VALUE: dict[str, Any] = {
    "description": "any JSON value; integers within 64 bits",
    "anyOf": [
        {"type": "null"},
        {"type": "boolean"},
        {"type": "string"},
        _INT64,
        {"type": "number", "not": {"type": "integer"}},
        {"type": "array", "items": {"$ref": "#/components/schemas/JsonValue"}},
        {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/JsonValue"}},
    ],
}
_FREE_FORM = [
    ("TriggerBody", "input"),
    ("EmitEventBody", "payload"),
    ("CreateHookBody", "metadata"),
    ("PayloadBody", "payload"),
]


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The document served at /api/openapi.json (built once)."""
    schemas, components = msgspec.json.schema_components(
        _TYPES, ref_template="#/components/schemas/{name}"
    )
    by = dict(zip((repr(t) for t in _TYPES), schemas, strict=True))
    # Free-form JSON in request bodies: any JSON value, but integers must fit in 64 bits
    # (MessagePack stores them; bigger ones are refused with a 400).
    components["JsonValue"] = _JSON_VALUE
    for struct, field in _FREE_FORM:
        components[struct]["properties"][field] = {
            "$ref": "#/components/schemas/JsonValue",
            "default": None,
        }

    def ref(t: Any) -> dict[str, Any]:
        schema: dict[str, Any] = by[repr(t)]
        return schema

    def op(
        summary: str,
        ok: tuple[int, Any, str],
        errors: tuple[int, ...],
        *,
        body: Any = None,
        body_required: bool = True,
        params: list[dict[str, Any]] | None = None,
        public: bool = False,
        extra_ok: tuple[int, str] | None = None,
    ) -> dict[str, Any]:
        status, answer, text = ok
        responses: dict[str, Any] = {
            str(status): {
                "description": text,
                "content": {"application/json": {"schema": ref(answer)}},
            }
        }
        if extra_ok is not None:
            responses[str(extra_ok[0])] = {
                "description": extra_ok[1],
                "content": {"application/json": {"schema": ref(answer)}},
            }
        codes = set(errors) | ({400} if body is not None or params else set())
        if not public:
            codes.add(401)
        for code in sorted(codes):
            responses[str(code)] = {
                "description": _ERRORS[str(code)],
                "content": {"application/json": {"schema": ref(b.Error)}},
            }
        out: dict[str, Any] = {"summary": summary, "responses": responses}
        if params:
            out["parameters"] = params
        if body is not None:
            out["requestBody"] = {
                "required": body_required,
                "content": {"application/json": {"schema": ref(body)}},
            }
        if public:
            out["security"] = []
        return out

    run = _params("run_id")
    paths: dict[str, Any] = {
        "/api/workflows/runs": {
            "post": op(
                "Trigger a run",
                (201, b.Triggered, "run created"),
                (404, 413, 422),
                body=b.TriggerBody,
                extra_ok=(200, "an existing run came back by run_id or idempotency_key"),
            ),
            "get": op(
                "List runs, newest first (keyset cursor)",
                (200, b.RunPage, "a page of runs (without history)"),
                (),
                params=_LIST_PARAMS,
            ),
        },
        "/api/workflows/runs/{run_id}": {
            "get": op("One run with its history", (200, b.RunInfo, "the run"), (404,), params=run),
            "patch": op(
                "Merge tags (null removes a tag)",
                (200, b.RunInfo, "the run, without history"),
                (404, 413),
                body=b.PatchRunBody,
                params=run,
            ),
            "delete": op(
                "Cancel the run and its unfinished children",
                (200, b.Cancelled, "cancelled"),
                (404, 409),
                params=run,
            ),
        },
        "/api/workflows/runs/{run_id}/children": {
            "get": op("Child runs", (200, list[b.RunInfo], "children"), (404,), params=run)
        },
        "/api/workflows/runs/{run_id}/parent": {
            "get": op(
                "Parent run (null for a root run)",
                (200, b.RunInfo | None, "parent or null"),
                (404,),
                params=run,
            )
        },
        "/api/workflows/runs/{run_id}/events": {
            "get": op(
                "The run's custom events",
                (200, list[b.CustomEventOut], "custom events in order"),
                (404,),
                params=run,
            )
        },
        "/api/workflows/runs/{run_id}/signals/{name}": {
            "post": op(
                "Send a signal",
                (202, b.Signalled, "delivered (buffered until the run waits for it)"),
                (404, 409, 413),
                body=b.PayloadBody,
                body_required=False,
                params=[
                    *run,
                    {
                        "name": "name",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^[^\\u0000\\u001f]+$"},
                    },
                ],
            )
        },
        "/api/workflows/events": {
            "post": op(
                "Emit a custom event into an unfinished run",
                (201, b.Emitted, "recorded"),
                (404, 409, 413),
                body=b.EmitEventBody,
            )
        },
        "/api/workflows/hooks": {
            "post": op(
                "Create a hook for a run (executing it delivers the signal `name`)",
                (201, b.HookCreated, "the hook's token"),
                (404, 409, 413),
                body=b.CreateHookBody,
            )
        },
        "/api/workflows/hooks/{token}": {
            "post": op(
                "Execute a hook, once (the token is the credential: no bearer needed)",
                (200, b.HookExecuted, "delivered"),
                (404, 409, 413),
                body=b.PayloadBody,
                body_required=False,
                params=_params("token"),
                public=True,
            )
        },
        "/api/workflows/schedules": {
            "get": op("Schedules", (200, list[b.ScheduleInfo], "every schedule"), ())
        },
        "/api/workflows/schedules/{name}/pause": {
            "post": op(
                "Pause a schedule",
                (200, b.ScheduleState, "paused"),
                (404,),
                params=_params("name"),
            )
        },
        "/api/workflows/schedules/{name}/resume": {
            "post": op(
                "Resume a schedule",
                (200, b.ScheduleState, "resumed"),
                (404,),
                params=_params("name"),
            )
        },
        "/api/workflows/live": {
            "get": {
                "summary": "Server-sent events: one `change` event {run_id, what} per notice",
                "responses": {
                    "200": {
                        "description": "an endless text/event-stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    "401": {
                        "description": _ERRORS["401"],
                        "content": {"application/json": {"schema": ref(b.Error)}},
                    },
                },
            }
        },
        "/api/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "401": {
                        "description": _ERRORS["401"],
                        "content": {"application/json": {"schema": ref(b.Error)}},
                    },
                },
            }
        },
        "/api/health": {
            "get": {
                "summary": "Liveness with a database check",
                "responses": {
                    "200": {
                        "description": "up",
                        "content": {"application/json": {"schema": ref(b.Health)}},
                    },
                    "401": {
                        "description": _ERRORS["401"],
                        "content": {"application/json": {"schema": ref(b.Error)}},
                    },
                    "503": {
                        "description": "the database does not answer",
                        "content": {"application/json": {"schema": ref(b.Error)}},
                    },
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "durable", "version": "1", "description": "durable's HTTP API"},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
