"""RSS per pipeline run of `sluice dev`, with and without giving the C heap back (issue 10's soak).

Stacks side by side, on the same machine at the same time: one with `SLUICE_DEV_HEAP_TRIM=0` (no
`malloc_trim` in the maintenance pass), one as shipped, and one as shipped with glibc limited to two
arenas (`MALLOC_ARENA_MAX=2`); or (`--variants "objects in moto,objects in files"`) one with the
template buckets' objects in moto's memory (`SLUICE_DEV_S3_SPILL=0`) and one as shipped; each runs the soak's 3-node pipeline one run after another
(`--warmup` runs first, then `--runs`), and every `--every` runs records the stack's RSS, its
anonymous and private dirty memory (/proc/<pid>/smaps_rollup), its thread count and open file
descriptors, and its own view of its heap (`/_local/stats`: the C heap's bytes in use and free, the
interpreter's live blocks), which tells live objects from native allocations from freed memory kept.
After the runs each idles 35 s (one maintenance pass) and is sampled again.

    .venv/bin/python -m tests.perf.bench_run_memory [--warmup 20] [--runs 100] [--every 10]
        [--variants "no trim,malloc_trim,malloc_trim + MALLOC_ARENA_MAX=2"]
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

VARIANTS: dict[str, dict[str, str]] = {
    "no trim": {"SLUICE_DEV_HEAP_TRIM": "0"},
    "malloc_trim": {"SLUICE_DEV_HEAP_TRIM": "1"},
    # glibc gives threads arenas of their own (up to 8 per core); moto's Step Functions interpreter
    # runs each state on a new thread, so a run's allocations spread over many arenas
    "malloc_trim + MALLOC_ARENA_MAX=2": {"SLUICE_DEV_HEAP_TRIM": "1", "MALLOC_ARENA_MAX": "2"},
    # the template buckets' objects in moto's memory (moto's own key store) or in files (as shipped)
    "objects in moto": {"SLUICE_DEV_S3_SPILL": "0"},
    "objects in files": {"SLUICE_DEV_S3_SPILL": "1"},
    # glibc moves its mmap threshold up to 32 MB as large blocks are freed, after which they come
    # from the heap and fragment it; a fixed threshold keeps blocks of 64 KB and more in mmaps of
    # their own, given back to the system when freed
    "mmap threshold 64 KB": {"MALLOC_MMAP_THRESHOLD_": "65536"},
    "mmap threshold 64 KB + MALLOC_ARENA_MAX=2": {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_ARENA_MAX": "2"},
    # pymalloc frees an arena only when every block in it is free, so a few long-lived objects
    # among a run's garbage pin whole arenas; glibc's malloc reuses freed chunks of any size
    "PYTHONMALLOC=malloc": {"PYTHONMALLOC": "malloc"},
    "PYTHONMALLOC=malloc + MALLOC_ARENA_MAX=2": {"PYTHONMALLOC": "malloc", "MALLOC_ARENA_MAX": "2"},
}


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


def heap_mb(heap: dict[str, Any]) -> dict[str, Any]:
    """The stack's own view of its heap (`/_local/stats`): C heap in use and free, pymalloc blocks."""
    return {
        "c_in_use_mb": round(heap["c_in_use"] / 2**20, 1) if heap.get("c_in_use") is not None else None,
        "c_free_mb": round(heap["c_free"] / 2**20, 1) if heap.get("c_free") is not None else None,
        "python_blocks": heap.get("python_blocks"),
    }


def drive(name: str, env: dict[str, str], warmup: int, runs: int, every: int, out: dict[str, Any]) -> None:
    samples: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="sluice-runmem-") as folder:
        stack = start_stack("--data-dir", str(Path(folder) / "data"), env=env)
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
                        heap = stats(stack).get("heap") or {}
                        samples.append({"runs": n, **memory(pid), **heap_mb(heap), "load": load_average()})
                        print(name, json.dumps(samples[-1]), flush=True)
            time.sleep(35)
            heap = stats(stack).get("heap") or {}
            samples.append({"runs": "idle 35 s", **memory(pid), **heap_mb(heap), "load": load_average()})
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
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated variant names")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.variants.split(",") if name.strip()]
    if unknown := set(chosen) - set(VARIANTS):
        parser.error(f"unknown variant(s): {', '.join(sorted(unknown))}")
    results: dict[str, Any] = {}
    threads = [
        threading.Thread(
            target=drive, args=(name, VARIANTS[name], args.warmup, args.runs, args.every, results)
        )
        for name in chosen
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rows = []
    for name in chosen:
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
                f"{fmt(first['c_in_use_mb'])} -> {fmt(idle['c_in_use_mb'])}",
                f"{fmt(first['c_free_mb'])} -> {fmt(idle['c_free_mb'])}",
                f"{first['python_blocks']} -> {idle['python_blocks']}",
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
                "C heap in use MB",
                "C heap free MB",
                "pymalloc blocks",
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
