"""The soak (issue 10): `sluice dev` under sustained use, its memory sampled every 30 s.

10,000 start/end cycles from 4 clients over 20 pipelines, each with a total_rows anomaly rule
(every end runs detection in the stack); 500 runs of a 3-node pipeline (inline source -> SQL
transform -> dataset target) one after another; and a reader (pipelines, executions, runs, the
pipeline list) at a few requests a second, all at once, against `sluice dev` in its own process
with its state on disk. Every sample records the RSS of the stack and of DynamoDB Local, the work
done, the background work pending and its lag over the window, and the engine folders of the
stack's process (their DuckDB roots, and node folders inside them).

Targets: after warm-up (the first tenth of the work) the stack's RSS grows less than 50 MB over
the soak; no node folder outlives its run; every end's detection is done within 5 s of the end.

    .venv/bin/python -m tests.perf.bench_soak [--quick] [--cycles 10000] [--runs 500] [--every 30]
"""

from __future__ import annotations

import argparse
import glob
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.test_runs import three_nodes
from tests.perf.common import fmt, markdown_table
from tests.perf.stack_process import admin_client, launch, load_average, rss_bytes, stats, wait_for_background

CLIENTS = 4
PIPELINES = 20
FINISHED = ("success", "failed", "cancelled")


def iso(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment)) + f".{int(moment % 1 * 1e6):06d}Z"


class Progress:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.cycles = 0
        self.runs = 0
        self.run_failures: list[str] = []
        self.reads = 0
        self.errors: list[str] = []
        self.executions: list[int] = []
        self.run_ids: list[str] = []
        self.stop = threading.Event()

    def error(self, what: str) -> None:
        with self.lock:
            self.errors.append(what)


def cycle_worker(stack: Any, pipelines: list[int], offset: int, total: int, progress: Progress) -> None:
    with admin_client(stack) as client:
        index = offset
        while not progress.stop.is_set():
            with progress.lock:
                if progress.cycles >= total:
                    return
            pipeline_id = pipelines[index % len(pipelines)]
            index += CLIENTS
            started = client.post(
                "/start_pipeline_execution",
                json={"pipeline_id": pipeline_id, "start_date": iso(time.time() - 300)},
            )
            if started.status_code != 201:
                progress.error(f"start {started.status_code} {started.text[:80]}")
                continue
            execution = started.json()["id"]
            body = {
                "id": execution,
                "end_date": iso(time.time()),
                "completed_successfully": True,
                "total_rows": 1000 + index % 7,
                "inserts": 10,
                "updates": 0,
                "soft_deletes": 0,
            }
            ended = client.post("/end_pipeline_execution", json=body)
            if ended.status_code != 204:
                progress.error(f"end {ended.status_code} {ended.text[:80]}")
                continue
            with progress.lock:
                progress.cycles += 1
                if len(progress.executions) < 1000:
                    progress.executions.append(execution)


def run_worker(stack: Any, pipeline_id: str, total: int, progress: Progress) -> None:
    with admin_client(stack) as client:
        for _ in range(total):
            if progress.stop.is_set():
                return
            triggered = client.post(f"/api/pipelines/{pipeline_id}/run", json={})
            if triggered.status_code != 202:
                progress.error(f"run {triggered.status_code} {triggered.text[:80]}")
                continue
            run_id = triggered.json()["id"]
            deadline = time.monotonic() + 300
            status = "pending"
            while time.monotonic() < deadline and status not in FINISHED:
                time.sleep(0.25)
                status = client.get(f"/api/runs/{run_id}").json().get("status")
            with progress.lock:
                progress.runs += 1
                progress.run_ids = (progress.run_ids + [run_id])[-200:]
                if status != "success":
                    progress.run_failures.append(f"{run_id} {status}")


def read_worker(stack: Any, pipelines: list[int], progress: Progress, per_second: float = 4.0) -> None:
    with admin_client(stack) as client:
        n = 0
        while not progress.stop.wait(1 / per_second):
            n += 1
            with progress.lock:
                execution = progress.executions[n % len(progress.executions)] if progress.executions else None
                run_id = progress.run_ids[n % len(progress.run_ids)] if progress.run_ids else None
            paths = [f"/pipeline/{pipelines[n % len(pipelines)]}"]
            if execution:
                paths.append(f"/pipeline_execution/{execution}")
            if run_id:
                paths.append(f"/api/runs/{run_id}")
            if n % 20 == 0:
                paths.append("/api/v1/pipelines?limit=20")
            for path in paths:
                try:
                    answer = client.get(path)
                except httpx.HTTPError as exc:
                    progress.error(f"read {path} {exc}")
                    continue
                if answer.status_code != 200:
                    progress.error(f"read {path} {answer.status_code}")
                with progress.lock:
                    progress.reads += 1


