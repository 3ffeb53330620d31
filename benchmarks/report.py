"""Print the Markdown tables of docs/benchmarks.md from a results file written by run.py.

python benchmarks/report.py [benchmarks/results/latest.jsonl]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def first(results: list[dict[str, Any]], system: str, prefix: str, **sizes: Any) -> dict[str, Any]:
    for r in results:
        if r["system"] != system or not r["scenario"].startswith(prefix):
            continue
        if all(r.get("sizes", {}).get(k) == v for k, v in sizes.items()):
            return r
    return {}


def fmt(value: Any, digits: int = 1) -> str:
    if value is None or value == "":
        return "–"
    if isinstance(value, float):
        return f"{value:,.{2 if abs(value) < 10 else digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [
        "| " + " | ".join(fmt(c) if not isinstance(c, str) else c for c in row) + " |"
        for row in rows
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", default=str(HERE / "results" / "latest.jsonl"))
    res = load(Path(parser.parse_args().results))

    d1 = first(res, "durable", "1_", concurrency=1000)
    p1 = first(res, "dbos", "1:")
    c1 = first(res, "asyncpg-ceiling", "c:scenario1-shape")
    d2, p2 = first(res, "durable", "2_"), first(res, "dbos", "2:")
    d3, p3 = first(res, "durable", "3_"), first(res, "dbos", "3:")
    d4, p4 = first(res, "durable", "4_"), first(res, "dbos", "4:")
    ca = first(res, "asyncpg-ceiling", "a:")

    def ratio(a: Any, b: Any) -> str:
        return f"{a / b:,.1f}x" if a and b else "–"

    print("### Headline scenarios\n")
    print(
        table(
            ["scenario", "durable", "DBOS 3.4", "durable / DBOS", "asyncpg ceiling"],
            [
                [
                    "1. 1,000 runs x 10 steps (steps/s)",
                    d1.get("throughput"),
                    p1.get("throughput"),
                    ratio(d1.get("throughput"), p1.get("throughput")),
                    f"{fmt(c1.get('throughput'))} rows/s (100 rows per commit)",
                ],
                [
                    "2. 2,000 runs x 1 step (runs/s)",
                    d2.get("throughput"),
                    p2.get("throughput"),
                    ratio(d2.get("throughput"), p2.get("throughput")),
                    "–",
                ],
                [
                    "3. 1 run x 1,000 sequential steps (ms/step)",
                    d3.get("ms_per_step"),
                    p3.get("ms_per_step"),
                    ratio(p3.get("ms_per_step"), d3.get("ms_per_step")),
                    f"{fmt(ca.get('p50_ms'), 3)} ms per single-row commit (p50)",
                ],
                [
                    "4. start-to-result, 1-step run (p50 ms)",
                    d4.get("p50_ms"),
                    p4.get("p50_ms"),
                    ratio(p4.get("p50_ms"), d4.get("p50_ms")),
                    "–",
                ],
                [
                    "4. start-to-result, 1-step run (p99 ms)",
                    d4.get("p99_ms"),
                    p4.get("p99_ms"),
                    ratio(p4.get("p99_ms"), d4.get("p99_ms")),
                    "–",
                ],
            ],
        )
    )
    print("\n### Replay (scenario 5)\n")
    replays = sorted(
        {
            r["sizes"]["events"]: r["ms"]
            for r in res
            if r["system"] == "durable" and r["scenario"].startswith("5")
        }.items()
    )
    print(
        table(
            ["events in history", "resume an evicted run (ms)", "µs per event"],
            [[n, ms, 1000 * ms / n] for n, ms in replays],
        )
    )
    print("\n### Scale (scenarios 6 to 8)\n")
    s6a, s6b = first(res, "durable", "6a"), first(res, "durable", "6b")
    s7 = first(res, "durable", "7_")
    s8a = first(res, "durable", "8_", workers=1)
    s8b = first(res, "durable", "8_", workers=2)
    print(
        table(
            ["measure", "durable"],
            [
                [
                    f"6. RSS growth holding {fmt(s6a.get('sizes', {}).get('runs'))} suspended runs (MB)",
                    s6a.get("rss_mb_growth"),
                ],
                [
                    f"6. {fmt(s6b.get('sizes', {}).get('timers'))} timers of 1 s: latest fire after due (s)",
                    s6b.get("max_late_s"),
                ],
                [
                    "6. timers: p50 / p99 lateness (ms)",
                    f"{fmt(s6b.get('p50_ms'))} / {fmt(s6b.get('p99_ms'))}",
                ],
                [
                    "7. steps/s with 1,000,000 finished runs in the tables",
                    s7.get("full_steps_per_s"),
                ],
                ["7. steps/s on empty tables", s7.get("empty_steps_per_s")],
                ["7. ratio full / empty", s7.get("ratio")],
                ["8. steps/s, 1 worker process", s8a.get("throughput")],
                ["8. steps/s, 2 worker processes", s8b.get("throughput")],
            ],
        )
    )
    print("\n### Throughput against runs in flight (scenario 1)\n")
    rows = []
    for c in sorted(
        {
            r["sizes"]["concurrency"]
            for r in res
            if r["scenario"].startswith("1") and "concurrency" in r.get("sizes", {})
        }
    ):
        d = first(res, "durable", "1_", concurrency=c)
        # DBOS's base run starts all 1,000 runs at once: that is its 1,000 in flight.
        p = first(res, "dbos", "1:", concurrency=c) or (p1 if c == 1000 else {})
        rows.append(
            [
                c,
                d.get("throughput"),
                p.get("throughput"),
                ratio(d.get("throughput"), p.get("throughput")),
            ]
        )
    print(table(["runs in flight", "durable steps/s", "DBOS steps/s", "ratio"], rows))


if __name__ == "__main__":
    main()
