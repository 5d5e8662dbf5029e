"""Timeliness records (one per run, in the run's partition) and freshness records (one per
pipeline and last DML time, in a project partition ordered by that time), each written in one
transaction with the alert it raises."""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any

from sluice import timeutil
from sluice.domain.alerts import Alert
from sluice.domain.monitoring import LateExecution, StalePipeline
from sluice.store import keys
from sluice.store.alerts import AlertRepository
from sluice.store.executions import in_parallel
from sluice.store.table import Condition, Table, TransactionCancelled


class CheckRepository:
    def __init__(self, table: Table):
        self.table = table
        self.alerts = AlertRepository(table)

    # -- timeliness ------------------------------------------------------------------------------------
    def has_timeliness_record(self, project: str, run_id: int) -> bool:
        return self.table.get(*keys.timeliness_record(project, run_id)) is not None

    def record_late_execution(self, project: str, record: LateExecution, alert: Alert) -> bool:
        pk, sk = keys.timeliness_record(project, record.execution_id)
        item = {
            "PK": pk,
            "SK": sk,
            "GSI1PK": keys.timeliness_records(project),
            "GSI1SK": f"{timeutil.sortable(record.recorded_at)}#{keys.pad(record.execution_id)}",
            "kind": "timeliness_record",
            "pipeline_execution_id": record.execution_id,
            "pipeline_id": record.pipeline_id,
            "alert_id": alert.id,
            "record": json.dumps(record.view(), separators=(",", ":")),
        }
        return self._record_once(item, alert)

    def timeliness_records(self, project: str) -> list[dict[str, Any]]:
        items = self.table.query_all(keys.timeliness_records(project), index="GSI1")
        return [json.loads(i["record"]) for i in items]

    # -- freshness --------------------------------------------------------------------------------------
    def has_freshness_record(self, project: str, pipeline_id: int, last_dml: _dt.datetime) -> bool:
        return (
            self.table.get(*keys.freshness_record(project, timeutil.sortable(last_dml), pipeline_id))
            is not None
        )

    def record_stale_pipeline(self, project: str, record: StalePipeline, alert: Alert) -> bool:
        last_dml = timeutil.sortable(record.last_dml)
        pk, sk = keys.freshness_record(project, last_dml, record.pipeline_id)
        item = {
            "PK": pk,
            "SK": sk,
            "GSI1PK": keys.freshness_records_of_pipeline(project, record.pipeline_id),
            "GSI1SK": last_dml,
            "kind": "freshness_record",
            "pipeline_id": record.pipeline_id,
            "alert_id": alert.id,
            "record": json.dumps(record.view(), separators=(",", ":")),
        }
        return self._record_once(item, alert)

    def freshness_records(self, project: str) -> list[dict[str, Any]]:
        return [
            json.loads(i["record"])
            for i in self.table.query_all(keys.freshness_records(project), consistent=True)
        ]

    def expired_freshness(
        self, project: str, cutoff: _dt.datetime, limit: int, after: str | None
    ) -> tuple[list[tuple[str, str]], str | None, bool]:
        """Keys of up to `limit` records whose last DML time is before `cutoff`, after sort key `after`."""
        partition, upper = keys.freshness_records(project), timeutil.sortable(cutoff)
        if after is None:
            page = self.table.query(partition, before=upper, limit=limit, consistent=True)
        else:
            page = self.table.query(partition, between=(after + "~", upper), limit=limit, consistent=True)
        found = [(i["PK"], i["SK"]) for i in page.items]
        return found, (found[-1][1] if found else after), page.cursor is None

    def purge_freshness(self, item_keys: list[tuple[str, str]]) -> int:
        return sum(in_parallel(lambda key: self.table.delete(*key) is not None, item_keys))

    # -- shared ------------------------------------------------------------------------------------------
    def _record_once(self, item: dict[str, Any], alert: Alert) -> bool:
        """Write the record and its alert together, unless the record exists (then neither: False)."""
        try:
            self.table.transact(
                [self.table.put_op(item, Condition("attribute_not_exists(PK)")), *self.alerts.put_ops(alert)]
            )
        except TransactionCancelled as exc:
            if exc.reasons[0] == "ConditionalCheckFailed":
                return False
            raise
        return True
