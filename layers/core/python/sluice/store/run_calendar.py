"""The counters the platform reads (issue 12): per-day run counts, each pipeline's last finished
run and each pipeline's latest run per `params.date`.

They are written by the operations below, which the run writers (store/runs.py, store/run_control.py)
put into the very transaction that changes a run's status: one unconditional ADD on the day's item
per transition, so a counter moves exactly when the status does (a transaction that fails its
guard moves neither). The calendar and the dashboard then read O(days) items, whatever the
number of runs.
"""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any

from sluice import timeutil
from sluice.store import keys
from sluice.store.table import Condition, Table

PIPELINE_FAILED = "failed#"  # `failed#<pipeline id>`: a pipeline's failed runs that started that day


def item_bytes(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB bills it, near enough (its attributes' names and values): what a
    run stores in `stored_bytes` and adds to its day's `bytes` for system info's db_size."""
    return len(json.dumps(item, default=str, separators=(",", ":")).encode())


def day_of(moment: _dt.datetime | None) -> str:
    """The UTC day (`YYYY-MM-DD`) a run is counted on: the day it started."""
    when = moment or timeutil.now()
    return when.astimezone(_dt.UTC).date().isoformat()


def transition_moves(
    pipeline_id: int, before: str | None, after: str | None, stored_bytes: int = 0, count: int = 1
) -> dict[str, int]:
    """What a status change `before` -> `after` (None before: a new run) of `count` runs adds to its
    day's counters, with the bytes the change stores (`bytes`: what system info's `db_size` sums)."""
    add: dict[str, int] = {}
    if stored_bytes:
        add["bytes"] = stored_bytes
    if before is None:
        add["total"] = count
    else:
        add[str(before)] = -count
    if after is not None:
        add[str(after)] = add.get(str(after), 0) + count
        if str(after) == "failed":
            add[f"{PIPELINE_FAILED}{pipeline_id}"] = count
    return add


def day_moves_op(table: Table, project: str, day: str, add: dict[str, int]) -> dict[str, Any]:
    """One day item's counter moves (several transitions' summed: a transaction touches an item once)."""
    return table.update_op(
        *keys.run_day(project, day), set_if_absent={"kind": "run_day", "day": day}, add=dict(add)
    )


def transition_op(
    table: Table,
    project: str,
    day: str,
    pipeline_id: int,
    before: str | None,
    after: str | None,
    stored_bytes: int = 0,
    count: int = 1,
) -> dict[str, Any]:
    """The day counter's part of one status change (see transition_moves)."""
    return day_moves_op(
        table, project, day, transition_moves(pipeline_id, before, after, stored_bytes, count)
    )


def last_run_op(table: Table, project: str, item: dict[str, Any]) -> dict[str, Any]:
    """The pipeline's last finished run, from the run's ended attributes (unconditional: the
    latest end wins)."""
    pk, sk = keys.last_run(project, int(item["pipeline_id"]))
    record = {
        "PK": pk,
        "SK": sk,
        "kind": "last_run",
        "pipeline_id": int(item["pipeline_id"]),
        "run_id": int(item["id"]),
        "status": item.get("status"),
        "start_date": item.get("start_date"),
        "end_date": item.get("end_date"),
    }
    return table.put_op({k: v for k, v in record.items() if v is not None})


def dated_run_op(
    table: Table, project: str, pipeline_id: int, day: str, run_id: int, status: str
) -> dict[str, Any]:
    pk, sk = keys.dated_run(project, pipeline_id, day)
    return table.put_op(
        {"PK": pk, "SK": sk, "kind": "dated_run", "date": day, "run_id": run_id, "status": str(status)}
    )


class RunCalendarRepository:
    """Reads of the maintained counters."""

    def __init__(self, table: Table):
        self.table = table

    def days(self, project: str, first: str, last: str) -> dict[str, dict[str, Any]]:
        """The day items from `first` to `last` (inclusive), by day: one Query (a year is ~40 KB)."""
        return {
            item["SK"]: item
            for item in self.table.query_all(keys.run_days(project), between=(first, last), consistent=True)
        }

    def last_runs(self, project: str) -> dict[int, dict[str, Any]]:
        """Each pipeline's last finished run, by pipeline id: one Query (one item per pipeline)."""
        return {int(item["pipeline_id"]): item for item in self.table.query_all(keys.last_runs(project))}

    def dated(self, project: str, pipeline_id: int, first: str, last: str) -> dict[str, dict[str, Any]]:
        """The pipeline's latest finished run per date from `first` to `last`: one Query."""
        return {
            item["SK"]: item
            for item in self.table.query_all(
                keys.dated_runs(project, pipeline_id), between=(first, last), consistent=True
            )
        }

    def add_bytes(self, project: str, run_id: int, day: str, size: int) -> None:
        """Bytes a run stored after its start (node runs and their objects): on its day and on the
        run item (which the purge subtracts again), in one transaction."""
        self.table.transact(
            [
                self.table.update_op(*keys.run_day(project, day), add={"bytes": size}),
                self.table.update_op(
                    *keys.run(project, run_id), add={"stored_bytes": size}, condition=_exists()
                ),
            ]
        )

    def write_day(self, project: str, day: str, counts: dict[str, int]) -> None:
        """Set a day's counters outright (history loaded from elsewhere; tests and benchmarks)."""
        pk, sk = keys.run_day(project, day)
        self.table.put({"PK": pk, "SK": sk, "kind": "run_day", "day": day, **counts})


def _exists() -> Condition:
    return Condition("attribute_exists(PK)")
