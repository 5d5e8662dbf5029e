"""The one alerts inbox (SPEC 1): every kind of alert (data quality, z-score anomalies, stale
pipelines, late executions, the run queue) listed, counted, dismissed and resolved alike.

States: active -> dismissed (acknowledged; a data-quality alert comes back when a later run's
observed value differs), active | dismissed -> resolved (closed). Each move is one conditional
write: two concurrent callers end in one state; dismissing a resolved alert is a 409.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Protocol

from sluice import timeutil
from sluice.domain import ids
from sluice.domain.alerts import ALERT_TYPES, SEVERITIES, STATUSES, Alert
from sluice.errors import Conflict, NotFound, SluiceError, ValidationFailed

ALERT_KIND = "alert"
MAX_PAGE = 200


class Inbox(Protocol):
    def get(self, project: str, alert_id: int) -> Alert | None: ...
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
    ) -> Alert | None: ...
    def inbox(self, project: str, **filters: Any) -> tuple[list[Alert], str | None]: ...
    def active_types(self, project: str) -> dict[str, int]: ...


def inbox_view(alert: Alert) -> dict[str, Any]:
    """An alert on `/api/pipeline/anomalies`: ids rendered as on every `/api/*` path, the
    sentence saying why beside the details it comes from."""
    details = alert.details or {}
    rule_id = ids.render("rule", alert.rule_id) if alert.rule_id is not None else None
    return {
        "id": ids.render(ALERT_KIND, alert.id),
        "type": alert.type,
        "severity": alert.severity,
        "status": alert.status,
        "message": alert.message,
        "reason": details.get("reason") or alert.message,
        "dataset_name": alert.dataset_name,
        "rule_id": rule_id,
        "pipeline_id": ids.render("pipeline", alert.pipeline_id) if alert.pipeline_id is not None else None,
        "run_id": ids.render("run", alert.run_id) if alert.run_id is not None else None,
        "observed_rate": details.get("observed_rate"),
        "created_at": timeutil.iso(alert.created_at),
        "updated_at": timeutil.iso(alert.updated_at),
        "closed_by": alert.closed_by,
        "details": details,
    }


def list_alerts(
    project: str,
    inbox: Inbox,
    *,
    status: str | None = None,
    alert_type: str | None = None,
    severity: str | None = None,
    dataset_name: str | None = None,
    rule_id: str | None = None,
    pipeline_id: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    status = (status or "active").strip().lower()
    if status not in STATUSES:
        raise ValidationFailed(f"status must be one of {', '.join(STATUSES)}.")
    if alert_type is not None and alert_type not in ALERT_TYPES:
        raise ValidationFailed(f"type must be one of {', '.join(ALERT_TYPES)}.")
    if severity is not None and severity.lower() not in SEVERITIES:
        raise ValidationFailed(f"severity must be one of {', '.join(SEVERITIES)}.")
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationFailed(f"limit must be between 1 and {MAX_PAGE}.")
    alerts, next_cursor = inbox.inbox(
        project,
        status=status,
        alert_type=alert_type,
        severity=severity.lower() if severity else None,
        dataset_name=dataset_name,
        rule_id=ids.parse("rule", rule_id) if rule_id is not None else None,
        pipeline_id=ids.parse("pipeline", pipeline_id) if pipeline_id is not None else None,
        limit=limit,
        cursor=cursor,
    )
    return {"data": [inbox_view(a) for a in alerts], "next_cursor": next_cursor}


def type_counts(project: str, inbox: Inbox) -> list[dict[str, Any]]:
    counts = inbox.active_types(project)
    return [{"type": kind, "count": counts[kind]} for kind in sorted(counts) if counts[kind]]


def _number(ref: str | int) -> int:
    try:
        return ids.parse(ALERT_KIND, ref)
    except SluiceError:
        raise NotFound(f"Alert '{ref}' not found.") from None


MOVES = {"dismissed": ("active",), "resolved": ("active", "dismissed")}


def move(project: str, ref: str | int, to_status: str, inbox: Inbox, now: _dt.datetime) -> Alert:
    """Dismiss or resolve one alert; the same move twice answers the alert as it is."""
    number = _number(ref)
    moved = inbox.transition(project, number, MOVES[to_status], to_status, now, by="user")
    if moved is not None:
        return moved
    current = inbox.get(project, number)
    if current is None:
        raise NotFound(f"Alert {ids.render(ALERT_KIND, number)} not found.")
    if current.status == to_status:
        return current
    raise Conflict(
        f"Alert {ids.render(ALERT_KIND, number)} is {current.status}; it cannot be "
        f"{'dismissed' if to_status == 'dismissed' else 'resolved'}."
    )


def move_many(
    project: str, refs: list[str | int], to_status: str, inbox: Inbox, now: _dt.datetime
) -> dict[str, int]:
    """Bulk forms: ids that are unknown, of another project or already past the move are not
    updated and only counted."""
    updated = 0
    seen: set[int] = set()
    for ref in refs:
        try:
            number = ids.parse(ALERT_KIND, ref)
        except SluiceError:
            continue
        if number in seen:
            continue
        seen.add(number)
        if inbox.transition(project, number, MOVES[to_status], to_status, now, by="user") is not None:
            updated += 1
    return {"updated": updated, "not_updated": len(refs) - updated}
