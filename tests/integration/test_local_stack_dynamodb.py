"""The local stack's DynamoDB: DynamoDB Local with the table made from template.yaml (keys, GSIs,
TTL), expired items deleted by the stack, finished executions forgotten, and its own figures."""

from __future__ import annotations

import time

import httpx
import pytest

from sluice import aws
from sluice.local.template import load_template
from tests.perf.local_stack import ADMIN_KEY, running_stack


@pytest.fixture(scope="module")
def local():
    with running_stack() as (stack, url):
        yield stack, url


def test_the_table_is_the_templates_with_its_indexes_and_ttl(local):
    stack, _ = local
    dynamodb = aws.client("dynamodb")
    assert dynamodb.meta.endpoint_url == stack.dynamodb_endpoint  # not moto's
    described = dynamodb.describe_table(TableName=stack.tables["Table"])["Table"]
    props = load_template()["Resources"]["Table"]["Properties"]
    assert described["KeySchema"] == props["KeySchema"]
    assert sorted(i["IndexName"] for i in described["GlobalSecondaryIndexes"]) == sorted(
        i["IndexName"] for i in props["GlobalSecondaryIndexes"]
    )
    ttl = dynamodb.describe_time_to_live(TableName=stack.tables["Table"])["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at")


def test_expired_items_are_deleted_and_the_rest_kept(local):
    stack, _ = local
    dynamodb, table = aws.client("dynamodb"), stack.tables["Table"]
    now = int(time.time())
    for sk, expires in (("gone", now - 10), ("fresh", now + 3600), ("string", None), ("none", "absent")):
        item = {"PK": {"S": "TTL#probe"}, "SK": {"S": sk}}
        if expires == "absent":
            pass
        elif expires is None:
            item["expires_at"] = {"S": "2000-01-01"}  # not a number: DynamoDB's TTL ignores it
        else:
            item["expires_at"] = {"N": str(expires)}
        dynamodb.put_item(TableName=table, Item=item)

    assert stack.delete_expired_items(now=now) == 1
    left = dynamodb.query(
        TableName=table,
        KeyConditionExpression="PK = :p",
        ExpressionAttributeValues={":p": {"S": "TTL#probe"}},
    )["Items"]
    assert sorted(i["SK"]["S"] for i in left) == ["fresh", "none", "string"]


def test_finished_executions_are_forgotten_and_stats_report_the_background(local):
    from sluice.local import moto_adapter

    stack, url = local
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60) as client:
        nodes = [{"id": "a", "nodeType": "source", "config": {"kind": "inline", "rows": [{"x": 1}]}}]
        created = client.post("/api/v1/pipelines", json={"name": "pruned", "nodes": nodes, "edges": []})
        run_id = client.post(f"/api/pipelines/{created.json()['data']['id']}/run", json={}).json()["id"]
        deadline = time.monotonic() + 60
        while client.get(f"/api/runs/{run_id}").json()["status"] != "success":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        stats = client.get("/_local/stats").json()
    sfn = aws.client("stepfunctions")

    def executions() -> int:
        return sum(
            len(sfn.list_executions(stateMachineArn=a)["executions"]) for a in stack.state_machines.values()
        )

    from moto.stepfunctions.parser.utils import TMP_THREADS

    assert executions() >= 1
    assert any(t.ident is not None and not t.is_alive() for t in TMP_THREADS)  # the run's, ended
    assert moto_adapter.prune_finished_executions(older_than=3600) == 0  # recent ones are kept
    assert not any(t.ident is not None and not t.is_alive() for t in TMP_THREADS)
    # the run is `success` once its last node has written; its execution may still be ending
    deadline = time.monotonic() + 30
    while any(
        e["status"] == "RUNNING"
        for a in stack.state_machines.values()
        for e in sfn.list_executions(stateMachineArn=a)["executions"]
    ):
        assert time.monotonic() < deadline, "the run's execution did not end"
        time.sleep(0.1)
    assert moto_adapter.prune_finished_executions(older_than=0, keep=0) >= 1
    assert executions() == 0
    assert stats["rss_bytes"] > 0 and stats["dynamodb_local"]["pid"] == stack.dynamodb_local.pid
    assert stats["background"]["pending"] >= 0 and stats["background"]["failed"] == 0


