"""The platform of seed 002 end to end through `sluice dev` (issue 12): backfills run by the Backfill
state machine, the run calendar and the dashboard from maintained counters, search, system info
and purge, scheduler status; roles and tenancy on each."""

from __future__ import annotations

import secrets

import pendulum
import pytest

from tests.e2e.conftest import eventually, jwt_for, moto_client
from tests.e2e.test_runs import create_pipeline
from tests.e2e.test_runs import wait_finished as wait_run


@pytest.fixture
def editor(stack, project_admin):
    project, key = project_admin
    client = stack.client(key)
    client.project = project
    yield client
    client.close()


@pytest.fixture
def viewer(stack, editor):
    client = stack.client(jwt_for(editor.project, "viewer"))
    yield client
    client.close()


@pytest.fixture
def editor_role(stack, editor):
    client = stack.client(jwt_for(editor.project, "editor"))
    yield client
    client.close()


def wait_finished(client, run_id: str, timeout: float = 90) -> dict:
    """test_runs' wait, with the longer timeout a backfill's children need behind each other."""
    return wait_run(client, run_id, timeout=timeout)


def dated_pipeline(client, name: str) -> dict:
    """A pipeline whose run fails for the date held in the variable FAIL_DATE (a cast of 'boom')."""
    sql = (
        "SELECT id, '${params.date}' AS day, "
        "CAST(CASE WHEN '${params.date}' = '${var.FAIL_DATE}' THEN 'boom' ELSE '1' END AS INTEGER) AS ok "
        "FROM src"
    )
    nodes = [
        {"id": "src", "nodeType": "source", "config": {"kind": "inline", "rows": [{"id": 1}, {"id": 2}]}},
        {"id": "shape", "nodeType": "transform", "config": {"sql": sql}},
    ]
    return create_pipeline(client, name, nodes, [{"source": "src", "target": "shape"}])


def one_node(client, name: str, **extra) -> dict:
    nodes = [{"id": "src", "nodeType": "source", "config": {"kind": "inline", "rows": [{"a": 1}]}}]
    return create_pipeline(client, name, nodes, [], **extra)


def table_name(stack) -> str:
    names = moto_client(stack, "dynamodb").list_tables()["TableNames"]
    return next(n for n in names if "Table" in n)


# -- backfill ------------------------------------------------------------------------------------
def backfill(client, pipeline: dict, start: str, end: str, **extra) -> dict:
    answered = client.post(
        f"/api/pipelines/{pipeline['id']}/backfill", json={"start_date": start, "end_date": end, **extra}
    )
    assert answered.status_code == (200 if extra.get("dry_run") else 202), answered.text
    return answered.json()


