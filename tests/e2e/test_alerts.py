"""Data-quality rules and the one alerts inbox over HTTP through the local stack (issue 13): rules
checked on what a run wrote, tolerances, dismiss/resolve (single, bulk, concurrent), re-surfacing,
every assertion type, Watcher's alerts beside data-quality ones, freshness and the row audit,
bad input, roles and tenancy."""

from __future__ import annotations

import secrets
import threading

import pytest

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
    assert (alert["type"], alert["rule_id"], alert["dataset_name"]) == ("data_quality", not_null["id"], dataset)
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
    assert editor.get(f"/api/pipeline/anomalies/rules/{not_null['id']}").json()["last_check"]["status"] == "passed"
    assert len(webhook.alerts(editor.project, "data_quality")) == 2  # closing never notifies