def engine_folders(pid: int) -> tuple[int, int]:
    """(DuckDB roots of the process, node folders inside them)."""
    roots = glob.glob(f"{tempfile.gettempdir()}/sluice-engine-{pid}-*")
    nodes = sum(len(glob.glob(f"{root}/node-*")) for root in roots)
    return len(roots), nodes


def memory_map(pid: int) -> dict[str, Any]:
    """Where the process's resident memory is, from /proc/PID/smaps: megabytes by kind of mapping
    (the main C heap, anonymous mappings (other arenas, large blocks, thread stacks), and each
    file-backed library by name, the largest only), and the threads alive. A step in RSS then shows
    whether it is heap, a new arena or a library's own memory."""
    by_kind: dict[str, int] = {}
    anonymous_mappings = 0
    kind = "anon"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if not fields:
            continue
        if "-" in fields[0] and len(fields) >= 5 and not fields[0].endswith(":"):
            name = fields[5] if len(fields) > 5 else ""
            if not name:
                kind, anonymous_mappings = "anon", anonymous_mappings + 1
            elif name.startswith("["):
                kind = name
            else:
                kind = Path(name).name
        elif fields[0] == "Rss:":
            by_kind[kind] = by_kind.get(kind, 0) + int(fields[1])
    largest = sorted(by_kind.items(), key=lambda item: -item[1])[:6]
    threads = next(
        int(line.split()[1])
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("Threads:")
    )
    return {
        "rss_by_mapping_mb": {name: round(kb / 1024, 1) for name, kb in largest},
        "anonymous_mappings": anonymous_mappings,
        "threads": threads,
    }


def sample(stack: Any, java_pid: int, began: float, progress: Progress) -> dict[str, Any]:
    stack_stats = stats(stack, reset=True)
    background = stack_stats["background"]
    roots, nodes = engine_folders(stack.process.pid)
    with progress.lock:
        done = {"cycles": progress.cycles, "runs": progress.runs, "reads": progress.reads}
    return {
        "t_s": round(time.monotonic() - began, 1),
        **done,
        "stack_rss_mb": round(rss_bytes(stack.process.pid) / 2**20, 1),
        "dynamodb_local_rss_mb": round(rss_bytes(java_pid) / 2**20, 1),
        "background_pending": background["pending"],
        "detection_lag_ms": background["lag_ms"].get("AnomalyDetectionFunction", {}),
        "engine_roots": roots,
        "node_folders": nodes,
        "load_average": load_average(),
        "heap": stack_stats.get("heap", {}),
        **memory_map(stack.process.pid),
    }


def measure(cycles: int, runs: int, every: float) -> dict[str, Any]:
    progress = Progress()
    samples: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="sluice-soak-") as folder:
        stack = launch(Path(folder) / "data")
        java_pid = stats(stack)["dynamodb_local"]["pid"]
        try:
            with admin_client(stack) as client:
                pipelines = []
                for n in range(PIPELINES):
                    created = client.post(
                        "/pipeline", json={"name": f"soak-{n}", "pipeline_type_name": "soak"}
                    )
                    rule = {
                        "pipeline_id": created.json()["id"],
                        "metric_field": "total_rows",
                        "z_threshold": 3.0,
                    }
                    client.post("/anomaly_detection_rule", json={**rule, "minimum_executions": 5})
                    pipelines.append(created.json()["id"])
                nodes, edges = three_nodes("soak_out")
                made = client.post(
                    "/api/v1/pipelines", json={"name": "soak-run", "nodes": nodes, "edges": edges}
                )
                assert made.status_code == 201, made.text
                run_pipeline = made.json()["data"]["id"]
            began = time.monotonic()
            samples.append(sample(stack, java_pid, began, progress))
            workers = [
                threading.Thread(target=cycle_worker, args=(stack, pipelines, i, cycles, progress))
                for i in range(CLIENTS)
            ]
            workers.append(threading.Thread(target=run_worker, args=(stack, run_pipeline, runs, progress)))
            reader = threading.Thread(target=read_worker, args=(stack, pipelines, progress))
            for worker in [*workers, reader]:
                worker.start()
            while any(w.is_alive() for w in workers):
                for worker in workers:
                    worker.join(timeout=every / len(workers))
                if time.monotonic() - began >= len(samples) * every:
                    samples.append(sample(stack, java_pid, began, progress))
                    print(json.dumps(samples[-1]), flush=True)
            progress.stop.set()
            reader.join()
            wait_for_background(stack)
            time.sleep(2)
            samples.append(sample(stack, java_pid, began, progress))
            elapsed = time.monotonic() - began
        finally:
            progress.stop.set()
            stack.stop()
    warm = next(
        (s for s in samples if s["cycles"] >= cycles / 10 and s["runs"] >= runs / 10),
        samples[min(1, len(samples) - 1)],
    )
    lags = [s["detection_lag_ms"] for s in samples if s["detection_lag_ms"]]
    return {
        "cycles": progress.cycles,
        "runs": progress.runs,
        "reads": progress.reads,
        "elapsed_s": elapsed,
        "errors": progress.errors[:10],
        "error_count": len(progress.errors),
        "run_failures": progress.run_failures[:10],
        "samples": samples,
        "warm_sample": warm,
        "rss_growth_after_warmup_mb": samples[-1]["stack_rss_mb"] - warm["stack_rss_mb"],
        "rss_peak_mb": max(s["stack_rss_mb"] for s in samples),
        "dynamodb_local_rss_growth_after_warmup_mb": samples[-1]["dynamodb_local_rss_mb"]
        - warm["dynamodb_local_rss_mb"],
        "max_engine_roots": max(s["engine_roots"] for s in samples),
        "node_folders_at_end": samples[-1]["node_folders"],
        "detection_lag_p50_ms_median_of_windows": statistics.median(w["p50"] for w in lags) if lags else None,
        "detection_lag_p99_ms_worst_window": max(w["p99"] for w in lags) if lags else None,
        "detection_lag_max_ms": max(w["max"] for w in lags) if lags else None,
    }


