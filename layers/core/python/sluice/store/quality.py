"""Data-quality rules, their checks (one per run that wrote the dataset), and the state of every
dataset Sluice writes (last refresh, rows, run) with a time-ordered log of writes for the row audit."""

from __future__ import annotations

import datetime as _dt
import json
from decimal import Decimal
from typing import Any

from sluice import timeutil
from sluice.domain.quality import Outcome, QualityRule
from sluice.errors import NotFound
from sluice.store import keys
from sluice.store.executions import ProjectRegistry
from sluice.store.table import Condition, ConditionFailed, Table

CHECK_HISTORY_DAYS = 90  # a rule's per-run checks expire through the table's TTL


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == int(value) else float(value)
    return value


class QualityRuleRepository:
    def __init__(self, table: Table):
        self.table = table

    def next_id(self, project: str) -> int:
        number = self.table.next_number(*keys.counter(project, "dqrule"))
        if number == 1:
            ProjectRegistry(self.table).register(project)
        return number

    def create(self, project: str, rule: QualityRule) -> None:
        self.table.put(rule_item(project, rule), Condition("attribute_not_exists(PK)"))

    def get(self, project: str, rule_id: int) -> QualityRule | None:
        item = self.table.get(*keys.quality_rule(project, rule_id))
        return rule_from_item(item) if item else None

    def list(self, project: str, dataset_name: str | None = None) -> list[QualityRule]:
        if dataset_name is not None:
            return self.of_dataset(project, dataset_name)
        return [
            rule_from_item(i) for i in self.table.query_all(keys.quality_rules(project), begins_with="DQR#")
        ]

    def of_dataset(self, project: str, dataset_name: str) -> list[QualityRule]:
        items = self.table.query_all(
            keys.quality_rules_of_dataset(project, dataset_name), index="GSI1", begins_with="DQR#"
        )
        return [rule_from_item(i) for i in items]

    def set_tolerance(
        self, project: str, rule_id: int, tolerance: float | None, now: _dt.datetime
    ) -> QualityRule:
        try:
            item = self.table.update(
                *keys.quality_rule(project, rule_id),
                set_={"tolerance": tolerance, "updated_at": timeutil.iso(now)},
                condition=Condition("attribute_exists(PK)"),
            )
        except ConditionFailed:
            raise NotFound(f"Rule rule-{rule_id} not found.") from None
        return rule_from_item(item)

    def record_check(self, project: str, rule: QualityRule, outcome: Outcome, alert_id: int | None) -> None:
        """The rule's last check on the rule, and one history item per check."""
        view = outcome.view()
        stamp = timeutil.iso(outcome.checked_at)
        history = {
            "PK": keys.quality_checks(project, rule.id),
            "SK": f"CHK#{stamp}#{outcome.run_id or 0:012d}",
            "kind": "dq_check",
            "check": json.dumps(view, separators=(",", ":"), default=str),
            "expires_at": int(outcome.checked_at.timestamp()) + CHECK_HISTORY_DAYS * 86400,
        }
        self.table.put(history)
        try:
            self.table.update(
                *keys.quality_rule(project, rule.id),
                set_={"last_check": json.dumps(view, separators=(",", ":"), default=str)},
                condition=Condition("attribute_exists(PK)"),
            )
        except ConditionFailed:  # the rule went away while it was checked
            return

    def claim_alert(self, project: str, rule_id: int, previous: int | None, alert_id: int) -> bool:
        """The rule's alert becomes `alert_id` only if it still is `previous` (one writer wins)."""
        if previous is None:
            expected = Condition("attribute_exists(PK) AND attribute_not_exists(alert_id)")
        else:
            expected = Condition("alert_id = :previous", values={":previous": previous})
        try:
            self.table.update(
                *keys.quality_rule(project, rule_id), set_={"alert_id": alert_id}, condition=expected
            )
        except ConditionFailed:
            return False
        return True

    def checks(self, project: str, rule_id: int, limit: int = 20) -> list[dict[str, Any]]:
        page = self.table.query(
            keys.quality_checks(project, rule_id), begins_with="CHK#", forward=False, limit=limit
        )
        return [json.loads(i["check"]) for i in page.items]


def rule_item(project: str, rule: QualityRule) -> dict[str, Any]:
    pk, sk = keys.quality_rule(project, rule.id)
    item: dict[str, Any] = {
        "PK": pk,
        "SK": sk,
        "GSI1PK": keys.quality_rules_of_dataset(project, rule.dataset_name),
        "GSI1SK": sk,
        "kind": "dq_rule",
        "id": rule.id,
        "dataset_name": rule.dataset_name,
        "assertion_type": rule.assertion_type,
        "severity": rule.severity,
        "threshold": rule.threshold,
        "created_at": timeutil.iso(rule.created_at),
    }
    for name in ("column", "min", "max", "hours", "tolerance", "alert_id"):
        value = getattr(rule, name)
        if value is not None:
            item[name] = value
    if rule.values is not None:
        item["values"] = json.dumps(list(rule.values))
    return item


