"""What the platform reads (issue 12): pipeline pages and names, recent runs, the searchable names
of pipelines, connectors and variables, scheduled pipelines, counts, stored bytes; and the purge's
batches of a project's old runs.

Every read is a Query of one partition of the project (never a Scan), with a projection of the
few attributes it needs, so a pipeline's graph or a variable's value never crosses the wire.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator
from typing import Any

from sluice.domain import ids
from sluice.domain.executions import Run
from sluice.domain.run_engine.record import RunRecord
from sluice.domain.status import FINISHED
from sluice.store import keys
from sluice.store.executions import RunRepository, in_parallel
from sluice.store.run_calendar import day_of
from sluice.store.table import Table, deserialize, serialize

FINISHED_STATUSES = {s.value for s in FINISHED}


class PlatformRepository:
    def __init__(self, table: Table):
        self.table = table

    def _projected(
        self, pk: str, attributes: tuple[str, ...], limit: int | None = None, index: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """A partition's items with only `attributes`, page by page (at most `limit` items)."""
        names = {f"#a{i}": a for i, a in enumerate(attributes)}
        pk_attr = "PK" if index is None else f"{index}PK"
        params: dict[str, Any] = {
            "TableName": self.table.name,
            "KeyConditionExpression": "#pk = :pk",
            "ExpressionAttributeNames": {"#pk": pk_attr, **names},
            "ExpressionAttributeValues": serialize({":pk": pk}),
            "ProjectionExpression": ", ".join(names),
        }
        if index is not None:
            params["IndexName"] = index
        if limit is not None:
            params["Limit"] = limit
        seen = 0
        while True:
            result = self.table.client.query(**params)
            for raw in result.get("Items", []):
                yield deserialize(raw)
                seen += 1
            last = result.get("LastEvaluatedKey")
            if not last or (limit is not None and seen >= limit):
                return
            params["ExclusiveStartKey"] = last

    # -- the dashboard ---------------------------------------------------------------------------
    def pipelines_page(self, project: str, limit: int) -> list[dict[str, Any]]:
        items = self._projected(keys.pipelines(project), ("id", "name", "status", "kind"), limit=limit)
        return [i for i in items if i.get("kind") == "pipeline"]

    def pipeline_names(self, project: str, pipeline_ids: list[int]) -> dict[int, str]:
        found = self.table.batch_get([keys.pipeline(project, p) for p in pipeline_ids])
        return {int(i["id"]): i["name"] for i in found if i.get("kind") == "pipeline"}

    def recent_runs(self, project: str, limit: int) -> list[RunRecord]:
        """The project's newest runs by start: the months that have runs (one Query of small items),
        then newest month first one page of `limit` from its start index until `limit` are found."""
        months = sorted((i["SK"] for i in self.table.query_all(keys.run_months(project))), reverse=True)
        found: list[RunRecord] = []
        for month in months:
            page = self.table.query(
                keys.run_start_month(project, month), index="GSI2", forward=False, limit=limit - len(found)
            )
            found += [RunRecord.from_stored(i) for i in page.items if i.get("kind") == "run"]
            if len(found) >= limit:
                break
        return found[:limit]

    # -- search ----------------------------------------------------------------------------------
    def searchable(self, project: str) -> list[dict[str, Any]]:
        """Names and descriptions of the project's pipelines, connectors and variables (three
        Queries, in parallel; never a variable's value)."""

        def pipelines() -> list[dict[str, Any]]:
            items = self._projected(keys.pipelines(project), ("id", "name", "description", "kind"))
            return [
                {"type": "pipeline", "id": ids.render("pipeline", int(i["id"])), **_text(i)}
                for i in items
                if i.get("kind") == "pipeline"
            ]

        def connectors() -> list[dict[str, Any]]:
            items = self._projected(keys.connectors(project), ("id", "name", "description", "kind"))
            return [
                {"type": "connector", "id": ids.render("connector", int(i["id"])), **_text(i)}
                for i in items
                if i.get("kind") == "connector"
            ]

        def variables() -> list[dict[str, Any]]:
            items = self._projected(keys.variables(project), ("SK", "description", "kind"))
            found = []
            for i in items:
                if i.get("kind") != "variable":
                    continue
                key = str(i["SK"]).removeprefix("VAR#")
                found.append(
                    {"type": "variable", "id": key, "name": key, "description": i.get("description")}
                )
            return found

        return [
            entry
            for part in in_parallel(lambda read: read(), [pipelines, connectors, variables])
            for entry in part
        ]

    # -- scheduler status, system info --------------------------------------------------------------
    def scheduled(self, project: str) -> list[dict[str, Any]]:
        items = self._projected(
            keys.pipelines(project), ("id", "name", "schedule", "status", "active", "next_run_at", "kind")
        )
        return [i for i in items if i.get("kind") == "pipeline" and i.get("schedule")]

    def pipeline_count(self, project: str) -> int:
        counts = self.table.get(*keys.pipeline_counts(project)) or {}
        return max(int(counts.get("total") or 0), 0)

    def active_run_count(self, project: str) -> int:
        total = 0
        params: dict[str, Any] = {
            "TableName": self.table.name,
            "KeyConditionExpression": "PK = :pk",
            "ExpressionAttributeValues": serialize({":pk": keys.active_runs(project)}),
            "Select": "COUNT",
        }
        while True:
            result = self.table.client.query(**params)
            total += int(result.get("Count", 0))
            if not result.get("LastEvaluatedKey"):
                return total
            params["ExclusiveStartKey"] = result["LastEvaluatedKey"]

    def stored_bytes(self, project: str) -> int:
        """The bytes the project's runs keep (items and objects), from the day counters' `bytes`
        (one Query of one small item per day with runs)."""
        return max(
            0, sum(int(i.get("bytes") or 0) for i in self._projected(keys.run_days(project), ("bytes",)))
        )


