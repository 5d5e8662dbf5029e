"""Project settings over HTTP through the local gateway, and the dispatcher obeying a raised limit."""

from __future__ import annotations

from tests.e2e.conftest import eventually, jwt_for, queue_backlog

SETTINGS = "/api/system/settings"


def test_an_admin_sets_the_limit_and_the_project_reads_it_back(stack, project_admin):
    project, key = project_admin
    with stack.client(key) as admin:
        assert admin.get(SETTINGS).json() == {"max_concurrent_runs": 5}
        changed = admin.patch(SETTINGS, json={"max_concurrent_runs": 3})
        assert (changed.status_code, changed.json()) == (200, {"max_concurrent_runs": 3})
        refused = admin.patch(SETTINGS, json={"max_concurrent_runs": 0})
        assert refused.status_code == 422
        assert (
            refused.json()["detail"][0]["msg"] == "max_concurrent_runs must be a whole number from 1 to 100."
        )
    with stack.client(jwt_for(project, "viewer")) as viewer:
        assert viewer.get(SETTINGS).json() == {"max_concurrent_runs": 3}
    with stack.client(jwt_for(project, "editor")) as editor:
        assert editor.patch(SETTINGS, json={"max_concurrent_runs": 4}).status_code == 403
    with stack.client(jwt_for(project + "-other", "viewer")) as stranger:
        assert stranger.get(SETTINGS).json() == {"max_concurrent_runs": 5}


def test_raising_the_limit_starts_runs_that_were_waiting_for_a_slot(stack, project_admin):
    # Given runs held pending because the project has no execution slot
    project, key = project_admin
    with stack.client(key) as admin:
        run_ids = queue_backlog(stack, admin, project, 3)
        assert {admin.get(f"/api/runs/{r}").json()["status"] for r in run_ids} == {"pending"}
        # When an admin raises the limit
        assert admin.patch(SETTINGS, json={"max_concurrent_runs": 3}).status_code == 200

        # Then the dispatcher's next look at the queue starts them, with no run having finished
        def all_succeeded() -> bool:
            return all(admin.get(f"/api/runs/{r}").json()["status"] == "success" for r in run_ids)

        eventually(all_succeeded, timeout=60, interval=0.3)
