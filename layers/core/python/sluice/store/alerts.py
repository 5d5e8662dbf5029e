"""Alerts in the table: one partition per project listed newest first, by type on GSI1 and by
pipeline on GSI2 (severity and status are filters on those)."""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any

from sluice import timeutil
from sluice.domain.alerts import Alert
from sluice.store import keys
from sluice.store.executions import ProjectRegistry
from sluice.store.table import (
    Condition,
    ConditionFailed,
    Page,
    Table,
    TransactionCancelled,
    deserialize,
    encode_cursor,
    serialize,
)

MAX_READS = 10  # pages one inbox request reads to fill a page of filtered alerts


class AlertRepository:
    def __init__(self, table: Table):
        self.table = table

    def next_alert_id(self, project: str) -> int:
        alert_id = self.table.next_number(*keys.counter(project, "alert"))
        if alert_id == 1:
            ProjectRegistry(self.table).register(project)
        return alert_id

    def put_ops(self, alert: Alert) -> list[dict[str, Any]]:
        """The transaction operations that store `alert` (so a check writes it with its record)."""
        return [self.table.put_op(alert_item(alert), Condition("attribute_not_exists(PK)"))]

    def add(self, alert: Alert, once_key: str | None = None, once_for: _dt.timedelta | None = None) -> bool:
        """Store the alert; with `once_key`, only if no claim on that key is live (False otherwise)."""
        operations = self.put_ops(alert)
        if once_key is not None:
            lasting = once_for or _dt.timedelta(days=1)
            pk, sk = keys.alert_once(alert.project, once_key)
            claim = {
                "PK": pk,
                "SK": sk,
                "kind": "alert_once",
                "alert_id": alert.id,
                "expires_at": int((alert.created_at + lasting).timestamp()),
            }
            # TTL deletes lazily, so an expired claim that still exists must not block.
            live = Condition(
                "attribute_not_exists(PK) OR #exp < :now",
                {"#exp": "expires_at"},
                {":now": int(alert.created_at.timestamp())},
            )
            operations.insert(0, self.table.put_op(claim, live))
        try:
            self.table.transact(operations)
        except TransactionCancelled as exc:
            if once_key is not None and exc.reasons[0] == "ConditionalCheckFailed":
                return False
            raise
        return True

    def get(self, project: str, alert_id: int) -> Alert | None:
        item = self.table.get(*keys.alert(project, alert_id))
        return alert_from_item(item) if item else None

    def list(
        self,
        project: str,
        *,
        alert_type: str | None = None,
        pipeline_id: int | None = None,
        severity: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[Alert], str | None]:
        """Newest first; by type (GSI1) or pipeline (GSI2) when given, severity/status filtered."""
        filters, names, values = [], {}, {}
        if severity is not None:
            filters.append("#sev = :sev")
            names["#sev"], values[":sev"] = "severity", severity
        if status is not None:
            filters.append("#st = :st")
            names["#st"], values[":st"] = "status", status
        if alert_type is not None and pipeline_id is not None:
            filters.append("#pl = :pl")
            names["#pl"], values[":pl"] = "pipeline_id", pipeline_id
        filter_ = Condition(" AND ".join(filters), names, values) if filters else None
        if alert_type is not None:
            page = self._query(keys.alerts_of_type(project, alert_type), "GSI1", limit, cursor, filter_)
        elif pipeline_id is not None:
            page = self._query(keys.alerts_of_pipeline(project, pipeline_id), "GSI2", limit, cursor, filter_)
        else:
            page = self._query(keys.alerts(project), None, limit, cursor, filter_)
        return [alert_from_item(i) for i in page.items], page.cursor

    # -- the inbox (issue 13): states on the Status index ------------------------------------------
    def transition(
        self,
        project: str,
        alert_id: int,
        from_statuses: tuple[str, ...],
        to_status: str,
        now: _dt.datetime,
        details: dict[str, Any] | None = None,
        message: str | None = None,
        by: str | None = None,
    ) -> Alert | None:
        """Move the alert to `to_status` if it is in one of `from_statuses` (None otherwise, or
        when it does not exist): one conditional write, so concurrent callers end in one state."""
        pk, sk = keys.alert(project, alert_id)
        changes: dict[str, Any] = {
            "status": to_status,
            "StatusPK": keys.alerts_in_status(project, to_status),
            "updated_at": timeutil.iso(now),
            "closed_by": by if to_status != "active" else None,
        }
        if details is not None:
            changes["details"] = json.dumps(details, separators=(",", ":"), default=str)
            if details.get("run_id"):
                changes["run_id"] = _run_number(details["run_id"])
        if message is not None:
            changes["message"] = message
        values = {f":from{i}": status for i, status in enumerate(from_statuses)}
        condition = Condition(
            f"attribute_exists(PK) AND #from IN ({', '.join(values)})", {"#from": "status"}, values
        )
        try:
            item = self.table.update(pk, sk, set_=changes, condition=condition)
        except ConditionFailed:
            return None
        return alert_from_item(item)

    def refresh(
        self, project: str, alert: Alert, details: dict[str, Any], message: str, now: _dt.datetime
    ) -> bool:
        """A still-active alert takes the latest run's measurement (no new alert, no notification)."""
        return (
            self.transition(project, alert.id, ("active",), "active", now, details=details, message=message)
            is not None
        )

    def inbox(
        self,
        project: str,
        *,
        status: str = "active",
        alert_type: str | None = None,
        severity: str | None = None,
        dataset_name: str | None = None,
        rule_id: int | None = None,
        pipeline_id: int | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[Alert], str | None]:
        """Newest first, one state's partition of the Status index, the other filters as a
        FilterExpression; reads page after page (at most `MAX_READS`) until `limit` match."""
        wanted = {
            "type": alert_type,
            "severity": severity,
            "dataset_name": dataset_name,
            "rule_id": rule_id,
            "pipeline_id": pipeline_id,
        }
        filters, names, values = [], {}, {}
        for i, (attr, value) in enumerate((a, v) for a, v in wanted.items() if v is not None):
            filters.append(f"#q{i} = :q{i}")
            names[f"#q{i}"], values[f":q{i}"] = attr, value
        filter_ = Condition(" AND ".join(filters), names, values) if filters else None
        partition = keys.alerts_in_status(project, status)
        found: list[dict[str, Any]] = []
        next_cursor = cursor
        for _ in range(MAX_READS):
            page = self.table.query(
                partition,
                index=keys.ALERT_STATUS_INDEX,
                begins_with="AL#",
                forward=False,
                limit=limit,
                cursor=next_cursor,
                filter_=filter_,
            )
            found.extend(page.items)
            next_cursor = page.cursor
            if len(found) >= limit or not next_cursor:
                break
        if len(found) > limit:
            found = found[:limit]
            last = found[-1]
            next_cursor = encode_cursor(serialize({k: last[k] for k in ("PK", "SK", "StatusPK", "StatusSK")}))
        return [alert_from_item(i) for i in found], next_cursor

    def active_types(self, project: str) -> dict[str, int]:
        """Active alerts per type: a Query of the active partition only, fetching just `type`."""
        counts: dict[str, int] = {}
        params: dict[str, Any] = {
            "TableName": self.table.name,
            "IndexName": keys.ALERT_STATUS_INDEX,
            "KeyConditionExpression": "StatusPK = :pk",
            "ExpressionAttributeValues": serialize({":pk": keys.alerts_in_status(project, "active")}),
            "ProjectionExpression": "#t",
            "ExpressionAttributeNames": {"#t": "type"},
        }
        while True:
            result = self.table.client.query(**params)
            for item in result.get("Items", []):
                kind = deserialize(item).get("type", "")
                counts[kind] = counts.get(kind, 0) + 1
            if not result.get("LastEvaluatedKey"):
                return counts
            params["ExclusiveStartKey"] = result["LastEvaluatedKey"]

    def _query(
        self, pk: str, index: str | None, limit: int, cursor: str | None, filter_: Condition | None
    ) -> Page:
        return self.table.query(
            pk, index=index, begins_with="AL#", forward=False, limit=limit, cursor=cursor, filter_=filter_
        )


