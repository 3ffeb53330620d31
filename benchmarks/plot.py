"""Draw the benchmark plots (PNG) from a results file written by run.py.

python benchmarks/plot.py [benchmarks/results/latest.jsonl] [--out docs/img]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).resolve().parent


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def throughput_vs_concurrency(results: list[dict[str, Any]], out: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for system, marker in (("durable", "o"), ("dbos", "s")):
        pts = sorted(
            {
                # DBOS's base run (no cap) has all 1,000 runs in flight.
                r.get("sizes", {}).get("concurrency", 1000): r["throughput"]
                for r in results
                if r["system"] == system and r["scenario"].startswith("1")
            }.items()
        )
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=marker, label=system)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("runs in flight (durable: Runtime concurrency; DBOS: --max-inflight)")
    ax.set_ylabel("steps per second")
    ax.set_title("Scenario 1: 1,000 runs x 10 no-op steps")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "throughput_vs_concurrency.png", dpi=110)


def replay_vs_history(results: list[dict[str, Any]], out: Path) -> None:
    pts = sorted(
        {
            r["sizes"]["events"]: r["ms"]
            for r in results
            if r["system"] == "durable" and r["scenario"].startswith("5")
        }.items()
    )
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label="durable")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("events in history")
    ax.set_ylabel("ms to resume an evicted run (replay + finish)")
    ax.set_title("Scenario 5: replay time against history length")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "replay_vs_history.png", dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", default=str(HERE / "results" / "latest.jsonl"))
    parser.add_argument("--out", default=str(HERE.parent / "docs" / "img"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = load(Path(args.results))
    throughput_vs_concurrency(results, out)
    replay_vs_history(results, out)
    print(f"wrote plots to {out}")


if __name__ == "__main__":
    main()
