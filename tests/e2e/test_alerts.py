"""Data-quality rules and the one alerts inbox over HTTP through the local stack (issue 13): rules
checked on what a run wrote, tolerances, dismiss/resolve (single, bulk, concurrent), re-surfacing,
every assertion type, Watcher's alerts beside data-quality ones, freshness and the row audit,
bad input, roles and tenancy."""

from __future__ import annotations

import re
import secrets
import threading

import pytest

from sluice import timeutil
from tests.e2e.conftest import eventually, jwt_for

FINISHED = ("success", "failed", "cancelled")


@pytest.fixture
def editor(stack, project_admin):
    project, _ = project_admin
    with stack.client(jwt_for(project, "editor")) as client:
        client.project = project
        yield client


@pytest.fixture
def viewer(stack, project_admin):
    project, _ = project_admin
    with stack.client(jwt_for(project, "viewer")) as client:
        yield client


@pytest.fixture
def stranger(stack):
    with stack.client(jwt_for("other-" + secrets.token_hex(4), "admin")) as client:
        yield client


def writer(client, dataset: str, rows: list[dict], name: str | None = None) -> str:
    """A pipeline whose target writes `rows` to `dataset` (overwrite)."""
    created = client.post(
        "/api/v1/pipelines",
        json={
            "name": name or f"dq-{secrets.token_hex(4)}",
            "nodes": [
                {"id": "src", "nodeType": "source", "config": {"kind": "inline", "rows": rows}},
                {"id": "out", "nodeType": "target", "config": {"kind": "dataset", "name": dataset}},
            ],
            "edges": [{"source": "src", "target": "out"}],
        },
    )
    assert created.status_code == 201, created.text
    return created.json()["data"]["id"]


def run(client, pipeline_id: str) -> str:
    triggered = client.post(f"/api/pipelines/{pipeline_id}/run", json={})
    assert triggered.status_code == 202, triggered.text
    run_id = triggered.json()["id"]

    def finished():
        found = client.get(f"/api/runs/{run_id}").json()
        return found if found.get("status") in FINISHED else None

    done = eventually(finished, timeout=60, interval=0.2)
    assert done["status"] == "success", done
    return run_id


def rows_with_nulls(count: int, nulls: int) -> list[dict]:
    return [{"id": None if i < nulls else i, "amount": i % 50} for i in range(count)]


def rule(client, **body) -> dict:
    created = client.post("/api/pipeline/anomalies/rules", json=body)
    assert created.status_code == 201, created.text
    return created.json()


def active(client, **filters) -> list[dict]:
    listed = client.get("/api/pipeline/anomalies", params=filters)
    assert listed.status_code == 200, listed.text
    return listed.json()["data"]