def alert_item(alert: Alert) -> dict[str, Any]:
    pk, sk = keys.alert(alert.project, alert.id)
    item: dict[str, Any] = {
        "PK": pk,
        "SK": sk,
        "GSI1PK": keys.alerts_of_type(alert.project, alert.type),
        "GSI1SK": sk,
        "kind": "alert",
        "project": alert.project,
        "id": alert.id,
        "type": alert.type,
        "severity": alert.severity,
        "status": alert.status,
        "message": alert.message,
        "pipeline_id": alert.pipeline_id,
        "created_at": timeutil.iso(alert.created_at),
        # JSON keeps numbers as given (a DynamoDB map would turn 14.0 into 14).
        "details": json.dumps(alert.details, separators=(",", ":"), default=str),
    }
    if alert.pipeline_id is not None:
        item["GSI2PK"] = keys.alerts_of_pipeline(alert.project, alert.pipeline_id)
        item["GSI2SK"] = sk
    item["StatusPK"] = keys.alerts_in_status(alert.project, alert.status)
    item["StatusSK"] = sk
    for name in ("dataset_name", "rule_id", "run_id", "closed_by"):
        if getattr(alert, name) is not None:
            item[name] = getattr(alert, name)
    if alert.updated_at is not None:
        item["updated_at"] = timeutil.iso(alert.updated_at)
    return item


def alert_from_item(item: dict[str, Any]) -> Alert:
    details = item.get("details")
    return Alert(
        id=int(item["id"]),
        project=item["project"],
        type=item["type"],
        severity=item["severity"],
        message=item.get("message", ""),
        created_at=timeutil.from_stored(item["created_at"]),
        pipeline_id=item.get("pipeline_id"),
        status=item.get("status", "active"),
        details=json.loads(details) if isinstance(details, str) else (details or {}),
        dataset_name=item.get("dataset_name"),
        rule_id=int(item["rule_id"]) if item.get("rule_id") is not None else None,
        run_id=int(item["run_id"]) if item.get("run_id") is not None else None,
        updated_at=timeutil.from_stored(item["updated_at"]) if item.get("updated_at") else None,
        closed_by=item.get("closed_by"),
    )


def _run_number(value: Any) -> int:
    text = str(value)
    return int(text.split("-")[-1])
