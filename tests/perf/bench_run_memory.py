"""RSS per pipeline run of `sluice dev`, with and without giving the C heap back (issue 10's soak).

Two stacks side by side, on the same machine at the same time, one with `SLUICE_DEV_HEAP_TRIM=0`
(no `malloc_trim` in the maintenance pass) and one as shipped; each runs the soak's 3-node pipeline
one run after another (`--warmup` runs first, then `--runs`), and every `--every` runs records the
stack's RSS, its anonymous and private dirty memory (/proc/<pid>/smaps_rollup), its thread count and
open file descriptors. After the runs both idle 35 s (one maintenance pass) and are sampled again.

    .venv/bin/python -m tests.perf.bench_run_memory [--warmup 20] [--runs 100] [--every 10]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tests.e2e.conftest import start_stack
from tests.e2e.test_runs import three_nodes
from tests.perf.bench_soak import FINISHED
from tests.perf.common import fmt, markdown_table
from tests.perf.stack_process import admin_client, cpu_seconds, load_average, rss_bytes, stats

VARIANTS = {"no trim": "0", "malloc_trim": "1"}


def memory(pid: int) -> dict[str, Any]:
    rollup = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_ = line.split()
        rollup[name.rstrip(":")] = int(value) * 1024
    status = {
        k: v.strip()
        for k, v in (line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    }
    return {
        "rss_mb": round(rss_bytes(pid) / 2**20, 1),
        "anonymous_mb": round(rollup.get("Anonymous", 0) / 2**20, 1),
        "private_dirty_mb": round(rollup.get("Private_Dirty", 0) / 2**20, 1),
        "threads": int(status["Threads"]),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "cpu_s": round(cpu_seconds(pid), 1),
    }


def drive(name: str, trim: str, warmup: int, runs: int, every: int, out: dict[str, Any]) -> None:
    samples: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="sluice-runmem-") as folder:
        stack = start_stack("--data-dir", str(Path(folder) / "data"), env={"SLUICE_DEV_HEAP_TRIM": trim})
        pid = stack.process.pid
        try:
            with admin_client(stack) as client:
                nodes, edges = three_nodes("runmem_out")
                made = client.post(
                    "/api/v1/pipelines", json={"name": "runmem", "nodes": nodes, "edges": edges}
                )
                assert made.status_code == 201, made.text
                pipeline = made.json()["data"]["id"]
                failures = 0
                for n in range(1, warmup + runs + 1):
                    run_id = client.post(f"/api/pipelines/{pipeline}/run", json={}).json()["id"]
                    status, deadline = "pending", time.monotonic() + 300
                    while status not in FINISHED and time.monotonic() < deadline:
                        time.sleep(0.25)
                        status = client.get(f"/api/runs/{run_id}").json().get("status")
                    failures += status != "success"
                    if n >= warmup and (n - warmup) % every == 0:
                        samples.append({"runs": n, **memory(pid), "load": load_average()})
                        print(name, json.dumps(samples[-1]), flush=True)
            time.sleep(35)
            samples.append({"runs": "idle 35 s", **memory(pid), "load": load_average()})
            out[name] = {
                "samples": samples,
                "failures": failures,
                "heap_trims": stats(stack).get("heap_trims"),
            }
        finally:
            stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--every", type=int, default=10)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    threads = [
        threading.Thread(target=drive, args=(name, trim, args.warmup, args.runs, args.every, results))
        for name, trim in VARIANTS.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rows = []
    for name in VARIANTS:
        first, last = results[name]["samples"][0], results[name]["samples"][-2]
        idle = results[name]["samples"][-1]
        rows.append(
            [
                name,
                f"{fmt(first['rss_mb'])} -> {fmt(last['rss_mb'])} ({last['rss_mb'] - first['rss_mb']:+.1f})",
                f"{(last['rss_mb'] - first['rss_mb']) / args.runs * 1024:.0f}",
                fmt(idle["rss_mb"]),
                f"{fmt(first['anonymous_mb'])} -> {fmt(idle['anonymous_mb'])}",
                f"{first['threads']} -> {last['threads']}",
                f"{first['fds']} -> {last['fds']}",
                f"{(last['cpu_s'] - first['cpu_s']) / args.runs * 1000:.0f}",
                str(results[name]["failures"]),
            ]
        )
    print(
        markdown_table(
            [
                "variant",
                f"RSS MB after {args.warmup} -> after {args.warmup + args.runs} runs",
                "KB per run",
                "RSS idle 35 s",
                "anonymous MB",
                "threads",
                "fds",
                "CPU ms per run",
                "failed runs",
            ],
            rows,
        )
    )
    print(f"load average at the end: {load_average()}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
