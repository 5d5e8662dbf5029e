"""Project settings over HTTP: the platform area's Lambda handler driven with API Gateway HTTP API
v2 events on moto, and the run slots obeying what the API set."""

from __future__ import annotations

from collections import Counter

import pytest

from sluice.auth.principal import Principal, Role
from sluice.store import keys
from sluice.store.run_control import RunControl, SlotsFull, slots_key
from tests.apigw import invoke, load_area

ADMIN = Principal("acme", Role.admin, "key:admin")
EDITOR = Principal("acme", Role.editor, "user:ed")
VIEWER = Principal("acme", Role.viewer, "user:vi")
OTHER = Principal("globex", Role.admin, "user:other")
SETTINGS = "/api/system/settings"


@pytest.fixture
def platform(table):
    return load_area("platform").handler


def pending_run(table, project: str, run_id: int) -> None:
    pk, sk = keys.run(project, run_id)
    table.put({"PK": pk, "SK": sk, "kind": "run", "id": run_id, "status": "pending"})


def test_a_project_that_set_nothing_reads_the_defaults_as_a_viewer(platform):
    assert invoke(platform, "GET", SETTINGS, principal=VIEWER) == (200, {"max_concurrent_runs": 5})


def test_an_admin_changes_the_limit_and_every_role_reads_it_back(platform):
    assert invoke(platform, "PATCH", SETTINGS, {"max_concurrent_runs": 3}, ADMIN) == (
        200,
        {"max_concurrent_runs": 3},
    )
    for caller in (VIEWER, EDITOR, ADMIN):
        assert invoke(platform, "GET", SETTINGS, principal=caller) == (200, {"max_concurrent_runs": 3})


@pytest.mark.parametrize("caller", [VIEWER, EDITOR])
def test_only_an_admin_changes_settings(platform, writes, caller):
    status, body = invoke(platform, "PATCH", SETTINGS, {"max_concurrent_runs": 3}, caller)
    assert status == 403 and "needs the admin role" in body["detail"]
    assert not writes
    assert invoke(platform, "GET", SETTINGS, principal=VIEWER)[1] == {"max_concurrent_runs": 5}


def test_an_unauthenticated_caller_gets_401_before_its_body_is_looked_at(platform):
    assert invoke(platform, "GET", SETTINGS)[0] == 401
    assert invoke(platform, "PATCH", SETTINGS, raw_body="not json")[0] == 401


@pytest.mark.parametrize(
    "raw, message",
    [
        ('{"max_concurrent_runs": 0}', "max_concurrent_runs must be a whole number from 1 to 100."),
        ('{"max_concurrent_runs": 101}', "max_concurrent_runs must be a whole number from 1 to 100."),
        ('{"max_concurrent_runs": "3"}', "max_concurrent_runs must be a whole number from 1 to 100."),
        ('{"max_concurrent_runs": 2.5}', "max_concurrent_runs must be a whole number from 1 to 100."),
        ('{"max_concurrent_runs": null}', "max_concurrent_runs must be a whole number from 1 to 100."),
        ('{"max_concurrent_runs": 3, "paused": true}', "There is no setting named 'paused'"),
        ("{}", "Name at least one setting to change"),
        ("[3]", "The body must be a JSON object of the settings to change"),
        ("3", "The body must be a JSON object of the settings to change"),
        ("{not json", "Request body is not valid JSON"),
        ("", "Request body is required."),
    ],
)
def test_a_bad_body_is_422_with_a_sentence_and_writes_nothing(platform, writes, raw, message):
    status, body = invoke(platform, "PATCH", SETTINGS, principal=ADMIN, raw_body=raw)
    assert status == 422
    (error,) = body["detail"]
    assert error["msg"].startswith(message) and error["loc"][0] == "body"
    assert not writes
    assert invoke(platform, "GET", SETTINGS, principal=VIEWER)[1] == {"max_concurrent_runs": 5}