def test_not_null_rule_alert_tolerance_dismiss_resurface_and_a_pass_closes_it(editor, webhook):
    # Given a not_null rule allowing no nulls, and a pipeline writing 400 rows with one null
    dataset = f"orders_{secrets.token_hex(3)}"
    not_null = rule(editor, dataset_name=dataset, assertion_type="not_null", column="id", threshold=0)
    assert not_null["id"].startswith("rule-") and not_null["severity"] == "warning"
    one_null = writer(editor, dataset, rows_with_nulls(400, 1))

    # When it runs, one data_quality alert is raised with the rule, dataset, rate and run
    first = run(editor, one_null)
    (alert,) = active(editor)
    assert (alert["type"], alert["rule_id"], alert["dataset_name"]) == (
        "data_quality",
        not_null["id"],
        dataset,
    )
    assert alert["observed_rate"] == 0.0025 and alert["run_id"] == first and alert["status"] == "active"
    assert "1 of 400 rows" in alert["reason"]
    checked = editor.get(f"/api/pipeline/anomalies/rules/{not_null['id']}").json()
    assert checked["last_check"]["status"] == "violated" and checked["checks"][0]["run_id"] == first
    eventually(lambda: webhook.alerts(editor.project, "data_quality"))

    # A second violating run refreshes the same alert
    second = run(editor, one_null)
    (again,) = active(editor)
    assert again["id"] == alert["id"] and again["details"]["run_id"] == second
    assert editor.get("/api/pipeline/anomalies/types").json() == [{"type": "data_quality", "count": 1}]

    # Dismissed, it leaves the active list and stays away while the rate is the same
    dismissed = editor.post(f"/api/pipeline/anomalies/{alert['id']}/dismiss")
    assert dismissed.status_code == 200 and dismissed.json()["status"] == "dismissed"
    assert active(editor) == [] and editor.get("/api/pipeline/anomalies/types").json() == []
    run(editor, one_null)
    assert active(editor) == []
    assert [a["id"] for a in active(editor, status="dismissed")] == [alert["id"]]

    # A later run with another rate brings it back, and notifies again
    two_nulls = writer(editor, dataset, rows_with_nulls(400, 2))
    run(editor, two_nulls)
    (back,) = active(editor)
    assert back["id"] == alert["id"] and back["observed_rate"] == 0.005
    eventually(lambda: len(webhook.alerts(editor.project, "data_quality")) == 2)

    # With a tolerance of 1% the next run passes, which closes the alert
    tolerance = editor.put(f"/api/pipeline/anomalies/tolerances/{not_null['id']}", json={"tolerance": 0.01})
    assert tolerance.status_code == 200 and tolerance.json()["effective_threshold"] == 0.01
    listed = editor.get("/api/pipeline/anomalies/tolerances").json()
    assert [(t["check_id"], t["tolerance"]) for t in listed] == [(not_null["id"], 0.01)]
    run(editor, two_nulls)
    assert active(editor) == []
    (closed,) = active(editor, status="resolved")
    assert closed["id"] == alert["id"] and closed["closed_by"] == "passing run"
    assert (
        editor.get(f"/api/pipeline/anomalies/rules/{not_null['id']}").json()["last_check"]["status"]
        == "passed"
    )
    assert len(webhook.alerts(editor.project, "data_quality")) == 2  # closing never notifies


def test_every_assertion_type_on_a_dataset_that_violates_it_and_one_that_passes(editor):
    # Given the same six rules on a dataset built to break each and one built to pass them
    bad, good = f"bad_{secrets.token_hex(3)}", f"good_{secrets.token_hex(3)}"
    bodies = [
        {"assertion_type": "not_null", "column": "id"},
        {"assertion_type": "unique", "column": "id"},
        {"assertion_type": "accepted_values", "column": "status", "values": ["new", "paid"]},
        {"assertion_type": "range", "column": "amount", "min": 0, "max": 100},
        {"assertion_type": "row_count_min", "min": 4},
        {"assertion_type": "freshness_hours", "hours": 24},
    ]
    made = {
        (name, body["assertion_type"]): rule(editor, dataset_name=name, severity="critical", **body)["id"]
        for name in (bad, good)
        for body in bodies
    }
    unknown_column = rule(editor, dataset_name=good, assertion_type="not_null", column="no_such_column")
    bad_rows = [
        {"id": 1, "status": "new", "amount": 5},
        {"id": 1, "status": "lost", "amount": 500},
        {"id": None, "status": "paid", "amount": 50},
    ]
    good_rows = [{"id": i, "status": "paid", "amount": i * 10} for i in range(1, 5)]

    # When both are written
    run(editor, writer(editor, bad, bad_rows))
    run(editor, writer(editor, good, good_rows))

    # Then each rule on the bad dataset is violated (but freshness: it was just written) ...
    def status(name, kind):
        return editor.get(f"/api/pipeline/anomalies/rules/{made[(name, kind)]}").json()["last_check"]

    for body in bodies:
        kind = body["assertion_type"]
        expected = "passed" if kind == "freshness_hours" else "violated"
        assert status(bad, kind)["status"] == expected, (kind, status(bad, kind))
        assert status(good, kind)["status"] == "passed", (kind, status(good, kind))
    # ... with one critical data_quality alert per violated rule, all filterable
    alerts = active(editor, dataset_name=bad)
    assert sorted(a["details"]["assertion_type"] for a in alerts) == sorted(
        b["assertion_type"] for b in bodies if b["assertion_type"] not in ("freshness_hours",)
    )
    assert {a["severity"] for a in alerts} == {"critical"} and active(editor, dataset_name=good) == []
    by_rule = active(editor, rule_id=made[(bad, "range")])
    assert len(by_rule) == 1 and by_rule[0]["details"]["violations"] == 1
    assert active(editor, severity="warning") == []
    # And the rule on a missing column says why it cannot be checked
    missing = editor.get(f"/api/pipeline/anomalies/rules/{unknown_column['id']}").json()["last_check"]
    assert missing["status"] == "not_checkable" and "no_such_column" in missing["reason"]


