"""A backfill of 366 days on the local stack (issue 12): the time from the request to every child
run written and queued (`pending`, the 202 answer), the rate of that, and the time until every
child finished and the parent ended.

`sluice dev --ephemeral` runs in this process (tests/perf/local_stack.py); the pipeline is one
inline-source node, so what is measured is the backfill's own machinery (the request's writes,
the Backfill state machine's Map releasing children within the project's run slots, the run
queue, the dispatcher, the Run state machine) rather than node work.

    .venv/bin/python -m tests.perf.bench_backfill [--quick]   # --quick: 60 days only
    FINISH_DAYS=366 .venv/bin/python -m tests.perf.bench_backfill   # a year run to the end (minutes)
"""

from __future__ import annotations

import contextlib
import io
import time
import warnings
from typing import Any

from tests.perf.common import Report, bench_main, markdown_table
from tests.perf.local_stack import ADMIN_KEY, running_stack

CONCURRENCY = 10  # the project's max_concurrent_runs during the benchmark


def measure(cases: list[tuple[int, bool]]) -> list[dict[str, Any]]:
    """Each (days, run to the end?) case on one local stack, in turn; a case not run to the end is
    cancelled (its unreleased children with it) and waited for before the next starts."""
    import httpx
    import pendulum

    warnings.filterwarnings("ignore", message="No application metrics to publish")
    printed = io.StringIO()
    results = []
    with (
        contextlib.redirect_stdout(printed),
        running_stack() as (_stack, base_url),
        httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60) as api,
    ):
        assert api.patch("/api/system/settings", json={"max_concurrent_runs": CONCURRENCY}).status_code == 200
        for index, (days, wait) in enumerate(cases):
            created = api.post(
                "/api/v1/pipelines",
                json={
                    "name": f"daily-{index}",
                    "nodes": [
                        {"id": "src", "nodeType": "source", "config": {"kind": "inline", "rows": [{"a": 1}]}}
                    ],
                    "edges": [],
                },
            )
            assert created.status_code == 201, created.text
            pipeline = created.json()["data"]["id"]
            # Warm: the runs area's handler loaded and its clients made, as in a warm Lambda.
            warm = {"start_date": "2023-01-01", "end_date": "2023-01-02", "dry_run": True}
            assert api.post(f"/api/pipelines/{pipeline}/backfill", json=warm).status_code == 200
            start = pendulum.date(2024, 1, 1)
            end = start.add(days=days - 1)
            began = time.perf_counter()
            answered = api.post(
                f"/api/pipelines/{pipeline}/backfill",
                json={"start_date": start.isoformat(), "end_date": end.isoformat()},
            )
            queued = time.perf_counter() - began
            assert answered.status_code == 202, answered.text
            body = answered.json()
            assert body["count"] == days
            if not wait:
                assert api.post(f"/api/runs/{body['id']}/cancel").status_code == 200
            while True:
                parent = api.get(f"/api/runs/{body['id']}").json()
                if parent["status"] in ("success", "failed", "cancelled"):
                    break
                time.sleep(0.5)
            finished = time.perf_counter() - began
            results.append(
                {
                    "days": days,
                    "concurrency": CONCURRENCY,
                    "queued_seconds": queued,
                    "queued_per_second": days / queued,
                    "finished_seconds": finished if wait else None,
                    "finished_per_second": days / finished if wait else None,
                    "parent_status": parent["status"],
                }
            )
    return results


def run(quick: bool) -> Report:
    """Full: 366 days queued (then cancelled), and 60 days run to the end (a year run to the end
    takes minutes on the local stack: FINISH_DAYS=366 measures it). Quick: 60 days only."""
    import os

    finish_days = 60 if quick else int(os.environ.get("FINISH_DAYS", "60"))
    cases = [(finish_days, True)] if quick else [(366, False), (finish_days, True)]
    results = measure(cases)
    report = Report("backfill", "A backfill on the local stack")
    report.data["results"] = results
    rows = []
    for result in results:
        rows.append(
            [
                f"{result['days']} days",
                f"{result['queued_seconds']:.2f}",
                f"{result['queued_per_second']:.0f}",
                "cancelled after queueing"
                if result["finished_seconds"] is None
                else f"{result['finished_seconds']:.1f} s ({result['finished_per_second']:.1f} runs/s)",
                result["parent_status"],
            ]
        )
    report.add(
        "POST /api/pipelines/{id}/backfill of a one-node pipeline, max_concurrent_runs "
        f"{CONCURRENCY} (the Map's MaxConcurrency), in-process `sluice dev --ephemeral`. Queued = every "
        "child written `pending` and the Backfill execution started (the 202 answer).\n\n"
        + markdown_table(
            ["backfill", "request -> all queued (s)", "runs queued per second", "-> all finished", "parent"],
            rows,
        )
    )
    return report


if __name__ == "__main__":
    bench_main(__doc__.splitlines()[0], run)