def heap_cell(heap: dict[str, Any]) -> str:
    if heap.get("c_in_use") is None:
        return "-"
    return f"{heap['c_in_use'] / 2**20:.1f} / {heap['c_free'] / 2**20:.1f}, {heap['python_blocks']:,}"


def report(results: dict[str, Any]) -> str:
    rows = [
        [
            fmt(s["t_s"], 0),
            fmt(s["cycles"]),
            fmt(s["runs"]),
            fmt(s["reads"]),
            fmt(s["stack_rss_mb"]),
            fmt(s["dynamodb_local_rss_mb"]),
            fmt(s["background_pending"]),
            f"{s['detection_lag_ms'].get('p50', '-')} / {s['detection_lag_ms'].get('p99', '-')}",
            f"{s['engine_roots']} / {s['node_folders']}",
            " ".join(str(x) for x in s["load_average"]),
            heap_cell(s.get("heap", {})),
            fmt(s.get("threads")),
            ", ".join(f"{name} {mb}" for name, mb in list(s.get("rss_by_mapping_mb", {}).items())[:3]),
        ]
        for s in results["samples"]
    ]
    table = markdown_table(
        [
            "t (s)",
            "cycles",
            "runs",
            "reads",
            "stack RSS MB",
            "DynamoDB Local RSS MB",
            "pending",
            "detection lag p50 / p99 ms",
            "engine roots / node folders",
            "load average",
            "C heap in use / free MB, pymalloc blocks",
            "threads",
            "RSS by mapping MB (largest 3)",
        ],
        rows,
    )
    summary = (
        f"\n\n{results['cycles']:,} cycles, {results['runs']} runs ({len(results['run_failures'])} not successful), "
        f"{results['reads']:,} reads in {results['elapsed_s']:.0f} s; {results['error_count']} failed requests. "
        f"Stack RSS after warm-up ({results['warm_sample']['t_s']:.0f} s) grew "
        f"{results['rss_growth_after_warmup_mb']:+.1f} MB (peak {results['rss_peak_mb']:.0f} MB); DynamoDB Local "
        f"{results['dynamodb_local_rss_growth_after_warmup_mb']:+.1f} MB. At most {results['max_engine_roots']} "
        f"engine roots, {results['node_folders_at_end']} node folders at the end. Detection lag: p50 "
        f"{results['detection_lag_p50_ms_median_of_windows']} ms (median of windows), p99 "
        f"{results['detection_lag_p99_ms_worst_window']} ms (worst window), max {results['detection_lag_max_ms']} ms."
    )
    return table + summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="600 cycles, 20 runs, a sample every 5 s")
    parser.add_argument("--cycles", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--every", type=float, default=30.0)
    args = parser.parse_args()
    if args.quick:
        args.cycles, args.runs, args.every = 600, 20, 5.0
    results = measure(args.cycles, args.runs, args.every)
    print(report(results))
    print(json.dumps(results, default=str))


if __name__ == "__main__":
    main()