def test_backfill_runs_a_child_per_date_and_reprocesses_the_failed_one(editor, editor_role):
    assert editor.put("/api/v1/variables/FAIL_DATE", json={"value": "never"}).status_code in (200, 201)
    pipeline = dated_pipeline(editor, "daily-" + secrets.token_hex(3))

    # An editor backfills three days: three children, each with its date, all succeed.
    body = backfill(editor_role, pipeline, "2024-01-01", "2024-01-03")
    assert body["count"] == 3 and len(body["runs"]) == 3
    assert body["dates"] == ["2024-01-01", "2024-01-02", "2024-01-03"]
    children = {run_id: wait_finished(editor, run_id) for run_id in body["runs"]}
    by_date = {run["params"]["date"]: run for run in children.values()}
    assert sorted(by_date) == ["2024-01-01", "2024-01-02", "2024-01-03"]
    assert {r["status"] for r in children.values()} == {"success"}
    assert all(r["trigger"] == "backfill" for r in children.values())
    rows = editor.get(f"/api/runs/{by_date['2024-01-02']['id']}/nodes/shape/preview").json()["rows"]
    assert {row["day"] for row in rows} == {"2024-01-02"}  # the child ran with its own date
    assert wait_finished(editor, body["id"])["status"] == "success"
    # Watcher's view shows the children of the parent execution.
    number = int(body["id"].removeprefix("run-"))
    execution = editor.get(f"/pipeline_execution/{number}").json()
    listed = {c["id"] for c in execution.get("child_executions") or []}
    assert listed == {int(r.removeprefix("run-")) for r in body["runs"]}, execution
    # Seed 000's view shows the parent with its children, each naming its parent.
    details = editor.get(f"/api/pipeline/runs/{body['id']}/details").json()
    assert sorted(c["run_id"] for c in details["children"]) == sorted(body["runs"])
    assert {c["parent_id"] for c in details["children"]} == {body["id"]}

    # 2024-01-02 is run again and fails now: its backfill parent fails and names it.
    editor.put("/api/v1/variables/FAIL_DATE", json={"value": "2024-01-02"})
    failing = backfill(editor, pipeline, "2024-01-02", "2024-01-02")
    assert wait_finished(editor, failing["runs"][0])["status"] == "failed"
    parent = wait_finished(editor, failing["id"])
    assert parent["status"] == "failed" and "2024-01-02" in parent["error"], parent

    # The cause is fixed; reprocess: failed runs only 2024-01-02, and it succeeds.
    editor.put("/api/v1/variables/FAIL_DATE", json={"value": "never"})
    dry = backfill(editor, pipeline, "2024-01-01", "2024-01-03", reprocess="failed", dry_run=True)
    assert dry["dates"] == ["2024-01-02"] and dry["runs"] == []
    assert dry["succeeded"] == ["2024-01-01", "2024-01-03"]
    again = backfill(editor_role, pipeline, "2024-01-01", "2024-01-03", reprocess="failed")
    assert again["count"] == 1
    child = wait_finished(editor, again["runs"][0])
    assert child["status"] == "success" and child["params"] == {"date": "2024-01-02"}
    assert wait_finished(editor, again["id"])["status"] == "success"
    # Now nothing is missing, and reprocess: missing has nothing to run.
    missing = backfill(editor, pipeline, "2024-01-01", "2024-01-03", reprocess="missing", dry_run=True)
    assert missing["dates"] == [] and missing["count"] == 0
    assert missing["succeeded"] == ["2024-01-01", "2024-01-02", "2024-01-03"]


def test_backfill_dry_run_creates_nothing(editor):
    pipeline = one_node(editor, "dry-" + secrets.token_hex(3))
    before = editor.get(f"/api/pipelines/{pipeline['id']}/runs").json()
    answered = editor.post(
        f"/api/pipelines/{pipeline['id']}/backfill",
        json={"start_date": "2024-02-27", "end_date": "2024-03-01", "dry_run": True},
    )
    assert answered.status_code == 200, answered.text
    assert answered.json()["dates"] == ["2024-02-27", "2024-02-28", "2024-02-29", "2024-03-01"]
    assert answered.json()["runs"] == [] and answered.json()["count"] == 4
    assert editor.get(f"/api/pipelines/{pipeline['id']}/runs").json() == before == []


def test_cancelling_the_parent_cancels_children_not_yet_started(stack, editor):
    # One slot, so the Map releases one child at a time and the others wait.
    moto_client(stack, "dynamodb").put_item(
        TableName=table_name(stack),
        Item={"PK": {"S": f"P#{editor.project}"}, "SK": {"S": "SETTINGS"}, "max_concurrent_runs": {"N": "1"}},
    )
    pipeline = one_node(editor, "cancel-" + secrets.token_hex(3))
    body = editor.post(
        f"/api/pipelines/{pipeline['id']}/backfill",
        json={"start_date": "2024-05-01", "end_date": "2024-05-10"},
    ).json()
    assert body["count"] == 10
    assert editor.post(f"/api/runs/{body['id']}/cancel").json() == {"status": "cancelled"}
    parent = wait_finished(editor, body["id"])
    assert parent["status"] == "cancelled"
    statuses = [wait_finished(editor, r)["status"] for r in body["runs"]]
    # At most the one child released before the cancel ran; the rest never started.
    assert statuses.count("cancelled") >= 9, statuses
    assert set(statuses) <= {"cancelled", "success"}