def test_a_freshness_rule_is_violated_when_its_dataset_ages(editor):
    dataset = f"aging_{secrets.token_hex(3)}"
    aging = rule(editor, dataset_name=dataset, assertion_type="freshness_hours", hours=0.0003)  # ~1 s
    run(editor, writer(editor, dataset, [{"id": 1}]))
    report = {r["dataset_name"]: r for r in editor.get("/api/pipeline/freshness").json()}
    assert report[dataset]["freshness_threshold"] == 0.0003 and report[dataset]["last_refresh_at"].endswith(
        "Z"
    )

    def stale():
        assert editor.post("/freshness").json() == {"status": "queued"}
        return active(editor, rule_id=aging["id"])

    (alert,) = eventually(stale, timeout=20, interval=1.5)
    assert alert["type"] == "data_quality" and "hours ago" in alert["reason"]
    report = {r["dataset_name"]: r for r in editor.get("/api/pipeline/freshness").json()}
    assert report[dataset]["is_fresh"] is False


def test_freshness_and_row_audit_after_runs(editor):
    dataset = f"audited_{secrets.token_hex(3)}"
    pipeline = writer(editor, dataset, [{"id": i} for i in range(5)])
    first = run(editor, pipeline)
    smaller = writer(editor, dataset, [{"id": 1}, {"id": 2}])
    second = run(editor, smaller)
    audit = editor.get("/api/pipeline/row-audit", params={"hours": 1}).json()
    mine = [a for a in audit if a["dataset_name"] == dataset]
    assert [(a["run_id"], a["row_count"], a["row_count_delta"]) for a in mine] == [
        (second, 2, -3),
        (first, 5, 5),
    ]
    assert mine[0]["pipeline_id"] == smaller and mine[0]["refreshed_at"].endswith("Z")
    report = {r["dataset_name"]: r for r in editor.get("/api/pipeline/freshness").json()}
    assert report[dataset]["is_fresh"] is True and report[dataset]["freshness_threshold"] is None
    assert report[dataset]["run_id"] == second
    assert editor.get("/api/pipeline/row-audit", params={"hours": 0}).status_code == 422
    assert editor.get("/api/pipeline/row-audit", params={"hours": 721}).status_code == 422


