"""Live events on the local stack (issue 12): the latency from a node finishing (its node run's
`finished_at`) to its `node.status` message arriving at a WebSocket client.

`sluice dev --ephemeral` runs in this process (tests/perf/local_stack.py); a client connects to
/api/ws and triggers runs of a 4-node chain one after the other. The path measured is the real
one: ExecuteNode publishes on EventBridge (moto), the rule's target (LiveFanoutFunction) runs as
an asynchronous invocation, Queries the project's connections and posts through the management
API to the gateway, which sends it on the socket.

    .venv/bin/python -m tests.perf.bench_live_events [--quick]
"""

from __future__ import annotations

import contextlib
import io
import json
import time
import warnings
from typing import Any

from tests.perf.common import Report, bench_main, markdown_table, percentile
from tests.perf.local_stack import ADMIN_KEY, running_stack

NODES = 4


def measure(runs: int) -> dict[str, Any]:
    import httpx
    import pendulum
    from websockets.sync.client import connect

    warnings.filterwarnings("ignore", message="No application metrics to publish")
    latencies: list[float] = []
    run_status: list[float] = []
    with (
        contextlib.redirect_stdout(io.StringIO()),
        running_stack() as (_stack, base_url),
        httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60) as api,
        connect(base_url.replace("http://", "ws://") + f"/api/ws?token={ADMIN_KEY}") as socket,
    ):
        nodes = [{"id": "n0", "nodeType": "source", "config": {"kind": "inline", "rows": [{"a": 1}]}}]
        nodes += [
            {"id": f"n{i}", "nodeType": "transform", "config": {"sql": f"SELECT a + {i} AS a FROM n{i - 1}"}}
            for i in range(1, NODES)
        ]
        edges = [{"source": f"n{i - 1}", "target": f"n{i}"} for i in range(1, NODES)]
        created = api.post("/api/v1/pipelines", json={"name": "chain", "nodes": nodes, "edges": edges})
        assert created.status_code == 201, created.text
        pipeline = created.json()["data"]["id"]
        for _ in range(runs + 1):  # the first run warms the functions up and is not counted
            run_id = api.post(f"/api/pipelines/{pipeline}/run", json={}).json()["id"]
            samples, deadline = [], time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    text = socket.recv(timeout=5)
                except TimeoutError:
                    continue
                arrived = time.time()
                message = json.loads(text)
                if message.get("run_id") != run_id:
                    continue
                if message["type"] == "node.status" and message["status"] == "success":
                    samples.append(arrived - pendulum.parse(message["finished_at"]).timestamp())
                if message["type"] == "run.status" and message["status"] in ("success", "failed"):
                    run_status.append(arrived - pendulum.parse(message["at"]).timestamp())
                    break
            assert len(samples) == NODES, samples
            if _ > 0:
                latencies += samples
    return {
        "runs": runs,
        "nodes_per_run": NODES,
        "samples": len(latencies),
        "node_status_ms": {
            "median": percentile(latencies, 50) * 1000,
            "p95": percentile(latencies, 95) * 1000,
            "max": max(latencies) * 1000,
        },
        "run_status_publish_to_client_ms": {
            "median": percentile(run_status[1:], 50) * 1000,
            "p95": percentile(run_status[1:], 95) * 1000,
        },
    }


def run(quick: bool) -> Report:
    result = measure(5 if quick else 15)
    report = Report("live_events", "Live events: from a node's finish to its message at the client")
    report.data["result"] = result
    node = result["node_status_ms"]
    published = result["run_status_publish_to_client_ms"]
    report.add(
        f"{result['runs']} runs of a {NODES}-node chain, {result['samples']} `node.status` success messages, "
        "in-process `sluice dev --ephemeral`, one WebSocket client.\n\n"
        + markdown_table(
            ["latency", "median (ms)", "p95 (ms)"],
            [
                [
                    "node finished -> its `node.status` at the client",
                    f"{node['median']:.0f}",
                    f"{node['p95']:.0f}",
                ],
                [
                    "run ended (event published) -> `run.status` at the client",
                    f"{published['median']:.0f}",
                    f"{published['p95']:.0f}",
                ],
            ],
        )
    )
    return report


if __name__ == "__main__":
    bench_main(__doc__.splitlines()[0], run)