def test_backfill_bad_input_is_422_and_writes_nothing(stack, editor, viewer):
    pipeline = one_node(editor, "bad-" + secrets.token_hex(3))
    url = f"/api/pipelines/{pipeline['id']}/backfill"
    cases = [
        {"start_date": "2024-01-05", "end_date": "2024-01-01"},  # end before start
        {"start_date": "2024-01-01", "end_date": "2025-01-02"},  # 368 days
        {"start_date": "2024-02-30", "end_date": "2024-03-01"},  # no such date
        {"start_date": "yesterday", "end_date": "2024-03-01"},
        {"end_date": "2024-03-01"},
        {"start_date": "2024-01-01", "end_date": "2024-01-02", "reprocess": "some"},
    ]
    for case in cases:
        answered = editor.post(url, json=case)
        assert answered.status_code == 422, (case, answered.text)
        assert answered.json()["detail"]
    # 366 days (a leap year) is the most allowed.
    assert (
        editor.post(url, json={"start_date": "2024-01-01", "end_date": "2024-12-31", "dry_run": True}).json()[
            "count"
        ]
        == 366
    )
    assert editor.get(f"/api/pipelines/{pipeline['id']}/runs").json() == []
    # Viewers read, they do not backfill; another project's pipeline is not found.
    assert viewer.post(url, json={"start_date": "2024-01-01", "end_date": "2024-01-01"}).status_code == 403
    valid = {"start_date": "2024-01-01", "end_date": "2024-01-02"}
    assert editor.post("/api/pipelines/pipeline-999999/backfill", json=valid).status_code == 404
    with stack.client(jwt_for("other-" + secrets.token_hex(3), "admin")) as other:
        assert other.post(url, json=valid).status_code == 404
    assert editor.get(f"/api/pipelines/{pipeline['id']}/runs").json() == []


# -- calendar and dashboard ------------------------------------------------------------------------
def write_day(stack, project: str, day: str, **counts: int) -> None:
    """History written straight into the counters, as the run writers would have left it."""
    item = {"PK": {"S": f"P#{project}#RUNDAYS"}, "SK": {"S": day}, "kind": {"S": "run_day"}}
    item.update({name: {"N": str(value)} for name, value in counts.items()})
    moto_client(stack, "dynamodb").put_item(TableName=table_name(stack), Item=item)


def test_calendar_and_dashboard_count_runs_as_they_change_state(stack, editor, viewer):
    today = pendulum.now("UTC").date().isoformat()
    past = pendulum.now("UTC").subtract(days=10).date().isoformat()
    write_day(stack, editor.project, past, total=7, success=5, failed=2, **{"failed#999": 2})
    assert editor.put("/api/v1/variables/FAIL_DATE", json={"value": "2024-02-02"}).status_code in (200, 201)
    pipeline = dated_pipeline(editor, "cal-" + secrets.token_hex(3))
    ok = editor.post(f"/api/pipelines/{pipeline['id']}/run", json={"params": {"date": "2024-02-01"}}).json()
    bad = editor.post(f"/api/pipelines/{pipeline['id']}/run", json={"params": {"date": "2024-02-02"}}).json()
    assert wait_finished(editor, ok["id"])["status"] == "success"
    assert wait_finished(editor, bad["id"])["status"] == "failed"
    # A run that stays running: a project with no free slot keeps it pending, so hold one
    # pending and count it (pending is counted on its own; running counts the executing ones).
    days = viewer.get("/api/runs/calendar", params={"days": 30})
    assert days.status_code == 200, days.text
    calendar = days.json()
    assert len(calendar) == 30 and calendar[-1]["date"] == today
    assert [d["date"] for d in calendar] == sorted(d["date"] for d in calendar)
    by_day = {d["date"]: d for d in calendar}
    assert by_day[today]["total"] == 2 and by_day[today]["success"] == 1 and by_day[today]["failed"] == 1
    assert by_day[today]["running"] == 0
    assert by_day[past] == {
        "date": past,
        "total": 7,
        "success": 5,
        "failed": 2,
        "running": 0,
        "pending": 0,
        "cancelled": 0,
    }
    assert len(viewer.get("/api/runs/calendar").json()) == 90  # the default
    for bad_days in (0, 366, "x"):
        assert viewer.get("/api/runs/calendar", params={"days": bad_days}).status_code == 422

    board = viewer.get("/api/dashboard")
    assert board.status_code == 200, board.text
    board = board.json()
    assert [t["date"] for t in board["trends"]][-1] == today and len(board["trends"]) == 7
    assert board["trends"][-1] == {"date": today, "success": 1, "failed": 1, "total": 2}
    summary = next(p for p in board["pipelines"] if p["id"] == pipeline["id"])
    assert summary["last_run"]["id"] in (ok["id"], bad["id"]) and summary["status"] == "active"
    assert {r["id"] for r in board["recent_runs"]} >= {ok["id"], bad["id"]}
    # Pipeline 999 (written in the history) no longer exists, so it is not listed.
    assert board["top_failing"] == [
        {"pipeline_id": pipeline["id"], "name": pipeline["name"], "fail_count": 1}
    ]