def test_moto_stops_holding_what_was_deleted_once_its_trackers_are_emptied(local):
    import gc
    import weakref

    from moto.sqs.models import Message

    from sluice.local import moto_adapter

    sqs = aws.client("sqs")  # the stack's moto, in-process
    queue = sqs.create_queue(QueueName="forget")["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody="kept")
    sqs.send_message(QueueUrl=queue, MessageBody="deleted")
    received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    deleted = next(m for m in received if m["Body"] == "deleted")
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=deleted["ReceiptHandle"])
    gc.collect()
    message = next(m for m in Message.instances_tracked if m.body == "deleted")
    gone = weakref.ref(message)
    del message
    gc.collect()
    assert gone() is not None  # deleted from the queue, but moto's tracker holds it

    assert moto_adapter.forget_tracked_instances() >= 2
    assert Message.instances_tracked == []
    gc.collect()
    assert gone() is None
    # what is live stays: the message not deleted is still in its queue
    sqs.change_message_visibility(
        QueueUrl=queue,
        ReceiptHandle=next(m for m in received if m["Body"] == "kept")["ReceiptHandle"],
        VisibilityTimeout=0,
    )
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=queue)["Messages"]] == ["kept"]
    sqs.delete_queue(QueueUrl=queue)


def test_motos_flask_apps_run_out_of_debug_mode():
    from moto.moto_server.werkzeug_app import create_backend_app

    from sluice.local.moto_adapter import InProcessMoto

    signed = "AWS4-HMAC-SHA256 Credential=x/20260101/us-east-1/{}/aws4_request"
    dispatcher = InProcessMoto().app
    for service in ("s3", "sqs", "states", "events"):
        environ = {"PATH_INFO": "/", "HTTP_HOST": "localhost", "HTTP_AUTHORIZATION": signed.format(service)}
        app = dispatcher.get_application(environ)
        assert app.debug is False, service
    assert create_backend_app("s3").debug is True  # what moto does by itself


def test_only_ended_interpreter_threads_are_forgotten():
    import threading

    from moto.stepfunctions.parser.utils import TMP_THREADS

    from sluice.local import moto_adapter

    release = threading.Event()
    ended, running = threading.Thread(target=lambda: None), threading.Thread(target=release.wait)
    not_started = threading.Thread(target=lambda: None)
    ended.start()
    ended.join()
    running.start()
    TMP_THREADS.extend([ended, running, not_started])
    try:
        assert moto_adapter.forget_finished_threads() >= 1
        assert ended not in TMP_THREADS
        assert running in TMP_THREADS and not_started in TMP_THREADS  # an interpreter about to start it
    finally:
        release.set()
        running.join()
        for thread in (running, not_started):
            TMP_THREADS.remove(thread)


def test_each_maintenance_pass_gives_the_c_heap_back_unless_turned_off(local, monkeypatch):
    from sluice.local import native_heap

    stack, url = local
    calls: list[int] = []
    monkeypatch.setattr(native_heap, "trim", lambda: calls.append(1) or True)
    before, forgotten = stack.heap.count, stack.moto_instances_forgotten
    sqs = aws.client("sqs")
    sqs.delete_queue(QueueUrl=sqs.create_queue(QueueName="tracked")["QueueUrl"])  # a model moto tracks
    stack.maintain()
    assert calls == [1] and stack.heap.count == before + 1
    assert stack.moto_instances_forgotten > forgotten
    monkeypatch.setattr(stack.options, "trim_native_heap", False)
    stack.maintain()
    assert calls == [1]
    shown = httpx.get(f"{url}/_local/stats", timeout=30).json()
    assert shown["moto_instances_forgotten"] > forgotten
    trims = shown["heap_trims"]
    assert trims["count"] == before + 1 and trims["available"] is native_heap.available()


