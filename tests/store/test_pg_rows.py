"""durable/store/pg_rows.py: `record` builds a RunRecord positionally from RUN_COLS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from durable.store.base import RunRecord
from durable.store.pg_rows import RUN_COLS, record


def test_run_cols_are_run_record_fields_in_order() -> None:
    """`record` passes the row's columns positionally: their order is RunRecord's."""
    names = [col.split(" AS ")[-1].strip() for col in RUN_COLS.split(",")]
    names = ["run_id" if n == "id" else n for n in names]
    assert tuple(names) == RunRecord.__struct_fields__


def test_record_maps_every_column_to_its_field() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    row = (
        "id", "wf", "v1", "suspended", b"Min", b"Mout", "err", "parent", b"Mpend",
        t, t + timedelta(1), t + timedelta(2), '{"k": "v"}', t + timedelta(3),
        t + timedelta(4), "q", "qk", 7, "as", "from", "forked",
    )  # fmt: skip
    assert record(row) == RunRecord(  # type: ignore[arg-type]
        run_id="id",
        workflow="wf",
        version="v1",
        status="suspended",
        input=b"Min",
        output=b"Mout",
        error="err",
        parent_run_id="parent",
        pending=b"Mpend",
        created_at=t,
        updated_at=t + timedelta(1),
        ready_at=t + timedelta(2),
        tags={"k": "v"},
        started_at=t + timedelta(3),
        finished_at=t + timedelta(4),
        queue="q",
        queue_key="qk",
        priority=7,
        continued_as="as",
        continued_from="from",
        forked_from="forked",
    )
    assert record((*row[:12], None, *row[13:])).tags == {}  # type: ignore[arg-type]
