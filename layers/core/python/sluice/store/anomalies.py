"""Anomaly detection rules (one per pipeline and metric) and results (one per run and metric, kept
in the run's partition beside the run's `anomaly_flags`)."""

from __future__ import annotations

import json
from typing import Any

from sluice import timeutil
from sluice.domain.alerts import Alert
from sluice.domain.anomalies import AnomalyResult, AnomalyRule
from sluice.errors import Conflict, NotFound
from sluice.store import keys
from sluice.store.alerts import AlertRepository
from sluice.store.executions import ProjectRegistry
from sluice.store.table import Condition, ConditionFailed, Table, TransactionCancelled, serialize

FLAGS = "anomaly_flags"


class RuleRepository:
    def __init__(self, table: Table):
        self.table = table

    def next_rule_id(self, project: str) -> int:
        rule_id = self.table.next_number(*keys.counter(project, "anomaly_rule"))
        if rule_id == 1:
            ProjectRegistry(self.table).register(project)
        return rule_id

    def find(self, project: str, pipeline_id: int, metric_field: str) -> AnomalyRule | None:
        claim = self.table.get(*keys.anomaly_rule_claim(project, pipeline_id, metric_field))
        return self.get(project, int(claim["owner_id"])) if claim else None

    def create(self, project: str, rule: AnomalyRule) -> tuple[int, bool]:
        """Create the rule and claim its (pipeline, metric); if another create won the claim
        meanwhile, that rule's id and False."""
        pk, sk = keys.anomaly_rule_claim(project, rule.pipeline_id, rule.metric_field)
        claim = {"PK": pk, "SK": sk, "kind": "anomaly_rule_claim", "owner_id": rule.id}
        try:
            self.table.transact(
                [
                    self.table.put_op(claim, Condition("attribute_not_exists(PK)")),
                    self.table.put_op(rule_item(project, rule), Condition("attribute_not_exists(PK)")),
                ]
            )
        except TransactionCancelled as exc:
            if exc.reasons[0] == "ConditionalCheckFailed":
                winner = self.find(project, rule.pipeline_id, rule.metric_field)
                if winner is not None:
                    return winner.id, False
            raise
        return rule.id, True

    def get(self, project: str, rule_id: int) -> AnomalyRule | None:
        item = self.table.get(*keys.anomaly_rule(project, rule_id))
        return rule_from_item(item) if item else None

    def list(self, project: str) -> list[AnomalyRule]:
        return [rule_from_item(i) for i in self.table.query_all(keys.anomaly_rules(project), consistent=True)]

    def active_for_pipeline(self, project: str, pipeline_id: int) -> list[AnomalyRule]:
        items = self.table.query_all(keys.anomaly_rules_of_pipeline(project, pipeline_id), index="GSI1")
        return [rule for rule in (rule_from_item(i) for i in items) if rule.active]

    def update(self, project: str, before: AnomalyRule, after: AnomalyRule) -> None:
        """Save the changed rule; moving it to another (pipeline, metric) moves its claim, 409 if taken."""
        pk, sk = keys.anomaly_rule(project, before.id)
        item = rule_item(project, after)
        changes = {k: v for k, v in item.items() if k not in ("PK", "SK")}
        exists = Condition("attribute_exists(PK)")
        moved = (before.pipeline_id, before.metric_field) != (after.pipeline_id, after.metric_field)
        if not moved:
            try:
                self.table.update(pk, sk, set_=changes, condition=exists)
            except ConditionFailed as exc:
                raise NotFound(f"Anomaly detection rule {before.id} not found.") from exc
            return
        old_claim = keys.anomaly_rule_claim(project, before.pipeline_id, before.metric_field)
        new_pk, new_sk = keys.anomaly_rule_claim(project, after.pipeline_id, after.metric_field)
        owned = Condition("#o = :id", {"#o": "owner_id"}, {":id": before.id})
        try:
            self.table.transact(
                [
                    self.table.put_op(
                        {"PK": new_pk, "SK": new_sk, "kind": "anomaly_rule_claim", "owner_id": before.id},
                        Condition("attribute_not_exists(PK)"),
                    ),
                    self.table.delete_op(*old_claim, condition=owned),
                    self.table.update_op(pk, sk, set_=changes, condition=exists),
                ]
            )
        except TransactionCancelled as exc:
            if exc.reasons[0] == "ConditionalCheckFailed":
                raise Conflict(
                    f"Pipeline {after.pipeline_id} already has an anomaly detection rule for {after.metric_field}."
                ) from exc
            if "ConditionalCheckFailed" in exc.reasons[1:]:
                raise Conflict(f"Anomaly detection rule {before.id} changed meanwhile; try again.") from exc
            raise