def test_a_running_run_is_counted_running_on_its_day(stack, editor):
    moto_client(stack, "dynamodb").put_item(
        TableName=table_name(stack),
        Item={"PK": {"S": f"P#{editor.project}"}, "SK": {"S": "SETTINGS"}, "max_concurrent_runs": {"N": "1"}},
    )
    sleepy = create_pipeline(
        editor,
        "slow-" + secrets.token_hex(3),
        [
            {"id": "src", "nodeType": "source", "config": {"kind": "inline", "rows": [{"a": 1}]}},
            {
                "id": "wait",
                "nodeType": "transform",
                "config": {"sql": "SELECT a, sleep_ms(4000) AS s FROM src"},
            },
        ],
        [{"source": "src", "target": "wait"}],
    )
    run = editor.post(f"/api/pipelines/{sleepy['id']}/run", json={}).json()
    queued = editor.post(f"/api/pipelines/{sleepy['id']}/run", json={}).json()
    today = pendulum.now("UTC").date().isoformat()

    def counted():
        day = editor.get("/api/runs/calendar", params={"days": 1}).json()[0]
        return day if day["running"] == 1 and day["pending"] == 1 else None

    day = eventually(counted, timeout=30)
    assert day["date"] == today and day["total"] == 2
    wait_finished(editor, run["id"])
    wait_finished(editor, queued["id"])
    done = editor.get("/api/runs/calendar", params={"days": 1}).json()[0]
    assert done["running"] == 0 and done["pending"] == 0 and done["total"] == 2


# -- search ----------------------------------------------------------------------------------------
def test_search_finds_pipelines_connectors_and_variables_case_insensitively(stack, editor, viewer):
    one_node(editor, "Users Daily", description="loads the users table")
    one_node(editor, "orders-hourly", description="orders for USERS of the shop")
    one_node(editor, "unrelated")
    connector = editor.post(
        "/api/v1/connectors", json={"name": "users-api", "type": "http", "config": {"token": "t-123456789"}}
    )
    assert connector.status_code == 201, connector.text
    secret = "s3cr3t-" + secrets.token_hex(6)
    editor.put("/api/v1/variables/USERS_TOKEN", json={"value": secret, "secret": True, "description": "x"})
    editor.put("/api/v1/variables/OTHER", json={"value": "users"})  # a value is never searched

    found = viewer.get("/api/search", params={"q": "uSeRs"})
    assert found.status_code == 200, found.text
    items = found.json()
    assert secret not in found.text
    kinds = {(i["type"], i["name"]) for i in items}
    assert kinds == {
        ("pipeline", "Users Daily"),
        ("pipeline", "orders-hourly"),
        ("connector", "users-api"),
        ("variable", "USERS_TOKEN"),
    }
    # Name matches come before description matches.
    assert items[-1]["name"] == "orders-hourly" and items[-1]["description"] == "orders for USERS of the shop"
    assert all(i["id"] for i in items)
    assert len(viewer.get("/api/search", params={"q": "users", "limit": 2}).json()) == 2
    # Bad input.
    assert viewer.get("/api/search").status_code == 422
    assert viewer.get("/api/search", params={"q": "  "}).status_code == 422
    assert viewer.get("/api/search", params={"q": "users", "limit": 101}).status_code == 422
    assert viewer.get("/api/search", params={"q": "users", "limit": 0}).status_code == 422
    # Another project sees none of it.
    with stack.client(jwt_for("other-" + secrets.token_hex(3), "admin")) as other:
        assert other.get("/api/search", params={"q": "users"}).json() == []


