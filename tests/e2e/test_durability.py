"""`kill -9` of `sluice dev` in the middle of sustained use, then a restart on the same data dir:
no acknowledged write is lost, every run recorded `success` still has its outputs, and no run
stays `running` once the reconciler has passed."""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx

from tests.e2e.conftest import ADMIN_KEY, eventually, start_stack
from tests.e2e.test_local_stack import dynamodb_local_of
from tests.e2e.test_runs import three_nodes

TRAFFIC_SECONDS = 8


def iso(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment)) + ".000000Z"


class Acknowledged:
    """What the stack answered as done, recorded only once the answer arrived."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started: set[int] = set()
        self.ended: set[int] = set()
        self.pipelines: set[int] = set()
        self.runs: set[str] = set()
        self.succeeded: set[str] = set()
        self.stop = threading.Event()


def cycles(base_url: str, pipeline_id: int, seen: Acknowledged) -> None:
    with httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10
    ) as client:
        while not seen.stop.is_set():
            try:
                started = client.post(
                    "/start_pipeline_execution",
                    json={"pipeline_id": pipeline_id, "start_date": iso(time.time() - 60)},
                )
                if started.status_code != 201:
                    continue
                execution = started.json()["id"]
                with seen.lock:
                    seen.started.add(execution)
                body = {
                    "id": execution,
                    "end_date": iso(time.time()),
                    "completed_successfully": True,
                    "total_rows": 5,
                }
                if client.post("/end_pipeline_execution", json=body).status_code == 204:
                    with seen.lock:
                        seen.ended.add(execution)
                created = client.post(
                    "/pipeline", json={"name": f"made-{execution}", "pipeline_type_name": "kill"}
                )
                if created.status_code == 201:
                    with seen.lock:
                        seen.pipelines.add(created.json()["id"])
            except httpx.HTTPError:
                return  # the stack is gone


def runs(base_url: str, pipeline_id: str, seen: Acknowledged) -> None:
    with httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10
    ) as client:
        while not seen.stop.is_set():
            try:
                triggered = client.post(f"/api/pipelines/{pipeline_id}/run", json={})
                if triggered.status_code == 202:
                    with seen.lock:
                        seen.runs.add(triggered.json()["id"])
                for run_id in list(seen.runs - seen.succeeded):
                    if client.get(f"/api/runs/{run_id}").json().get("status") == "success":
                        with seen.lock:
                            seen.succeeded.add(run_id)
                time.sleep(0.3)
            except httpx.HTTPError:
                return


def test_kill_9_mid_traffic_loses_no_acknowledged_write(tmp_path):
    data_dir = tmp_path / "state"
    first = start_stack("--data-dir", str(data_dir))
    seen = Acknowledged()
    try:
        with first.admin as admin:
            pipelines = [
                admin.post("/pipeline", json={"name": f"load-{n}", "pipeline_type_name": "kill"}).json()["id"]
                for n in range(3)
            ]
            nodes, edges = three_nodes("kill_out")
            created = admin.post(
                "/api/v1/pipelines", json={"name": "kill-run", "nodes": nodes, "edges": edges}
            )
            assert created.status_code == 201, created.text
            run_pipeline = created.json()["data"]["id"]
        workers = [threading.Thread(target=cycles, args=(first.base_url, p, seen)) for p in pipelines]
        workers.append(threading.Thread(target=runs, args=(first.base_url, run_pipeline, seen)))
        for worker in workers:
            worker.start()
        eventually(lambda: seen.succeeded and len(seen.ended) > 20, timeout=60, interval=0.2)
        time.sleep(TRAFFIC_SECONDS / 2)
        java = dynamodb_local_of(first)
        # When the stack is killed with requests in flight
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait()
        seen.stop.set()
        for worker in workers:
            worker.join(timeout=30)
    finally:
        first.stop()
    # Then its DynamoDB Local dies with it (the kernel's parent-death signal)
    eventually(lambda: not any(os.path.exists(f"/proc/{pid}") for pid in java), timeout=10)
    assert seen.started and seen.ended and seen.pipelines and seen.succeeded

    second = start_stack("--data-dir", str(data_dir), "--param", "RunReconcilerSchedule=rate(2 seconds)")
    try:
        with second.admin as admin:
            # every acknowledged start and end, and every created pipeline, is there
            for execution in sorted(seen.started):
                found = admin.get(f"/pipeline_execution/{execution}")
                assert found.status_code == 200, (execution, found.text)
                if execution in seen.ended:
                    assert found.json()["completed_successfully"] is True, found.json()
            for pipeline_id in sorted(seen.pipelines):
                assert admin.get(f"/pipeline/{pipeline_id}").status_code == 200, pipeline_id
            # every run seen succeeded still has its outputs
            for run_id in sorted(seen.succeeded):
                run = admin.get(f"/api/runs/{run_id}").json()
                assert run["status"] == "success", run
                preview = admin.get(f"/api/runs/{run_id}/nodes/shape/preview")
                assert preview.status_code == 200 and len(preview.json()["rows"]) == 3, preview.text

            # and no run stays running: the reconciler fails those whose execution died with moto
            def none_running():
                statuses = {run_id: admin.get(f"/api/runs/{run_id}").json()["status"] for run_id in seen.runs}
                return all(status != "running" for status in statuses.values()) and statuses

            eventually(none_running, timeout=120, interval=1)
    finally:
        assert second.stop() == 0


def test_sixteen_concurrent_writers_on_one_execution_and_one_pipeline_lose_nothing(stack, project_admin):
    """On the stack's DynamoDB (DynamoDB Local): 16 clients start executions of one pipeline and
    end one execution at the same moment; every answered write is there, none twice."""
    from tests.e2e.conftest import moto_client
    from tests.e2e.test_runs import table_name

    project, key = project_admin
    writers = 16
    with stack.client(key) as client:
        pipeline = client.post("/pipeline", json={"name": "contended", "pipeline_type_name": "race"}).json()[
            "id"
        ]
        target = client.post(
            "/start_pipeline_execution", json={"pipeline_id": pipeline, "start_date": iso(time.time() - 600)}
        )
        target = target.json()["id"]
    barrier = threading.Barrier(writers)
    started: list[int] = []
    ended: list[int] = []
    lock = threading.Lock()

    def writer(n: int) -> None:
        with stack.client(key) as client:
            barrier.wait()
            begun = client.post(
                "/start_pipeline_execution",
                json={"pipeline_id": pipeline, "start_date": iso(time.time() - 60)},
            )
            body = {
                "id": target,
                "end_date": iso(time.time() + n),
                "completed_successfully": True,
                "total_rows": n,
            }
            finished = client.post("/end_pipeline_execution", json=body)
            with lock:
                if begun.status_code == 201:
                    started.append(begun.json()["id"])
                ended.append(finished.status_code)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(started) == writers and len(set(started)) == writers  # one id each, none shared
    assert ended == [204] * writers, ended
    item = moto_client(stack, "dynamodb").get_item(
        TableName=table_name(stack),
        Key={"PK": {"S": f"P#{project}#RUN#{target:012d}"}, "SK": {"S": "RUN"}},
        ConsistentRead=True,
    )["Item"]
    assert int(item["end_count"]["N"]) == writers  # every end applied, one after the other
    with stack.client(key) as client:
        for execution in started:
            assert client.get(f"/pipeline_execution/{execution}").status_code == 200
        final = client.get(f"/pipeline_execution/{target}").json()
    assert final["total_rows"] in range(writers) and final["completed_successfully"] is True