def rule_from_item(item: dict[str, Any]) -> QualityRule:
    values = item.get("values")
    last = item.get("last_check")
    return QualityRule(
        id=int(item["id"]),
        dataset_name=item["dataset_name"],
        assertion_type=item["assertion_type"],
        severity=item["severity"],
        threshold=float(item["threshold"]),
        created_at=timeutil.from_stored(item["created_at"]),
        column=item.get("column"),
        values=tuple(json.loads(values)) if values else None,
        min=_plain(item.get("min")),
        max=_plain(item.get("max")),
        hours=_plain(item.get("hours")),
        tolerance=float(item["tolerance"]) if item.get("tolerance") is not None else None,
        alert_id=int(item["alert_id"]) if item.get("alert_id") is not None else None,
        last_check=json.loads(last) if isinstance(last, str) else None,
        updated_at=timeutil.from_stored(item["updated_at"]) if item.get("updated_at") else None,
    )


class DatasetStateRepository:
    """Per dataset its last write; per write one log item (kept 30 days) for the row audit."""

    WRITE_LOG_DAYS = 30

    def __init__(self, table: Table):
        self.table = table

    def record_write(
        self,
        project: str,
        dataset_name: str,
        rows: int,
        run_id: int,
        pipeline_id: int,
        at: _dt.datetime,
        dataset_rows: int | None = None,
        source: str = "sluice",
    ) -> None:
        pk, sk = keys.dataset_state(project, dataset_name)
        total = rows if dataset_rows is None else dataset_rows
        before = self.table.update(
            pk,
            sk,
            set_={
                "kind": "dataset_state",
                "dataset_name": dataset_name,
                "last_refresh_at": timeutil.iso(at),
                "row_count": total,
                "rows_written": rows,
                "run_id": run_id,
                "pipeline_id": pipeline_id,
                "source": source,
            },
            return_values="ALL_OLD",
        )
        previous = before.get("row_count")
        stamp = timeutil.iso(at)
        self.table.put(
            {
                "PK": keys.dataset_writes(project),
                "SK": f"W#{stamp}#{run_id:012d}#{dataset_name}",
                "kind": "dataset_write",
                "dataset_name": dataset_name,
                "refreshed_at": stamp,
                "row_count": total,
                "rows_written": rows,
                "row_count_delta": total - int(previous) if previous is not None else total,
                "run_id": run_id,
                "pipeline_id": pipeline_id,
                "expires_at": int(at.timestamp()) + self.WRITE_LOG_DAYS * 86400,
            }
        )

    def targets_of_pipeline(self, project: str, pipeline_id: int) -> list[str]:
        """The addresses a pipeline last recorded writing (its lineage's `writes`)."""
        item = self.table.get(*keys.pipeline_datasets(project, pipeline_id))
        return [w["name"] for w in (item or {}).get("writes") or [] if w.get("name")]

    def targets_by_pipeline(self, project: str) -> dict[int, list[str]]:
        """Every pipeline's last recorded target addresses: one Query of the lineage datasets."""
        found: dict[int, list[str]] = {}
        for item in self.table.query_all(keys.lineage_datasets(project), begins_with="PL#"):
            names = [w["name"] for w in item.get("writes") or [] if w.get("name")]
            if names:
                found[int(item["pipeline_id"])] = names
        return found

    def written_by_sluice(self, project: str, names: list[str]) -> set[str]:
        """Which of `names` are datasets a Sluice run's target wrote (checked as they are written)."""
        if not names:
            return set()
        found = self.table.batch_get([keys.dataset_state(project, n) for n in names], consistent=True)
        return {i["dataset_name"] for i in found if i.get("source", "sluice") == "sluice"}

    def all(self, project: str) -> list[dict[str, Any]]:
        return [
            {k: _plain(v) for k, v in i.items()}
            for i in self.table.query_all(keys.dataset_states(project), begins_with="DS#")
        ]

    def writes_since(self, project: str, since: _dt.datetime, limit: int = 1000) -> list[dict[str, Any]]:
        items = self.table.query_all(
            keys.dataset_writes(project), after=f"W#{timeutil.iso(since)}", forward=False
        )
        found = []
        for item in items:
            found.append({k: _plain(v) for k, v in item.items()})
            if len(found) >= limit:
                break
        return found


class DbtStatusRepository:
    """The project's latest finished run of SQL models: one item, replaced only by a later one."""

    def __init__(self, table: Table):
        self.table = table

    def put_status(self, project: str, status: dict[str, Any]) -> None:
        pk, sk = keys.dbt_status(project)
        item = {
            "PK": pk,
            "SK": sk,
            "kind": "dbt_status",
            "finished_at": status["finished_at"],
            # compared as text: fixed width (an ISO rendering drops zero microseconds, and
            # "10:00:00Z" sorts after "10:00:00.5Z")
            "finished_key": timeutil.sortable(timeutil.parse_instant(status["finished_at"])),
            "status": json.dumps(status, separators=(",", ":"), default=str),
        }
        later = Condition(
            "attribute_not_exists(PK) OR attribute_not_exists(finished_key) OR finished_key <= :at",
            values={":at": item["finished_key"]},
        )
        try:
            self.table.put(item, later)
        except ConditionFailed:  # a later run is already shown
            return

    def get_status(self, project: str) -> dict[str, Any] | None:
        item = self.table.get(*keys.dbt_status(project))
        return json.loads(item["status"]) if item else None