class AnomalyResultRepository:
    def __init__(self, table: Table):
        self.table = table
        self.alerts = AlertRepository(table)

    def record(self, project: str, result: AnomalyResult, alert: Alert) -> bool:
        """Store the result, flag the run and store the alert in one transaction. A result that
        already exists (the run was judged before) is overwritten and flagged again, and no second
        alert is stored: False."""
        item = result_item(project, result)
        flag = self._flag_op(project, result.execution_id, {result.metric_field: True})
        for _attempt in range(2):
            try:
                self.table.transact(
                    [
                        self.table.put_op(item, Condition("attribute_not_exists(PK)")),
                        flag,
                        *self.alerts.put_ops(alert),
                    ]
                )
                return True
            except TransactionCancelled as exc:
                result_exists, flags_missing = (
                    reason == "ConditionalCheckFailed" for reason in exc.reasons[:2]
                )
                if flags_missing:
                    if not self._ensure_flags(project, result.execution_id):
                        return False  # the run is gone (log cleanup got there first)
                    continue
                if result_exists:
                    self.table.transact([self.table.put_op(item), flag])
                    return False
                raise
        return False

    def unflag(self, project: str, run_id: int, metrics: list[str]) -> bool:
        """Set the flags to false and drop their results, if every one of them is still true."""
        operations = [
            self._flag_op(project, run_id, dict.fromkeys(metrics, False), require_true=metrics),
            *(self.table.delete_op(*keys.anomaly_result(project, run_id, metric)) for metric in metrics),
        ]
        try:
            self.table.transact(operations)
        except TransactionCancelled as exc:
            if exc.reasons[0] == "ConditionalCheckFailed":
                return False
            raise
        return True

    def results_of_run(self, project: str, run_id: int) -> list[dict[str, Any]]:
        items = self.table.query_all(
            keys.run_partition(project, run_id), begins_with=keys.RUN_ANOMALY_PREFIX, consistent=True
        )
        return [json.loads(i["result"]) for i in items]

    def _flag_op(
        self, project: str, run_id: int, flags: dict[str, bool], require_true: list[str] | None = None
    ) -> dict[str, Any]:
        """Set anomaly_flags.<metric> paths (the table helper only sets top-level attributes)."""
        pk, sk = keys.run(project, run_id)
        names = {"#f": FLAGS}
        values: dict[str, Any] = {":map": "M"}
        sets, conditions = [], ["attribute_exists(PK)", "attribute_type(#f, :map)"]
        for index, (metric, flag) in enumerate(flags.items()):
            names[f"#m{index}"] = metric
            values[f":b{index}"] = flag
            sets.append(f"#f.#m{index} = :b{index}")
            if require_true and metric in require_true:
                values[":true"] = True
                conditions.append(f"#f.#m{index} = :true")
        return {
            "Update": {
                "TableName": self.table.name,
                "Key": serialize({"PK": pk, "SK": sk}),
                "UpdateExpression": "SET " + ", ".join(sets),
                "ConditionExpression": " AND ".join(conditions),
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": serialize(values),
            }
        }

    def _ensure_flags(self, project: str, run_id: int) -> bool:
        """Give a run an empty flag map if it has none (runs written elsewhere); False if no run."""
        try:
            self.table.update(
                *keys.run(project, run_id),
                set_if_absent={FLAGS: {}},
                condition=Condition("attribute_exists(PK)"),
            )
        except ConditionFailed:
            return False
        return True


def rule_item(project: str, rule: AnomalyRule) -> dict[str, Any]:
    pk, sk = keys.anomaly_rule(project, rule.id)
    return {
        "PK": pk,
        "SK": sk,
        "GSI1PK": keys.anomaly_rules_of_pipeline(project, rule.pipeline_id),
        "GSI1SK": rule.metric_field,
        "kind": "anomaly_rule",
        "id": rule.id,
        "pipeline_id": rule.pipeline_id,
        "metric_field": rule.metric_field,
        "z_threshold": float(rule.z_threshold),
        "lookback_days": rule.lookback_days,
        "minimum_executions": rule.minimum_executions,
        "active": rule.active,
        "created_at": timeutil.iso(rule.created_at),
        "updated_at": timeutil.iso(rule.updated_at),
        "baseline": rule.baseline,
        "min_delta": float(rule.min_delta),
    }


def rule_from_item(item: dict[str, Any]) -> AnomalyRule:
    return AnomalyRule(
        id=int(item["id"]),
        pipeline_id=int(item["pipeline_id"]),
        metric_field=item["metric_field"],
        z_threshold=float(item["z_threshold"]),
        lookback_days=int(item["lookback_days"]),
        minimum_executions=int(item["minimum_executions"]),
        active=bool(item.get("active", True)),
        created_at=timeutil.from_stored(item["created_at"]),
        updated_at=timeutil.from_stored(item.get("updated_at")),
        baseline=item.get("baseline") or "mean",
        min_delta=float(item.get("min_delta") or 0),
    )


def result_item(project: str, result: AnomalyResult) -> dict[str, Any]:
    pk, sk = keys.anomaly_result(project, result.execution_id, result.metric_field)
    return {
        "PK": pk,
        "SK": sk,
        "GSI1PK": keys.anomaly_results_of_pipeline(project, result.pipeline_id),
        "GSI1SK": f"{timeutil.sortable(result.detected_at)}#{keys.pad(result.execution_id)}#{result.metric_field}",
        "kind": "anomaly_result",
        "pipeline_execution_id": result.execution_id,
        "pipeline_id": result.pipeline_id,
        "rule_id": result.rule_id,
        "metric_field": result.metric_field,
        "detected_at": timeutil.iso(result.detected_at),
        # The statistics as JSON text: floats come back exactly as computed.
        "result": json.dumps(result.view(), separators=(",", ":")),
    }