def test_malloc_trim_is_found_on_glibc():
    import platform

    from sluice.local import native_heap

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("malloc_trim is glibc's")
    assert native_heap.available()


def test_the_heap_figures_follow_what_is_allocated_and_freed(local):
    import platform

    from sluice.local import native_heap

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallinfo2 is glibc's")
    before = native_heap.usage()
    held = [bytearray(4096) for _ in range(4096)]  # 16 MB in C heap chunks, one Python object each
    during = native_heap.usage()
    assert during["c_in_use"] - before["c_in_use"] >= 15 * 2**20
    assert during["python_blocks"] - before["python_blocks"] >= 4000
    del held
    after = native_heap.usage()
    assert during["c_in_use"] - after["c_in_use"] >= 15 * 2**20
    _, url = local
    shown = httpx.get(f"{url}/_local/stats", timeout=30).json()["heap"]
    assert set(shown) == {"c_in_use", "c_free", "c_mmapped", "python_blocks"}
    assert shown["c_in_use"] > 0 and shown["python_blocks"] > 0


def test_a_saved_table_made_before_an_index_was_added_gets_it(local):
    from sluice.local.stack import add_missing_indexes, index_saved_alerts
    from sluice.store import keys

    dynamodb = aws.client("dynamodb")
    props = load_template()["Resources"]["Table"]["Properties"]
    older = {
        **props,
        "GlobalSecondaryIndexes": [i for i in props["GlobalSecondaryIndexes"] if i["IndexName"] != "Status"],
    }
    used = {a for i in older["GlobalSecondaryIndexes"] for a in (k["AttributeName"] for k in i["KeySchema"])}
    name = f"legacy-{int(time.time() * 1000)}"
    dynamodb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=props["KeySchema"],
        AttributeDefinitions=[
            a for a in props["AttributeDefinitions"] if a["AttributeName"] in used | {"PK", "SK"}
        ],
        GlobalSecondaryIndexes=older["GlobalSecondaryIndexes"],
    )
    # an alert saved before the inbox existed (no Status keys), and an item that is not an alert
    saved = {
        "PK": {"S": "PROJECT#acme#ALERTS"},
        "SK": {"S": "AL#0000000007"},
        "kind": {"S": "alert"},
        "project": {"S": "acme"},
        "status": {"S": "active"},
    }
    dynamodb.put_item(TableName=name, Item=saved)
    dynamodb.put_item(TableName=name, Item={"PK": {"S": "X"}, "SK": {"S": "Y"}, "kind": {"S": "run"}})
    try:
        assert add_missing_indexes(dynamodb, name, props) == ["Status"]
        indexes = dynamodb.describe_table(TableName=name)["Table"]["GlobalSecondaryIndexes"]
        assert sorted(i["IndexName"] for i in indexes) == ["GSI1", "GSI2", "Status"]
        assert add_missing_indexes(dynamodb, name, props) == []

        assert index_saved_alerts(dynamodb, name) == 1
        found = dynamodb.query(
            TableName=name,
            IndexName="Status",
            KeyConditionExpression="StatusPK = :pk",
            ExpressionAttributeValues={":pk": {"S": keys.alerts_in_status("acme", "active")}},
        )["Items"]
        assert [i["SK"]["S"] for i in found] == ["AL#0000000007"]
        assert (
            "StatusPK"
            not in dynamodb.get_item(TableName=name, Key={"PK": {"S": "X"}, "SK": {"S": "Y"}})["Item"]
        )
        assert index_saved_alerts(dynamodb, name) == 0  # once
    finally:
        dynamodb.delete_table(TableName=name)
