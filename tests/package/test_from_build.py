"""What `sam build` built, run by the local stack end to end (`sluice dev --from-build`): each
function's built folder and the built layer's sluice package, not the source tree.

Run by `make package-check` after `sam build`; not part of `make test` (it needs the build).
SLUICE_BUILD_DIR chooses the build (default .aws-sam/build).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, eventually, start_stack

BUILD = Path(os.environ.get("SLUICE_BUILD_DIR") or ROOT / ".aws-sam" / "build")
FINISHED = ("success", "failed", "cancelled")


@pytest.fixture(scope="module")
def stack():
    if not (BUILD / "template.yaml").is_file():
        pytest.fail(f"no build at {BUILD}: run `make build` (sam build) first, or `make package-check`")
    running = start_stack("--ephemeral", "--from-build", str(BUILD))
    yield running
    assert running.stop() == 0


def iso(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


def test_the_stack_runs_the_build(stack):
    announced = [line for line in stack.output if line.startswith("Running the build:")]
    assert announced and str(BUILD.resolve() / "CoreLayer" / "python" / "sluice") in announced[0]


def test_create_run_report_and_read_back_through_the_built_handlers(stack):
    with stack.admin as admin:
        # A pipeline definition: inline rows -> SQL -> dataset, run by the Run state machine on
        # moto, whose tasks are the built ExecuteNode/NextStep/... handlers doing DuckDB work.
        nodes = [
            {"id": "src", "nodeType": "source", "config": {"kind": "inline", "rows": [{"n": 1}, {"n": 5}]}},
            {
                "id": "big",
                "nodeType": "transform",
                "config": {"sql": "SELECT n * 10 AS tens FROM src WHERE n > 2"},
            },
            {
                "id": "out",
                "nodeType": "target",
                "config": {"kind": "dataset", "name": "from_build", "mode": "overwrite"},
            },
        ]
        edges = [{"source": "src", "target": "big"}, {"source": "big", "target": "out"}]
        created = admin.post("/api/v1/pipelines", json={"name": "from-build", "nodes": nodes, "edges": edges})
        assert created.status_code == 201, created.text
        pipeline_id = created.json()["data"]["id"]

        triggered = admin.post(f"/api/pipelines/{pipeline_id}/run", json={"params": {}})
        assert triggered.status_code == 202, triggered.text
        run_id = triggered.json()["id"]

        def finished():
            run = admin.get(f"/api/runs/{run_id}").json()
            return run if run.get("status") in FINISHED else None

        run = eventually(finished, timeout=90, interval=0.3)
        assert run["status"] == "success", run
        assert {n["node_id"]: n["status"] for n in run["node_runs"]} == {
            "src": "success",
            "big": "success",
            "out": "success",
        }

        # An external pipeline reports an execution (Watcher's surface), then it is read back.
        watched = admin.post("/pipeline", json={"name": "from-build-etl", "pipeline_type_name": "batch"})
        assert watched.status_code == 201, watched.text
        now = time.time()
        started = admin.post(
            "/start_pipeline_execution",
            json={"pipeline_id": watched.json()["id"], "start_date": iso(now - 60)},
        )
        assert started.status_code == 201, started.text
        execution = started.json()["id"]
        ended = admin.post(
            "/end_pipeline_execution",
            json={"id": execution, "end_date": iso(now), "completed_successfully": True, "total_rows": 42},
        )
        assert ended.status_code == 204, ended.text

        read = admin.get(f"/pipeline_execution/{execution}")
        assert read.status_code == 200, read.text
        body = read.json()
        assert body["id"] == execution and body["completed_successfully"] is True
        assert body["total_rows"] == 42