# -- system info and purge ----------------------------------------------------------------------------
def test_system_info_and_a_purge_of_old_runs_that_keeps_new_ones(stack, editor, viewer, editor_role):
    pipeline = one_node(editor, "purged-" + secrets.token_hex(3))
    runs = [editor.post(f"/api/pipelines/{pipeline['id']}/run", json={}).json()["id"] for _ in range(3)]
    for run_id in runs:
        assert wait_finished(editor, run_id)["status"] == "success"
    info = viewer.get("/api/system/info")
    assert info.status_code == 200, info.text
    info = info.json()
    assert info["pipelines"] == 1 and info["active_runs"] == 0 and info["max_concurrent_runs"] == 5
    assert info["version"] and info["db_size"] > 0 and info["db_size_mb"].endswith(" MB")
    size_before = info["db_size"]

    # Two of the runs become 40 days old (their start moved back in the table, index included).
    dynamodb = moto_client(stack, "dynamodb")
    old = pendulum.now("UTC").subtract(days=40)
    for run_id in runs[:2]:
        number = int(run_id.removeprefix("run-"))
        key = {"PK": {"S": f"P#{editor.project}#RUN#{number:012d}"}, "SK": {"S": "RUN"}}
        item = dynamodb.get_item(TableName=table_name(stack), Key=key)["Item"]
        start = old.format("YYYY-MM-DDTHH:mm:ss.SSSSSS") + "Z"
        month = old.format("YYYY-MM")
        item["start_date"] = {"S": start}
        item["GSI2PK"] = {"S": f"P#{editor.project}#RUNSTART#{month}"}
        item["GSI2SK"] = {"S": f"{start}#{number:012d}"}  # the start index's key (sortable start, id)
        dynamodb.put_item(TableName=table_name(stack), Item=item)
        dynamodb.put_item(
            TableName=table_name(stack),
            Item={
                "PK": {"S": f"P#{editor.project}#RUNMONTHS"},
                "SK": {"S": month},
                "kind": {"S": "run_month"},
                "month": {"S": month},
            },
        )

    # Only admins purge; bad days are 422 and delete nothing.
    assert viewer.post("/api/system/purge", json={"days": 30}).status_code == 403
    assert editor_role.post("/api/system/purge", json={"days": 30}).status_code == 403
    for bad in (0, -1, "x"):
        assert editor.post("/api/system/purge", json={"days": bad}).status_code == 422
    purged = editor.post("/api/system/purge", json={"days": 30})
    assert purged.status_code == 200, purged.text
    assert purged.json() == {"deleted": 2, "days": 30}
    for run_id in runs[:2]:
        assert editor.get(f"/api/runs/{run_id}").status_code == 404
        assert editor.get(f"/api/runs/{run_id}/nodes/src/preview").status_code == 404
    kept = editor.get(f"/api/runs/{runs[2]}").json()
    assert kept["status"] == "success" and kept["node_runs"]
    assert editor.get(f"/api/runs/{runs[2]}/nodes/src/preview").status_code == 200
    # No node run of a purged run is left behind.
    for run_id in runs[:2]:
        number = int(run_id.removeprefix("run-"))
        left = dynamodb.query(
            TableName=table_name(stack),
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues={":pk": {"S": f"P#{editor.project}#RUN#{number:012d}"}},
        )["Items"]
        assert left == []
    assert 0 < viewer.get("/api/system/info").json()["db_size"] < size_before
    # Nothing older is left: a second purge deletes nothing; the default is 30 days.
    assert editor.post("/api/system/purge").json() == {"deleted": 0, "days": 30}


# -- scheduler status -------------------------------------------------------------------------------
def test_scheduler_status_lists_scheduled_pipelines_with_enabled(editor, viewer):
    scheduled = one_node(editor, "every-6h", schedule="0 */6 * * *")
    paused = one_node(editor, "paused-nightly", schedule="0 2 * * *", status="paused")
    inactive = one_node(editor, "inactive-hourly", schedule="5 * * * *")
    one_node(editor, "unscheduled")
    number = int(inactive["id"].removeprefix("pipeline-"))
    assert editor.patch("/pipeline", json={"id": number, "active": False}).status_code == 200

    answered = viewer.get("/api/scheduler/status")
    assert answered.status_code == 200, answered.text
    entries = {e["name"]: e for e in answered.json()}
    assert set(entries) == {"every-6h", "paused-nightly", "inactive-hourly"}
    live = entries["every-6h"]
    assert (
        live["pipeline_id"] == scheduled["id"] and live["cron"] == "0 */6 * * *" and live["enabled"] is True
    )
    next_run = pendulum.parse(live["next_run_at"])
    assert next_run > pendulum.now("UTC") and next_run.hour % 6 == 0 and next_run.minute == 0
    assert (
        entries["paused-nightly"]["enabled"] is False
        and entries["paused-nightly"]["pipeline_id"] == paused["id"]
    )
    assert entries["inactive-hourly"]["enabled"] is False


