"""Runs every benchmark (`make perf`), each in its own interpreter, prints their markdown, and writes
tests/perf/results/<bench>.json plus results/all.json and results/summary.md.

    .venv/bin/python -m tests.perf.run_all [--quick] [--only cold_start,gateway,...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from tests.perf.common import RESULTS, ROOT, machine

# (module, results name), in the order docs/performance.md gives the figures. Each takes --quick and
# writes results/<name>.json itself.
BENCHMARKS = (
    ("tests.perf.bench_cold_start", "cold_start"),
    ("tests.perf.bench_registry_calls", "registry_calls"),
    ("tests.perf.bench_gateway", "gateway"),
    ("tests.perf.bench_execution_cycle", "execution_cycle"),
    ("tests.perf.bench_anomaly_calls", "anomaly_calls"),
    ("tests.perf.bench_log_cleanup", "log_cleanup"),
    ("tests.perf.bench_definitions", "definitions"),
    ("tests.perf.bench_flows", "flows"),  # issue 14 (docs/performance.md section 13)
    ("tests.perf.bench_alerts", "alerts"),  # issue 13 (docs/performance.md section 12)
    # issue 12: the platform (docs/performance.md section 11)
    ("tests.perf.bench_platform_calls", "platform_calls"),
    ("tests.perf.bench_backfill", "backfill"),
    ("tests.perf.bench_live_events", "live_events"),
    ("tests.perf.bench_cycle_floor", "cycle_floor"),  # issue 10: the floor of a cycle (section 10d)
    ("tests.perf.bench_item_writes", "item_writes"),  # issue 15: DynamoDB Local per item (section 14b)
)
# Benchmarks with a command line of their own (docs/engine.md gives their numbers): module, results
# name, arguments, arguments with --quick. Their output is kept as results/<name>.json.
OWN_CLI = (
    ("tests.perf.bench_sdk_openlineage", "sdk_openlineage", [], ["--quick"]),  # issue 15 (section 14)
    ("tests.perf.bench_openlineage_bulk", "openlineage_bulk", [], []),  # the ingest alone (section 14)
    (
        "tests.perf.bench_engine_throughput",
        "engine_throughput",
        [],
        ["--rows", "100000", "--repeat", "2"],
    ),
    ("tests.perf.bench_run_latency", "run_latency", [], ["--runs", "3"]),
    # issue 10: the local stack under real use (docs/performance.md section 10)
    ("tests.perf.bench_dynamodb_backends", "dynamodb_backends", [], ["--quick"]),
    ("tests.perf.bench_cycle_throughput", "cycle_throughput", [], ["--quick"]),
    ("tests.perf.bench_soak", "soak", [], ["--quick"]),
    ("tests.perf.bench_detection_baseline", "detection_baseline", [], ["--quick"]),  # section 10d
    # RSS per run with and without malloc_trim, side by side (section 10c)
    ("tests.perf.bench_run_memory", "run_memory", [], ["--warmup", "5", "--runs", "20", "--every", "5"]),
    (
        "tests.perf.bench_run_throughput",
        "run_throughput",
        [],
        ["--rows", "100000,400000", "--runs", "1"],
    ),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repetitions")
    parser.add_argument("--only", default="", help="comma-separated results names to run")
    args = parser.parse_args(argv)
    chosen = {name.strip() for name in args.only.split(",") if name.strip()}
    unknown = chosen - {name for _, name in BENCHMARKS} - {entry[1] for entry in OWN_CLI}
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")

    about = machine()
    print(
        f"# Sluice benchmarks\n\n{about['nproc']} cores ({about['cpu']}), Python {about['python']}, "
        f"commit {about['commit']}, {about['date']}{' (--quick)' if args.quick else ''}\n",
        flush=True,
    )
    started = time.perf_counter()
    summary: dict[str, dict] = {}
    sections: list[str] = []
    failed: list[str] = []
    runs = [(module, name, ["--quick"] if args.quick else [], False) for module, name in BENCHMARKS]
    runs += [(module, name, quick if args.quick else full, True) for module, name, full, quick in OWN_CLI]
    for module, name, arguments, own_cli in runs:
        if chosen and name not in chosen:
            continue
        began = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", module, *arguments],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - began
        path = RESULTS / f"{name}.json"
        if own_cli and done.returncode == 0:
            RESULTS.mkdir(parents=True, exist_ok=True)
            last = (done.stdout.strip().splitlines() or ["{}"])[-1]
            data = json.loads(last) if last.startswith("{") else {}
            markdown = f"## {name}\n\n" + done.stdout.strip().removesuffix(last).strip()
            path.write_text(
                json.dumps({"name": name, "machine": about, "data": data, "markdown": markdown}, indent=2)
            )
            done.stdout = markdown
        if done.returncode != 0 or not path.exists():
            failed.append(name)
            text = f"## {name}: FAILED after {seconds:.0f} s\n\n```\n{done.stderr[-3000:]}\n```\n"
            summary[name] = {"failed": True, "stderr": done.stderr[-3000:]}
        else:
            text = done.stdout.strip() + f"\n\n_{name}: {seconds:.0f} s_\n"
            summary[name] = json.loads(path.read_text())
        print(text, flush=True)
        sections.append(text)
    total = time.perf_counter() - started
    print(f"_All benchmarks: {total:.0f} s_", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "all.json").write_text(
        json.dumps({"machine": about, "quick": args.quick, "seconds": total, "benchmarks": summary}, indent=2)
        + "\n"
    )
    (RESULTS / "summary.md").write_text("\n".join(sections) + f"\n_All benchmarks: {total:.0f} s_\n")
    print(f"(wrote {Path(RESULTS / 'all.json').relative_to(ROOT)} and summary.md)", file=sys.stderr)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