def test_one_projects_settings_are_invisible_to_another(platform):
    invoke(platform, "PATCH", SETTINGS, {"max_concurrent_runs": 2}, ADMIN)
    assert invoke(platform, "GET", SETTINGS, principal=OTHER)[1] == {"max_concurrent_runs": 5}
    invoke(platform, "PATCH", SETTINGS, {"max_concurrent_runs": 9}, OTHER)
    assert invoke(platform, "GET", SETTINGS, principal=VIEWER)[1] == {"max_concurrent_runs": 2}


def test_a_change_sets_only_the_setting_and_keeps_the_rest_of_the_item_and_the_slot_counter(
    platform, table, writes
):
    # Given a settings item carrying an attribute this API does not know, and two slots taken
    pk, sk = keys.project_settings("acme")
    table.put({"PK": pk, "SK": sk, "max_concurrent_runs": 4, "kept": "yes"})
    table.put({"PK": slots_key("acme")[0], "SK": slots_key("acme")[1], "running": 2})
    writes.clear()
    # When an admin changes the limit
    assert invoke(platform, "PATCH", SETTINGS, {"max_concurrent_runs": 7}, ADMIN)[0] == 200
    # Then one UpdateItem changed the limit and left everything else as it was
    assert writes == Counter({"UpdateItem": 1})
    stored = table.get(pk, sk)
    assert stored["max_concurrent_runs"] == 7 and stored["kept"] == "yes"
    assert stored["updated_by"] == "key:admin" and stored["updated_at"].endswith("Z")
    assert RunControl(table).running_count("acme") == 2


def test_the_slots_obey_the_limit_the_api_set(platform, table):
    control = RunControl(table)
    assert control.max_concurrent_runs("acme") == 5  # the same default as GET answers
    invoke(platform, "PATCH", SETTINGS, {"max_concurrent_runs": 2}, ADMIN)
    for run_id in (1, 2, 3):
        pending_run(table, "acme", run_id)
    control.claim_slot("acme", 1, "e1")
    control.claim_slot("acme", 2, "e2")
    with pytest.raises(SlotsFull):
        control.claim_slot("acme", 3, "e3")


def test_lowering_the_limit_below_the_running_runs_lets_them_finish_and_holds_new_ones(platform, table):
    # Given three runs running under a limit of 3
    control = RunControl(table)
    invoke(platform, "PATCH", SETTINGS, {"max_concurrent_runs": 3}, ADMIN)
    for run_id in (1, 2, 3, 4):
        pending_run(table, "acme", run_id)
    for run_id in (1, 2, 3):
        control.claim_slot("acme", run_id, f"e{run_id}")
    # When the limit is lowered to 1
    assert invoke(platform, "PATCH", SETTINGS, {"max_concurrent_runs": 1}, ADMIN)[0] == 200
    # Then the running runs give their slots back as usual, and run 4 waits until none is left
    for run_id in (1, 2):
        assert control.release_slot("acme", run_id) is True
        with pytest.raises(SlotsFull):
            control.claim_slot("acme", 4, "e4")
    assert control.release_slot("acme", 3) is True
    control.claim_slot("acme", 4, "e4")
    assert control.running_count("acme") == 1
    assert table.get(*keys.run("acme", 4))["status"] == "running"


def test_raising_the_limit_lets_a_waiting_run_start_without_any_run_finishing(platform, table):
    control = RunControl(table)
    invoke(platform, "PATCH", SETTINGS, {"max_concurrent_runs": 1}, ADMIN)
    pending_run(table, "acme", 1)
    pending_run(table, "acme", 2)
    control.claim_slot("acme", 1, "e1")
    with pytest.raises(SlotsFull):
        control.claim_slot("acme", 2, "e2")
    invoke(platform, "PATCH", SETTINGS, {"max_concurrent_runs": 2}, ADMIN)
    control.claim_slot("acme", 2, "e2")
    assert control.running_count("acme") == 2
