"""Run the whole benchmark suite in one invocation: durable, DBOS and the asyncpg ceiling.

    python benchmarks/run.py [--smoke] [--skip-dbos] [--skip-http] [--out FILE]

The HTTP API under load (http_load.py: `durable serve` with list/get clients and the
worker's throughput beside them) runs after durable's own scenarios.

Each system runs as its own process against the same PostgreSQL, one after another (so
they never compete for the two cores); every result line is collected into FILE (JSON
lines) and a side-by-side summary with durable/DBOS ratios is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


FAILED: list[str] = []


def run(script: str, *args: str) -> list[dict[str, Any]]:
    cmd = [sys.executable, str(HERE / script), *args]
    print(f"$ {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        print(f"{script} exited {proc.returncode}", file=sys.stderr)
        FAILED.append(script)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    for line in lines:
        print(json.dumps(line), flush=True)
    return lines


def summary(results: list[dict[str, Any]]) -> None:
    def pick(system: str, prefix: str) -> dict[str, Any] | None:
        for r in results:
            if (
                r["system"] == system
                and r["scenario"].split(":")[0].split("_")[0] == prefix
                and r.get("sizes", {}).get("concurrency", 1000) == 1000
            ):
                return r
        return None

    print("\nscenario | durable | dbos | ratio", file=sys.stderr)
    for n, key in (("1", "throughput"), ("2", "throughput"), ("3", "ms_per_step"), ("4", "p50_ms")):
        d, p = pick("durable", n), pick("dbos", n)
        dv = d.get(key) if d else None
        pv = p.get(key) if p else None
        ratio = None
        if dv and pv:
            ratio = dv / pv if key == "throughput" else pv / dv
        print(f"{n} {key} | {dv} | {pv} | {ratio and round(ratio, 1)}x", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--skip-dbos", action="store_true")
    parser.add_argument("--no-sweep", action="store_true")
    parser.add_argument("--skip-http", action="store_true", help="skip http_load.py")
    parser.add_argument("--out", default=str(HERE / "results" / "latest.jsonl"))
    args = parser.parse_args()
    smoke = ["--smoke"] if args.smoke else []
    results: list[dict[str, Any]] = []
    results += run("ceiling.py", *smoke)
    results += run("durable_bench.py", *smoke)
    if not args.no_sweep:
        results += run("durable_bench.py", "--sweep", *smoke)
    if not args.skip_http:
        results += run("http_load.py", *smoke)
    if not args.skip_dbos:
        try:
            import dbos  # noqa: F401
        except ImportError:
            print(
                "dbos is not installed (pip install -e '.[bench]'): skipping the peer",
                file=sys.stderr,
            )
        else:
            results += run("peer_dbos.py", *smoke)
            if not args.no_sweep:
                for c in [10, 100] if args.smoke else [10, 50, 100, 250, 500]:
                    for r in run(
                        "peer_dbos.py", "--scenarios", "1", "--max-inflight", str(c), *smoke
                    ):
                        r.setdefault("sizes", {})["concurrency"] = c
                        results.append(r)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in results))
    print(f"\nwrote {len(results)} results to {out}", file=sys.stderr)
    summary(results)
    # durable's own benchmark failing is a failure; a failing peer is only reported.
    if any(f != "peer_dbos.py" for f in FAILED):
        sys.exit(1)


if __name__ == "__main__":
    main()
