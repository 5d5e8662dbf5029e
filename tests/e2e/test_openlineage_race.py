"""Concurrent OpenLineage requests on the same runs, over HTTP against `sluice dev` (DynamoDB
Local's transactions): every run ends as one execution, started and ended once, whichever request
wins; the others use the winner's execution (the run mapping is claimed with the execution)."""

from __future__ import annotations

import datetime as _dt
import threading
import uuid

from sluice.client import Client

PRODUCER = "https://example.com/race"
SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
STATS = "https://openlineage.io/spec/facets/1-0-2/OutputStatisticsOutputDatasetFacet.json"


def ol_event(kind: str, run_id: str, job: str, at: _dt.datetime, rows: int | None = None) -> dict:
    output = {"namespace": "s3://race", "name": f"out/{job}"}
    if rows is not None:
        output["outputFacets"] = {
            "outputStatistics": {"_producer": PRODUCER, "_schemaURL": STATS, "rowCount": rows}
        }
    return {
        "eventType": kind,
        "eventTime": at.isoformat(),
        "producer": PRODUCER,
        "schemaURL": SCHEMA,
        "run": {"runId": run_id},
        "job": {"namespace": "race", "name": job},
        "inputs": [{"namespace": "s3://race", "name": f"in/{job}"}],
        "outputs": [output],
    }


def race(stack, key: str, bodies: list) -> list[dict]:
    """Each body sent by its own thread, all released at once."""
    barrier = threading.Barrier(len(bodies))
    answers: list[dict] = []
    errors: list[BaseException] = []

    def send(body) -> None:
        with Client(stack.base_url, key, timeout=120) as client:
            barrier.wait()
            try:
                answers.append(client.lineage.send(body))
            except Exception as exc:  # noqa: BLE001 - asserted below
                errors.append(exc)

    threads = [threading.Thread(target=send, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return answers


def test_concurrent_starts_of_one_new_run_make_one_execution(stack, project_admin):
    _project, key = project_admin
    run_id, at = str(uuid.uuid4()), _dt.datetime.now(_dt.UTC) - _dt.timedelta(minutes=5)
    start = ol_event("START", run_id, "race_job", at)
    complete = ol_event("COMPLETE", run_id, "race_job", at + _dt.timedelta(seconds=3), rows=4)
    # Six requests: three only START the run (the same event, as a retrying client resends it),
    # three START and COMPLETE it. Before the mapping was claimed with the execution, two requests
    # that both saw the run as new each made an execution, and one stayed started forever.
    answers = race(stack, key, [start, start, start, [start, complete], [start, complete], [start, complete]])
    assert sum(a["applied"] for a in answers) == 2  # the START once, the COMPLETE once
    ids = {e["execution_id"] for a in answers for e in a["events"]}
    assert len(ids) == 1
    with Client(stack.base_url, key) as client:
        execution = client.executions.get(ids.pop())
        assert execution.completed_successfully is True and execution.total_rows == 4
        assert execution.execution_metadata["openlineage"]["run_id"] == run_id


def test_concurrent_batches_sharing_runs_end_each_once(stack, project_admin):
    _project, key = project_admin
    at = _dt.datetime.now(_dt.UTC) - _dt.timedelta(minutes=30)
    runs = [str(uuid.uuid4()) for _ in range(20)]
    starts = [
        ol_event("START", r, f"race_{n % 4}", at + _dt.timedelta(seconds=n)) for n, r in enumerate(runs)
    ]
    ends = [
        ol_event("COMPLETE", r, f"race_{n % 4}", at + _dt.timedelta(seconds=n, milliseconds=500), rows=n)
        for n, r in enumerate(runs)
    ]
    # One request starts the runs, three others start and end them: every run must end up one
    # execution, ended once, named the same by every answer.
    answers = race(stack, key, [starts, starts + ends, ends + starts, starts + ends])
    assert sum(a["applied"] for a in answers) == 40
    by_run: dict[str, set[int]] = {}
    for answer in answers:
        for outcome in answer["events"]:
            by_run.setdefault(outcome["runId"], set()).add(outcome["execution_id"])
    assert all(len(ids) == 1 for ids in by_run.values()) and len(by_run) == 20
    with Client(stack.base_url, key) as client:
        for n, run_id in enumerate(runs):
            execution = client.executions.get(next(iter(by_run[run_id])))
            assert (execution.completed_successfully, execution.total_rows) == (True, n)
