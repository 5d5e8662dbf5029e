"""Execution slots: never more than max_concurrent_runs running, released exactly once."""

from __future__ import annotations

import threading

import pytest

from sluice.store import keys
from sluice.store.run_control import NotPending, RunControl, SlotsFull
from sluice.store.settings import SettingsRepository


def pending_run(table, project: str, run_id: int) -> None:
    pk, sk = keys.run(project, run_id)
    table.put({"PK": pk, "SK": sk, "kind": "run", "id": run_id, "status": "pending"})


def test_claims_stop_at_the_limit_and_release_frees_one(table):
    control = RunControl(table)
    SettingsRepository(table).change("p", {"max_concurrent_runs": 2}, "test")
    for run_id in (1, 2, 3):
        pending_run(table, "p", run_id)
    control.claim_slot("p", 1, "e1")
    control.claim_slot("p", 2, "e2")
    with pytest.raises(SlotsFull):
        control.claim_slot("p", 3, "e3")
    assert table.get(*keys.run("p", 3))["status"] == "pending"  # nothing half-written
    assert control.release_slot("p", 1) is True
    assert control.release_slot("p", 1) is False  # exactly once
    control.claim_slot("p", 3, "e3")
    assert control.running_count("p") == 2


def test_a_run_that_is_not_pending_takes_no_slot(table):
    control = RunControl(table)
    pending_run(table, "p", 1)
    control.claim_slot("p", 1, "e1")
    with pytest.raises(NotPending):
        control.claim_slot("p", 1, "e1")
    assert control.running_count("p") == 1


def test_concurrent_claims_never_exceed_the_limit(table, atomic_writes):
    control = RunControl(table)
    SettingsRepository(table).change("p", {"max_concurrent_runs": 3}, "test")
    for run_id in range(1, 11):
        pending_run(table, "p", run_id)
    won = []
    lock = threading.Lock()

    def claim(run_id: int) -> None:
        try:
            control.claim_slot("p", run_id, f"e{run_id}")
            with lock:
                won.append(run_id)
        except (SlotsFull, NotPending):
            pass

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(1, 11)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert control.running_count("p") == len(won) <= 3
    running = [i for i in range(1, 11) if table.get(*keys.run("p", i))["status"] == "running"]
    assert sorted(running) == sorted(won)


def test_cancel_is_refused_for_finished_runs(table):
    control = RunControl(table)
    pending_run(table, "p", 1)
    assert control.request_cancel("p", 1) == "pending"
    pk, sk = keys.run("p", 2)
    table.put({"PK": pk, "SK": sk, "status": "success"})
    assert control.request_cancel("p", 2) == ""