def _text(item: dict[str, Any]) -> dict[str, Any]:
    return {"name": item.get("name") or "", "description": item.get("description")}


class RunPurge:
    """The purge's side of a project's old runs: finished runs that started before a cutoff, month
    by month on the start index, deleted with everything kept about them."""

    def __init__(self, table: Table):
        self.table = table
        self.runs = RunRepository(table)

    def run_months(self, project: str, until_month: str) -> list[str]:
        return self.runs.run_months(project, until_month)

    def expired_runs(
        self, project: str, month: str, cutoff: _dt.datetime, limit: int, after: str | None
    ) -> tuple[list[Run], str | None, bool]:
        """As log cleanup's, less the runs not finished yet (a pending backfill child, a running
        run): those are kept."""
        batch, last, exhausted = self.runs.expired_runs(project, month, cutoff, limit, after)
        return [r for r in batch if str(r.status) in FINISHED_STATUSES], last, exhausted

    def purge_runs(self, project: str, runs: list[Run]) -> dict[str, int]:
        """Node runs first, then the run with what Watcher keeps about it (the run item last, so an
        interrupted purge is finished by the next); the run's bytes leave its day counter."""
        if not runs:
            return {}
        partitions = in_parallel(
            lambda r: list(self.table.query_all(keys.run_partition(project, r.id), consistent=True)), runs
        )
        node_keys = [
            (i["PK"], i["SK"])
            for part in partitions
            for i in part
            if str(i["SK"]).startswith(keys.RUN_NODE_PREFIX)
        ]
        in_parallel(lambda key: self.table.delete(*key), node_keys)
        freed: dict[str, int] = {}
        for run, part in zip(runs, partitions, strict=True):
            stored = next((i for i in part if i["SK"] == keys.RUN_ITEM), None)
            if stored is not None and int(stored.get("stored_bytes") or 0):
                day = day_of(run.start_date)
                freed[day] = freed.get(day, 0) + int(stored["stored_bytes"])
        counts = self.runs.purge_runs(project, runs)
        for day, size in freed.items():
            self.table.update(*keys.run_day(project, day), add={"bytes": -size})
        return counts

    def resumed_from(self, project: str, runs: list[Run]) -> set[int]:
        """The runs of `runs` whose outputs a later run reuses (it was resumed from them)."""
        found = self.table.batch_get([keys.run(project, r.id) for r in runs], consistent=True)
        return {int(i["id"]) for i in found if i.get("resumed_by")}
