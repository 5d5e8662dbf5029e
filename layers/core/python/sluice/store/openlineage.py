"""The OpenLineage ingest's marks: which events were applied (idempotency) and which Watcher
execution stands for each OpenLineage run. Both are conditional writes of one item each."""

from __future__ import annotations

from sluice import timeutil
from sluice.domain.openlineage import MappedRun
from sluice.store import keys
from sluice.store.table import Condition, ConditionFailed, Table

ABSENT = Condition("attribute_not_exists(PK)")


class OpenLineageMarks:
    def __init__(self, table: Table):
        self.table = table

    def known_events(self, project: str, event_keys: list[str]) -> set[str]:
        if not event_keys:
            return set()
        found = self.table.batch_get(
            [keys.openlineage_event(project, k) for k in event_keys], consistent=True
        )
        return {item["SK"].removeprefix("EVENT#") for item in found}

    def claim_event(self, project: str, key: str) -> bool:
        pk, sk = keys.openlineage_event(project, key)
        try:
            self.table.put({"PK": pk, "SK": sk, "kind": "openlineage_event"}, ABSENT)
        except ConditionFailed:
            return False
        return True

    def release_event(self, project: str, key: str) -> None:
        self.table.delete(*keys.openlineage_event(project, key))

    def mapped_run(self, project: str, run_id: str) -> MappedRun | None:
        item = self.table.get(*keys.openlineage_run(project, run_id))
        if item is None:
            return None
        return MappedRun(
            execution_id=int(item["execution_id"]),
            pipeline_id=int(item["pipeline_id"]),
            start_date=timeutil.parse_instant(item["start_date"], "start_date"),
            ended=bool(item.get("ended", False)),
        )

    def map_run(self, project: str, run_id: str, mapped: MappedRun) -> MappedRun:
        """Record the mapping unless another request did first; the mapping that holds is returned."""
        pk, sk = keys.openlineage_run(project, run_id)
        item = {
            "PK": pk,
            "SK": sk,
            "kind": "openlineage_run",
            "execution_id": mapped.execution_id,
            "pipeline_id": mapped.pipeline_id,
            "start_date": timeutil.iso(mapped.start_date),
            "ended": False,
        }
        try:
            self.table.put(item, ABSENT)
        except ConditionFailed:
            winner = self.mapped_run(project, run_id)
            if winner is not None:
                return winner
            raise
        return mapped

    def mark_ended(self, project: str, run_id: str) -> None:
        pk, sk = keys.openlineage_run(project, run_id)
        self.table.update(pk, sk, set_={"ended": True}, return_values="NONE")
