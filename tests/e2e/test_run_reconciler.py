"""The run reconciler in the local stack (fired every 2 seconds): a pending run whose queue message
was lost is sent again and runs, and a flow parent whose child ended without telling it moves on
to its next level and ends; nobody calls the reconciler."""

from __future__ import annotations

import time

import pendulum

from sluice.domain.run_engine import STALE_PENDING_SECONDS
from tests.e2e.conftest import eventually, jwt_for, moto_client, start_stack
from tests.e2e.test_run_surfaces import flow_pipeline
from tests.e2e.test_runs import INLINE_ROWS, create_pipeline, table_name, wait_finished


def run_key(project: str, run_ref: str) -> dict:
    number = int(run_ref.removeprefix("run-"))
    return {"PK": {"S": f"P#{project}#RUN#{number:012d}"}, "SK": {"S": "RUN"}}


def set_max_concurrent_runs(stack, project: str, limit: int) -> None:
    """Written directly: no API accepts a limit of 0, which holds every run pending."""
    moto_client(stack, "dynamodb").update_item(
        TableName=table_name(stack),
        Key={"PK": {"S": f"P#{project}"}, "SK": {"S": "SETTINGS"}},
        UpdateExpression="SET max_concurrent_runs = :n",
        ExpressionAttributeValues={":n": {"N": str(limit)}},
    )


def run_queue_url(stack) -> str:
    urls = moto_client(stack, "sqs").list_queues()["QueueUrls"]
    return next(u for u in urls if u.endswith("-runs.fifo"))


def test_the_reconciler_re_sends_a_lost_run_message_and_moves_a_flow_whose_hand_over_was_lost():
    stack = start_stack("--ephemeral", "--param", "RunReconcilerSchedule=rate(2 seconds)")
    try:
        project = "reconciled"
        dynamodb = moto_client(stack, "dynamodb")
        with stack.client(jwt_for(project, "editor")) as editor:
            # -- a pending run whose message was lost --------------------------------------------
            # Given a run held pending (no slot), whose message is then lost
            set_max_concurrent_runs(stack, project, 0)
            nodes = [{"id": "src", "nodeType": "source", "config": {"kind": "inline", "rows": INLINE_ROWS}}]
            pipeline = create_pipeline(editor, "lonely", nodes, [])
            triggered = editor.post(f"/api/pipelines/{pipeline['id']}/run", json={})
            assert triggered.status_code == 202, triggered.text
            run_id = triggered.json()["id"]
            moto_client(stack, "sqs").purge_queue(QueueUrl=run_queue_url(stack))
            set_max_concurrent_runs(stack, project, 5)
            # When slots are free again, nothing starts it: a run this fresh is left alone
            time.sleep(5)
            assert editor.get(f"/api/runs/{run_id}").json()["status"] == "pending"
            # Then once it has waited past the threshold, the reconciler sends it again and it runs
            waited = pendulum.now("UTC").subtract(seconds=STALE_PENDING_SECONDS + 1)
            dynamodb.update_item(
                TableName=table_name(stack),
                Key=run_key(project, run_id),
                UpdateExpression="SET queued_at = :t",
                ExpressionAttributeValues={":t": {"S": waited.format("YYYY-MM-DDTHH:mm:ss") + ".000000Z"}},
            )
            assert wait_finished(editor, run_id, timeout=60)["status"] == "success"

            # -- a flow parent whose hand-over was lost ------------------------------------------
            # Given a two-level flow whose first child waits for a slot
            flow_pipeline(editor, "first", [], "r_first")
            flow_pipeline(editor, "second", ["r_first"], "r_second")
            set_max_concurrent_runs(stack, project, 0)
            flow = editor.post(
                "/api/pipeline/run",
                json={"target": {"type": "pipeline", "name": "first"}, "scope": "downstream"},
            )
            assert flow.status_code == 202, flow.text
            parent = flow.json()["run_id"]
            (child,) = editor.get(f"/api/pipeline/runs/{parent}/details").json()["children"]
            # And whose Lambda will die between ending the child and telling the parent: the
            # child's finish is made to forget its parent
            dynamodb.update_item(
                TableName=table_name(stack),
                Key=run_key(project, child["run_id"]),
                UpdateExpression="REMOVE flow_parent",
            )
            set_max_concurrent_runs(stack, project, 5)
            assert wait_finished(editor, child["run_id"], timeout=60)["status"] == "success"

            # Then the reconciler counts it, the second level runs, and the parent ends
            def finished():
                details = editor.get(f"/api/pipeline/runs/{parent}/details").json()
                return details if details["status"] in ("success", "failed", "cancelled") else None

            details = eventually(finished, timeout=90, interval=0.5)
            assert details["status"] == "success", details
            assert {c["pipeline"]: c["status"] for c in details["children"]} == {
                "first": "success",
                "second": "success",
            }
            # And later passes change nothing: still two children, one per pipeline
            time.sleep(5)
            again = editor.get(f"/api/pipeline/runs/{parent}/details").json()
            assert again["status"] == "success" and len(again["children"]) == 2
    finally:
        stack.stop()
