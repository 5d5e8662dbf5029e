"""The dbt status item is replaced only by a run that finished later, whatever its rendering."""

from __future__ import annotations

from sluice.store import keys
from sluice.store.quality import DbtStatusRepository


def status(run: str, finished_at: str) -> dict:
    return {"run_id": run, "source": "sluice", "status": "success", "finished_at": finished_at}


def test_a_later_run_replaces_the_status_and_an_earlier_one_does_not(table):
    store = DbtStatusRepository(table)
    store.put_status("acme", status("run-1", "2026-01-05T10:00:00.500000Z"))
    # rendered without microseconds: as text "...00Z" sorts after "...00.5Z", as time it is earlier
    store.put_status("acme", status("run-2", "2026-01-05T10:00:00Z"))
    assert store.get_status("acme")["run_id"] == "run-1"
    store.put_status("acme", status("run-3", "2026-01-05T10:00:01Z"))
    assert store.get_status("acme")["run_id"] == "run-3"
    store.put_status("acme", status("run-4", "2026-01-05T10:00:00.900000Z"))
    assert store.get_status("acme")["run_id"] == "run-3"


def test_an_item_saved_before_the_sort_key_existed_is_replaced(table):
    pk, sk = keys.dbt_status("acme")
    table.put(
        {"PK": pk, "SK": sk, "kind": "dbt_status", "finished_at": "2026-01-05T10:00:00Z", "status": "{}"}
    )
    DbtStatusRepository(table).put_status("acme", status("run-5", "2026-01-05T11:00:00Z"))
    assert DbtStatusRepository(table).get_status("acme")["run_id"] == "run-5"