def test_platform_reads_need_a_token_and_stay_in_their_project(stack, editor):
    paths = [
        "/api/runs/calendar",
        "/api/dashboard",
        "/api/search?q=a",
        "/api/system/info",
        "/api/scheduler/status",
    ]
    with stack.client() as anonymous:
        for path in paths:
            assert anonymous.get(path).status_code == 401
        assert anonymous.post("/api/system/purge", json={}).status_code == 401
    one_node(editor, "mine-" + secrets.token_hex(3), schedule="0 1 * * *")
    with stack.client(jwt_for("other-" + secrets.token_hex(3), "viewer")) as other:
        assert other.get("/api/scheduler/status").json() == []
        assert other.get("/api/dashboard").json()["pipelines"] == []
        assert other.get("/api/system/info").json()["pipelines"] == 0
        assert all(d["total"] == 0 for d in other.get("/api/runs/calendar").json())


# -- live events ---------------------------------------------------------------------------------------
def ws_url(stack, token: str | None = None) -> str:
    base = stack.base_url.replace("http://", "ws://") + "/api/ws"
    return f"{base}?token={token}" if token else base


def receive_until(socket, done, timeout: float = 60) -> list[dict]:
    import json
    import time

    messages, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            messages.append(json.loads(socket.recv(timeout=max(0.1, deadline - time.monotonic()))))
        except TimeoutError:
            break
        if done(messages):
            break
    return messages


def test_a_websocket_client_sees_its_own_projects_run_events_only(stack, editor):
    import pendulum as pdl
    from websockets.sync.client import connect

    other_project = "other-" + secrets.token_hex(3)
    with (
        connect(ws_url(stack, jwt_for(editor.project, "viewer"))) as mine,
        connect(
            ws_url(stack), additional_headers={"Authorization": f"Bearer {jwt_for(other_project, 'viewer')}"}
        ) as theirs,
    ):
        pipeline = create_pipeline(
            editor,
            "live-" + secrets.token_hex(3),
            [
                {
                    "id": "src",
                    "nodeType": "source",
                    "config": {"kind": "inline", "rows": [{"a": 1}, {"a": 2}]},
                },
                {"id": "shape", "nodeType": "transform", "config": {"sql": "SELECT a * 2 AS b FROM src"}},
            ],
            [{"source": "src", "target": "shape"}],
        )
        run = editor.post(f"/api/pipelines/{pipeline['id']}/run", json={}).json()

        def finished(messages):
            return (
                any(m["type"] == "run.status" and m["status"] == "success" for m in messages)
                and sum(1 for m in messages if m["type"] == "node.status" and m["status"] == "success") == 2
            )

        received = [m for m in receive_until(mine, finished) if m.get("run_id") == run["id"]]
        statuses = [
            m["status"]
            for m in sorted((m for m in received if m["type"] == "run.status"), key=lambda m: m["at"])
        ]
        assert statuses == ["pending", "running", "success"], received
        nodes = [
            (m["node_id"], m["status"])
            for m in sorted((m for m in received if m["type"] == "node.status"), key=lambda m: m["at"])
        ]
        assert nodes == [
            ("src", "running"),
            ("src", "success"),
            ("shape", "running"),
            ("shape", "success"),
        ], nodes
        logs = [m for m in received if m["type"] == "log"]
        assert logs and {m["node_id"] for m in logs} == {"src", "shape"} and all(m["message"] for m in logs)
        # Latency from the node's finish to the message's receipt is small.
        done = next(m for m in received if m["type"] == "node.status" and m["status"] == "success")
        assert pdl.parse(done["at"]) >= pdl.parse(done["finished_at"])
        # The other project's socket saw nothing of it.
        assert receive_until(theirs, lambda messages: False, timeout=1) == []


def test_a_socket_without_a_valid_token_is_refused(stack, editor):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    expired = jwt_for(editor.project, "viewer", ttl=-60)
    for url in (ws_url(stack), ws_url(stack, "df_key_" + "x" * 40), ws_url(stack, expired)):
        with pytest.raises(InvalidStatus) as refused:
            connect(url)
        assert refused.value.response.status_code == 401
