"""The runnable examples in examples/: each `main` against the test PostgreSQL on a
fresh schema, asserting on what it returns, and the quick start as a real script."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def load(name: str) -> ModuleType:
    """Import examples/NAME.py (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location(
        f"durable_example_{name}", EXAMPLES / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered first, so msgspec can resolve the Structs' (postponed) annotations.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def run(name: str, dsn: str, schema: str, **kwargs: Any) -> Any:
    return await load(name).main(dsn=dsn, schema=schema, **kwargs)


def test_every_example_is_tested() -> None:
    tested = {
        "quickstart",
        "order_processing",
        "data_sync",
        "monthly_report",
        "reminders",
        "approval",
        "parent_child",
        "fanout_batch",
        "http_dashboard",
        "flow_control",
        "patching",  # tested in tests/upgrades/test_patch_example.py
    }
    assert {p.stem for p in EXAMPLES.glob("*.py")} == tested


async def test_quickstart(dsn: str, schema: str) -> None:
    assert await run("quickstart", dsn, schema) == {"account": "acct-ada", "plan": "pro"}


async def test_order_processing(dsn: str, schema: str) -> None:
    out = await run("order_processing", dsn, schema)
    assert out["completed"] == {
        "order_id": 1,
        "payment_id": "pay_1",
        "tracking_number": "TRK000001",
        "status": "completed",
    }
    assert out["same_run"] is True
    assert out["payment_attempts"] == 2  # one failure, retried once
    assert out["payment_events"] == ["step_failed", "step_completed"]
    assert "check-inventory" in out["failure"] and "OutOfStock" in out["failure"]
    assert out["rejected"] is True
    assert out["notifications"] == ["user 7: order 1 confirmed, tracking TRK000001"]
    assert out["alerts"] == ["payment attempt 1 failed: payment gateway timed out"]
    assert out["stock"] == {101: 3, 102: 1}


async def test_data_sync_resumes_on_a_new_worker_without_repeating_batches(
    dsn: str, schema: str
) -> None:
    out = await run("data_sync", dsn, schema)
    assert out["result"]["total_users"] == 18
    assert out["result"]["batches"] == 5
    assert out["rows"] == 18
    assert out["batch_calls"] == {0: 1, 1: 1, 2: 1, 3: 1, 4: 1}
    assert out["progress"] == [4, 8, 12, 16, 18]


async def test_monthly_report_schedule_fires_each_tick(dsn: str, schema: str) -> None:
    out = await run("monthly_report", dsn, schema)
    assert out["runs"] >= 2
    assert out["paused"] is True
    assert [o["report_id"] for o in out["outputs"]][:2] == [1, 2]
    assert all(1 <= o["month"] <= 12 for o in out["outputs"])


async def test_reminders_fire_in_due_order_not_before_due(dsn: str, schema: str) -> None:
    out = await run("reminders", dsn, schema)
    assert out["result"]["sent"] == 3
    assert out["order"] == [2, 3, 1]
    assert all(0 <= late < 5 for late in out["late_s"].values())


async def test_approval_signal_then_hook(dsn: str, schema: str) -> None:
    out = await run("approval", dsn, schema)
    assert out["first"] == {"status": "approved", "by": "manager"}
    assert out["second"] == {"status": "rejected", "by": "finance", "reason": "over budget"}
    assert out["hook_reusable"] is False
    assert out["payments"] == [{"employee": "ana", "amount": 120}]


async def test_parent_child(dsn: str, schema: str) -> None:
    out = await run("parent_child", dsn, schema)
    assert out["result"]["totals"] == {"eu": 400, "us": 450, "apac": 200}
    assert out["result"]["grand_total"] == 1050
    assert "LookupError" in out["result"]["failed_child"]
    assert out["children"] == [
        ("apac", "completed"),
        ("eu", "completed"),
        ("mars", "failed"),
        ("us", "completed"),
    ]
    assert out["parent_of_child"] == out["run_id"]


async def test_fanout_batch(dsn: str, schema: str) -> None:
    out = await run("fanout_batch", dsn, schema)
    assert out["summary"] == {
        "total": 12,
        "succeeded": 10,
        "failed": 2,
        "sum": 409,
        "thumbnails": {"ok": 3, "failed": ["thumb-b7-3"]},
    }
    assert out["elapsed"] < 2.0  # twelve 0.2 s items ran concurrently
    # get-batch, 12 items, the three thumbnails that worked, update-batch
    assert out["recorded_steps"] == 17


async def test_quickstart_script(dsn: str) -> None:
    """`python examples/quickstart.py` as a user runs it: DURABLE_DSN, default schema."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / "quickstart.py"),
        env={**os.environ, "DURABLE_DSN": dsn},
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    stdout = out.decode()
    assert proc.returncode == 0, err.decode()
    assert "result: {'account': 'acct-ada', 'plan': 'pro'}" in stdout
    assert "run_completed" in stdout
    # The script uses the shared default schema: remove the run it left there.
    match = re.search(r"started run (\S+)", stdout)
    assert match is not None
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute("DELETE FROM durable.events WHERE run_id = $1", match[1])
            await conn.execute("DELETE FROM durable.runs WHERE id = $1", match[1])
    finally:
        await conn.close()


async def test_http_dashboard_mounted_in_a_starlette_app(dsn: str, schema: str) -> None:
    out = await run("http_dashboard", dsn, schema)
    assert out == {
        "mine": {"hello": "from your own app"},
        "output": {"published": True, "by": "ed"},
        "events": ["submitted"],
        "dashboard_base": True,
    }


async def test_flow_control(dsn: str, schema: str) -> None:
    out = await run("flow_control", dsn, schema)
    assert out["partner_calls"] == 12
    assert out["per_tenant_max"] == {"acme": 1, "globex": 1, "initech": 1}
    assert 1 < out["overall_max"] <= 3  # three tenants side by side, one call each
    assert out["report_order"] == ["incident", "weekly", "monthly", "quarterly"]
    assert out["reports"] == ["incident.pdf", "monthly.pdf", "quarterly.pdf", "weekly.pdf"]
    assert out["debounced_runs"] == 1
    assert out["reindexed"] == [{"doc": "faq", "version": 10}]
    assert out["active_after"] == 0