def test_bulk_dismiss_and_resolve_conflicts_and_concurrent_moves(editor, stranger):
    # Given three violated rules, hence three active alerts
    dataset = f"bulk_{secrets.token_hex(3)}"
    for column in ("a", "b", "c"):
        rule(editor, dataset_name=dataset, assertion_type="not_null", column=column)
    run(editor, writer(editor, dataset, [{"a": None, "b": None, "c": None}, {"a": 1, "b": 2, "c": 3}]))
    ids = [a["id"] for a in active(editor, dataset_name=dataset)]
    assert len(ids) == 3 and ids == sorted(ids, key=lambda i: int(i.split("-")[1]), reverse=True)

    # Another project's ids and unknown ids are ignored and counted
    theirs = stranger.post("/api/pipeline/anomalies/bulk-dismiss", json={"alert_ids": ids})
    assert theirs.json() == {"updated": 0, "not_updated": 3}
    assert stranger.post(f"/api/pipeline/anomalies/{ids[0]}/dismiss").status_code == 404
    assert stranger.get("/api/pipeline/anomalies").json()["data"] == []

    dismissed = editor.post(
        "/api/pipeline/anomalies/bulk-dismiss", json={"alert_ids": ids[:2] + ["alert-999999"]}
    )
    assert dismissed.json() == {"updated": 2, "not_updated": 1}
    assert [a["id"] for a in active(editor, dataset_name=dataset)] == ids[2:]
    resolved = editor.post("/api/pipeline/anomalies/bulk-resolve", json={"alert_ids": ids})
    assert resolved.json() == {"updated": 3, "not_updated": 0}
    assert active(editor, dataset_name=dataset) == []
    assert editor.post("/api/pipeline/anomalies/bulk-resolve", json={"alert_ids": ids}).json()["updated"] == 0

    # A resolved alert cannot be dismissed; resolving again answers it as it is
    assert editor.post(f"/api/pipeline/anomalies/{ids[0]}/dismiss").status_code == 409
    again = editor.post(f"/api/pipeline/anomalies/{ids[0]}/resolve")
    assert again.status_code == 200 and again.json()["status"] == "resolved"
    assert editor.post("/api/pipeline/anomalies/alert-424242/resolve").status_code == 404
    assert editor.post("/api/pipeline/anomalies/not-an-id/resolve").status_code == 404

    # Concurrent dismiss and resolve of a fresh alert end in one state
    run(editor, writer(editor, dataset, [{"a": None, "b": 1, "c": 1}]))
    (fresh,) = active(editor, dataset_name=dataset)
    answers: list[int] = []

    def call(action):
        with editor.__class__(base_url=editor.base_url, headers=editor.headers) as client:
            answers.append(client.post(f"/api/pipeline/anomalies/{fresh['id']}/{action}").status_code)

    threads = [threading.Thread(target=call, args=(a,)) for a in ("dismiss", "resolve") * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = [a for a in active(editor, status="resolved", dataset_name=dataset) if a["id"] == fresh["id"]]
    assert final and set(answers) <= {200, 409} and answers.count(200) >= 3


def test_bad_input_roles_and_tenancy(editor, viewer, stranger):
    dataset = f"checked_{secrets.token_hex(3)}"
    bad = [
        {"dataset_name": dataset, "assertion_type": "mostly_fine", "column": "id"},
        {"dataset_name": dataset, "assertion_type": "range", "column": "id"},
        {"dataset_name": dataset, "assertion_type": "not_null", "column": "id", "threshold": 2},
        {"dataset_name": dataset, "assertion_type": "accepted_values", "column": "id"},
        {"dataset_name": "", "assertion_type": "not_null", "column": "id"},
        {"assertion_type": "not_null", "column": "id"},
    ]
    for body in bad:
        refused = editor.post("/api/pipeline/anomalies/rules", json=body)
        assert refused.status_code == 422 and refused.json()["detail"], body
    assert (
        editor.post(
            "/api/pipeline/anomalies/rules", content=b"{nope", headers={"Content-Type": "application/json"}
        ).status_code
        == 422
    )
    assert editor.get("/api/pipeline/anomalies/rules").json() == []  # nothing half-written

    made = rule(editor, dataset_name=dataset, assertion_type="unique", column="id")
    assert viewer.get("/api/pipeline/anomalies/rules").json()[0]["id"] == made["id"]
    assert viewer.post("/api/pipeline/anomalies/rules", json={**bad[2], "threshold": 0}).status_code == 403
    assert (
        viewer.put(f"/api/pipeline/anomalies/tolerances/{made['id']}", json={"tolerance": 0.1}).status_code
        == 403
    )
    assert (
        editor.patch(f"/api/pipeline/anomalies/tolerances/{made['id']}", json={"tolerance": 1.5}).status_code
        == 422
    )
    assert (
        editor.patch("/api/pipeline/anomalies/tolerances/rule-99999", json={"tolerance": 0.1}).status_code
        == 404
    )
    patched = editor.patch(f"/api/pipeline/anomalies/tolerances/{made['id']}", json={"tolerance": 0.2})
    assert patched.status_code == 200 and patched.json()["tolerance"] == 0.2
    for params in ({"status": "gone"}, {"type": "nope"}, {"severity": "fatal"}, {"cursor": "garbage"}):
        assert editor.get("/api/pipeline/anomalies", params=params).status_code == 422, params
    assert viewer.post("/api/pipeline/anomalies/bulk-resolve", json={"alert_ids": []}).status_code == 403
    assert viewer.post("/api/pipeline/anomalies/alert-1/dismiss").status_code == 403
    assert viewer.post("/api/pipeline/anomalies/alert-1/resolve").status_code == 403
    assert viewer.post("/api/pipeline/dbt/run-results", json={}).status_code == 403
    assert viewer.get("/api/pipeline/anomalies").status_code == 200
    assert editor.post("/api/pipeline/anomalies/bulk-resolve", json={"ids": []}).status_code == 422

    # Another project sees none of it
    assert stranger.get("/api/pipeline/anomalies/rules").json() == []
    assert stranger.get(f"/api/pipeline/anomalies/rules/{made['id']}").status_code == 404
    assert stranger.get("/api/pipeline/anomalies/tolerances").json() == []
    assert (
        stranger.put(f"/api/pipeline/anomalies/tolerances/{made['id']}", json={"tolerance": 0.1}).status_code
        == 404
    )
    assert stranger.get("/api/pipeline/anomalies/types").json() == []
    assert all(r["dataset_name"] != dataset for r in stranger.get("/api/pipeline/freshness").json())
    assert stranger.get("/api/pipeline/row-audit").json() == []


def test_cursor_pages_list_newest_first(editor):
    dataset = f"paged_{secrets.token_hex(3)}"
    for column in ("a", "b", "c", "d", "e"):
        rule(editor, dataset_name=dataset, assertion_type="not_null", column=column)
    run(editor, writer(editor, dataset, [dict.fromkeys("abcde"), dict.fromkeys("abcde", 1)]))
    seen, cursor = [], None
    while True:
        page = editor.get(
            "/api/pipeline/anomalies", params={"limit": 2, **({"cursor": cursor} if cursor else {})}
        ).json()
        seen += [a["id"] for a in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 5 and seen == sorted(seen, key=lambda i: int(i.split("-")[1]), reverse=True)


def watcher_pipeline(client, name: str, **fields) -> int:
    response = client.post("/pipeline", json={"name": name, "pipeline_type_name": "batch", **fields})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def execution(client, pipeline_id: int, start, end=None, **metrics) -> int:
    def iso(moment):
        return moment.in_timezone("UTC").format("YYYY-MM-DDTHH:mm:ss") + "Z"

    started = client.post(
        "/start_pipeline_execution", json={"pipeline_id": pipeline_id, "start_date": iso(start)}
    )
    assert started.status_code == 201, started.text
    number = started.json()["id"]
    if end is not None:
        ended = client.post(
            "/end_pipeline_execution",
            json={"id": number, "end_date": iso(end), "completed_successfully": True, **metrics},
        )
        assert ended.status_code == 204, ended.text
    return number


def test_the_inbox_lists_watcher_alerts_beside_data_quality_ones(editor):
    import pendulum

    # A z-score anomaly (seed 004): five baseline runs, then one far outside
    etl = watcher_pipeline(editor, "inbox-anomaly")
    made = editor.post(
        "/anomaly_detection_rule",
        json={"pipeline_id": etl, "metric_field": "total_rows", "z_threshold": 1.0, "minimum_executions": 5},
    )
    assert made.status_code == 201
    hour = pendulum.now("UTC").subtract(days=1).replace(hour=10, minute=0, second=0, microsecond=0)
    for i, rows in enumerate([10, 12, 14, 16, 18]):
        execution(editor, etl, hour.add(minutes=i), hour.add(minutes=i, seconds=30), total_rows=rows)
    execution(editor, etl, hour.add(minutes=10), hour.add(minutes=11), total_rows=100)
    # A stale pipeline and a late execution
    now = pendulum.now("UTC")
    stale = watcher_pipeline(editor, "inbox-stale", freshness_number=1, freshness_datepart="hour")
    execution(editor, stale, now.subtract(hours=3), now.subtract(hours=2), inserts=1)
    late = watcher_pipeline(editor, "inbox-late", timeliness_number=1, timeliness_datepart="minute")
    execution(editor, late, now.subtract(minutes=20))
    assert editor.post("/freshness").json() == {"status": "queued"}
    assert editor.post("/timeliness", json={"lookback_minutes": 60}).json() == {"status": "queued"}
    # And a data-quality violation
    dataset = f"inbox_{secrets.token_hex(3)}"
    rule(editor, dataset_name=dataset, assertion_type="not_null", column="id", severity="critical")
    run(editor, writer(editor, dataset, rows_with_nulls(10, 1)))

    # Then one inbox holds all four kinds, each with a sentence saying why
    def all_kinds():
        kinds = {a["type"] for a in active(editor)}
        return kinds if kinds >= {"anomaly", "freshness", "timeliness", "data_quality"} else None

    eventually(all_kinds, timeout=30, interval=0.5)
    alerts = active(editor)
    assert all(a["reason"] and a["created_at"].endswith("Z") for a in alerts)
    anomaly = next(a for a in alerts if a["type"] == "anomaly")
    assert anomaly["pipeline_id"] == f"pipeline-{etl}" and "mean" in anomaly["reason"]
    assert [a["type"] for a in active(editor, pipeline_id=stale)] == ["freshness"]
    assert [a["type"] for a in active(editor, type="timeliness")] == ["timeliness"]
    assert [a["type"] for a in active(editor, severity="critical")] == ["data_quality"]
    counts = {c["type"]: c["count"] for c in editor.get("/api/pipeline/anomalies/types").json()}
    assert counts == {"anomaly": 1, "freshness": 1, "timeliness": 1, "data_quality": 1}

    # Watcher's alerts are dismissed and resolved like any other
    late_alert = active(editor, type="timeliness")[0]
    assert editor.post(f"/api/pipeline/anomalies/{late_alert['id']}/resolve").json()["status"] == "resolved"
    counts = {c["type"]: c["count"] for c in editor.get("/api/pipeline/anomalies/types").json()}
    assert "timeliness" not in counts and counts["anomaly"] == 1


DATA = __import__("pathlib").Path(__file__).parent / "data"


def test_dbt_run_results_upload_and_dbt_status_after_a_sluice_run(editor, stranger):
    import json

    import pendulum

    # The files were written by hand after dbt's schemas; every instant in them is moved so that the
    # run finished a minute ago, as an upload right after a run (moving only the date put the upload
    # in the future before 10:15 UTC, and the Sluice run below was then not the latest)
    shift = pendulum.now("UTC").subtract(minutes=1) - pendulum.parse("2026-01-05T10:15:42.118932Z")

    def moved(text: str) -> str:
        return re.sub(
            r"2026-01-05T[0-9:.]+Z",
            lambda m: timeutil.iso(pendulum.parse(m.group(0)) + shift),
            text,
        )

    run_results = json.loads(moved((DATA / "dbt_run_results_v6.json").read_text()))
    manifest = json.loads(moved((DATA / "dbt_manifest_v11.json").read_text()))
    assert editor.get("/api/pipeline/dbt/status").status_code == 404

    # Malformed uploads are 422s naming what is wrong, and write nothing
    broken = [
        ({k: v for k, v in run_results.items() if k != "metadata"}, "metadata"),
        (
            {**run_results, "metadata": {**run_results["metadata"], "dbt_schema_version": "v6"}},
            "dbt_schema_version",
        ),
        (
            {
                **run_results,
                "metadata": {
                    **run_results["metadata"],
                    "dbt_schema_version": run_results["metadata"]["dbt_schema_version"].replace("v6", "v99"),
                },
            },
            "dbt_schema_version",
        ),
        ({**run_results, "results": [{**run_results["results"][0], "unique_id": None}]}, "unique_id"),
        ({**run_results, "results": [{**run_results["results"][0], "execution_time": -1}]}, "execution_time"),
        ({**run_results, "results": [{**run_results["results"][0], "status": "great"}]}, "status"),
        ({"run_results": run_results, "manifest": {"nodes": {}}}, "manifest"),
    ]
    for body, named in broken:
        refused = editor.post("/api/pipeline/dbt/run-results", json=body)
        assert refused.status_code == 422 and named in refused.text, (named, refused.text)
    assert editor.get("/api/pipeline/dbt/status").status_code == 404
    assert editor.get("/pipeline").json() == [] or all(
        p["name"] != "dbt" for p in editor.get("/pipeline").json()
    )

    # A real run_results.json (v6) with its manifest becomes an external run of the dbt pipeline
    uploaded = editor.post(
        "/api/pipeline/dbt/run-results", json={"run_results": run_results, "manifest": manifest}
    )
    assert uploaded.status_code == 201, uploaded.text
    body = uploaded.json()
    assert body["status"] == "failed" and body["source"] == "dbt" and body["duration_seconds"] == 12.03
    models = {m["name"]: m for m in body["models"]}
    assert models["fct_revenue"] == {
        "name": "fct_revenue",
        "unique_id": "model.shop.fct_revenue",
        "status": "success",
        "duration_seconds": 8.3,
        "rows": 310,
        "error": None,
        "relation_name": "analytics.marts.fct_revenue",
    }
    assert "ltv" in models["customers_ltv"]["error"]
    assert body["lineage"] == {
        "sources": ["analytics.raw.orders"],
        "targets": ["analytics.marts.fct_revenue", "analytics.staging.stg_orders"],
    }
    assert editor.get("/api/pipeline/dbt/status").json()["run_id"] == body["run_id"]
    execution = editor.get(f"/pipeline_execution/{body['run_id'].removeprefix('run-')}").json()
    assert execution["completed_successfully"] is False and execution["total_rows"] == 1510
    assert execution["pipeline_id"] == body["pipeline_id"]
    # Each model is a node run of that external run
    detail = editor.get(f"/api/runs/{body['run_id']}").json()
    nodes = {n["node_id"]: n for n in detail["node_runs"]}
    assert set(nodes) == {"stg_orders", "fct_revenue", "customers_ltv"}, detail
    assert (nodes["fct_revenue"]["status"], nodes["fct_revenue"]["row_count"]) == ("success", 310)
    assert nodes["customers_ltv"]["status"] == "failed" and "ltv" in nodes["customers_ltv"]["error"]
    # Its relations are datasets: in the freshness report and the row audit
    report = {r["dataset_name"]: r for r in editor.get("/api/pipeline/freshness").json()}
    assert report["analytics.marts.fct_revenue"]["run_id"] == body["run_id"], report
    audit = editor.get("/api/pipeline/row-audit", params={"hours": 48}).json()
    assert {(a["dataset_name"], a["row_count"]) for a in audit} >= {("analytics.marts.fct_revenue", 310)}
    # A bare run_results.json is accepted too
    again = editor.post("/api/pipeline/dbt/run-results", json=run_results)
    assert again.status_code == 201 and again.json()["pipeline_id"] == body["pipeline_id"]

    # A later Sluice run of SQL models is the latest dbt status
    created = editor.post(
        "/api/v1/pipelines",
        json={
            "name": f"sql-{secrets.token_hex(3)}",
            "nodes": [
                {
                    "id": "src",
                    "nodeType": "source",
                    "config": {"kind": "inline", "rows": [{"a": 1}, {"a": 2}]},
                },
                {"id": "doubled", "nodeType": "transform", "config": {"sql": "SELECT a * 2 AS b FROM src"}},
            ],
            "edges": [{"source": "src", "target": "doubled"}],
        },
    )
    assert created.status_code == 201, created.text
    sluice_run = run(editor, created.json()["data"]["id"])
    status = editor.get("/api/pipeline/dbt/status").json()
    assert (status["run_id"], status["source"], status["status"]) == (sluice_run, "sluice", "success")
    assert [(m["name"], m["status"], m["rows"]) for m in status["models"]] == [("doubled", "success", 2)]

    assert stranger.get("/api/pipeline/dbt/status").status_code == 404


def test_api_health_counts_requests_that_succeed_and_fail(editor, stranger):
    def runs_area(client=editor):
        report = client.get("/api/pipeline/api-health")
        assert report.status_code == 200, report.text
        return {r["router"]: r for r in report.json()["routers"]}

    before = runs_area()
    assert set(before) == {"platform", "pipelines", "lineage", "runs", "monitor"}
    for _ in range(4):
        assert editor.get("/api/runs/run-999999").status_code == 404
    for _ in range(6):
        assert editor.get("/api/pipeline/runs").status_code == 200
    after = runs_area()["runs"]
    assert after["requests"] >= before["runs"]["requests"] + 10
    assert 0 < after["client_error_rate"] < 100 and after["error_rate"] == 0
    assert 0 < after["median_latency_ms"] <= after["p95_latency_ms"]
    assert runs_area()["monitor"]["requests"] >= 2  # these reports are requests of the monitor area
    # Another project sees only its own requests: none of the runs area, one report of the monitor's.
    theirs = runs_area(stranger)
    assert theirs["runs"]["requests"] == 0 and theirs["monitor"]["requests"] == 0
    assert runs_area(stranger)["monitor"]["requests"] == 1


def test_z_score_rules_opt_into_a_robust_baseline_and_a_floor(editor):
    etl = watcher_pipeline(editor, "robust-etl")
    plain = editor.post("/anomaly_detection_rule", json={"pipeline_id": etl, "metric_field": "total_rows"})
    assert plain.status_code == 201
    shown = editor.get(f"/anomaly_detection_rule/{plain.json()['id']}").json()
    assert "baseline" not in shown and "min_delta" not in shown and shown["z_threshold"] == 3.0
    robust = editor.post(
        "/anomaly_detection_rule",
        json={"pipeline_id": etl, "metric_field": "inserts", "baseline": "median", "min_delta": 50},
    )
    assert robust.status_code == 201
    shown = editor.get(f"/anomaly_detection_rule/{robust.json()['id']}").json()
    assert (shown["baseline"], shown["min_delta"]) == ("median", 50)
    for bad in ({"baseline": "mode"}, {"min_delta": -1}):
        body = {"pipeline_id": etl, "metric_field": "updates", **bad}
        assert editor.post("/anomaly_detection_rule", json=body).status_code == 422
    patched = editor.patch(
        "/anomaly_detection_rule", json={"id": robust.json()["id"], "min_delta": 0, "baseline": "mean"}
    )
    assert patched.status_code == 200 and "baseline" not in patched.json()


def test_rules_on_a_watcher_pipelines_s3_target_are_checked_when_its_execution_ends(stack, editor):
    import pendulum

    from tests.e2e.conftest import moto_client

    # Given an external pipeline (Watcher) that writes a CSV object in S3 and a warehouse table
    bucket = f"external-{secrets.token_hex(4)}"
    s3 = moto_client(stack, "s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="exports/orders.csv", Body=b"id,amount\n1,10\n,20\n3,30\n4,40\n")
    uri = f"s3://{bucket}/exports/orders.csv"
    etl = watcher_pipeline(editor, "external-etl")

    def address(name, group):
        return {"name": name, "address_type_name": group, "address_type_group_name": group}

    lineage = editor.post(
        "/address_lineage",
        json={
            "pipeline_id": etl,
            "source_addresses": [address("crm.public.orders", "database")],
            "target_addresses": [address(uri, "s3"), address("warehouse.public.orders", "database")],
        },
    )
    assert lineage.status_code == 201, lineage.text
    on_object = rule(editor, dataset_name=uri, assertion_type="not_null", column="id")
    in_range = rule(editor, dataset_name=uri, assertion_type="range", column="amount", max=100)
    on_table = rule(editor, dataset_name="warehouse.public.orders", assertion_type="not_null", column="id")

    # When one of its executions ends
    now = pendulum.now("UTC")
    number = execution(editor, etl, now.subtract(minutes=2), now.subtract(minutes=1), total_rows=4)

    # Then the S3 object's rules are checked on it, and the table's says why it cannot be
    def checked(made):
        return editor.get(f"/api/pipeline/anomalies/rules/{made['id']}").json()["last_check"]

    violated = eventually(lambda: checked(on_object), timeout=20, interval=0.3)
    assert violated["status"] == "violated" and violated["observed_rate"] == 0.25
    assert violated["run_id"] == f"run-{number}"
    assert eventually(lambda: checked(in_range))["status"] == "passed"
    table = eventually(lambda: checked(on_table))
    assert table["status"] == "not_checkable" and "warehouse.public.orders" in table["reason"]
    (alert,) = active(editor, dataset_name=uri)
    assert alert["pipeline_id"] == f"pipeline-{etl}" and alert["run_id"] == f"run-{number}"
    report = {r["dataset_name"]: r for r in editor.get("/api/pipeline/freshness").json()}
    assert report[uri]["row_count"] == 4
    # The Watcher pipeline appears in the freshness report named by its target addresses
    assert report["warehouse.public.orders"]["pipeline_id"] == etl
    assert report["warehouse.public.orders"]["pipeline_name"] == "external-etl"
    assert "external-etl" not in report
