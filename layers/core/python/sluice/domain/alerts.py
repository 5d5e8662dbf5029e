"""Alerts: what every check raises (anomaly, freshness, timeliness, queue), and how it is announced."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, Protocol

from aws_lambda_powertools import Logger

from sluice import timeutil
from sluice.domain.events import ALERT_RAISED, EventPublisher
from sluice.errors import Unavailable

ALERT_TYPES = ("anomaly", "freshness", "timeliness", "queue", "data_quality")
SEVERITIES = ("info", "warning", "critical")
STATUSES = ("active", "dismissed", "resolved")

logger = Logger(service="sluice")


@dataclass(frozen=True)
class Alert:
    id: int
    project: str
    type: str
    severity: str
    message: str
    created_at: _dt.datetime
    pipeline_id: int | None = None
    status: str = "active"
    details: dict[str, Any] = field(default_factory=dict)
    # Data-quality alerts name their dataset, rule and the run that wrote the data.
    dataset_name: str | None = None
    rule_id: int | None = None
    run_id: int | None = None
    updated_at: _dt.datetime | None = None
    closed_by: str | None = None

    def view(self) -> dict[str, Any]:
        body = {
            "id": self.id,
            "type": self.type,
            "severity": self.severity,
            "pipeline_id": self.pipeline_id,
            "status": self.status,
            "message": self.message,
            "created_at": timeutil.iso(self.created_at),
            "details": self.details,
        }
        if self.type == "data_quality":
            body.update(dataset_name=self.dataset_name, rule_id=self.rule_id, run_id=self.run_id)
        return body


class AlertStore(Protocol):
    def next_alert_id(self, project: str) -> int: ...

    def add(
        self, alert: Alert, once_key: str | None = None, once_for: _dt.timedelta | None = None
    ) -> bool: ...


class Notifier(Protocol):
    def notify(self, alert: Alert) -> None: ...


class SilentNotifier:
    """No notification target configured."""

    def notify(self, alert: Alert) -> None:
        return None


class Alerting:
    """Drafts alerts, stores them, and announces them on the bus and to the notification target.

    Announcing never fails the check that raised the alert: the alert is already stored, and a
    bus or webhook outage is logged instead.
    """

    def __init__(self, store: AlertStore, publisher: EventPublisher, notifier: Notifier | None = None):
        self.store = store
        self.publisher = publisher
        self.notifier = notifier or SilentNotifier()

    def draft(
        self,
        project: str,
        alert_type: str,
        severity: str,
        message: str,
        now: _dt.datetime,
        pipeline_id: int | None = None,
        details: dict[str, Any] | None = None,
        dataset_name: str | None = None,
        rule_id: int | None = None,
        run_id: int | None = None,
    ) -> Alert:
        if alert_type not in ALERT_TYPES:
            raise ValueError(f"unknown alert type {alert_type!r}")
        if severity not in SEVERITIES:
            raise ValueError(f"unknown severity {severity!r}")
        return Alert(
            id=self.store.next_alert_id(project),
            project=project,
            type=alert_type,
            severity=severity,
            message=message,
            created_at=now,
            pipeline_id=pipeline_id,
            details=details or {},
            dataset_name=dataset_name,
            rule_id=rule_id,
            run_id=run_id,
        )

    def raise_alert(
        self, alert: Alert, once_key: str | None = None, once_for: _dt.timedelta | None = None
    ) -> bool:
        """Store and announce `alert`; with `once_key`, only if no alert with that key is live."""
        if not self.store.add(alert, once_key=once_key, once_for=once_for):
            return False
        self.announce(alert)
        return True

    def announce(self, alert: Alert) -> None:
        try:
            self.publisher.publish(ALERT_RAISED, {"project": alert.project, "alert": alert.view()})
        except Unavailable as exc:
            logger.warning("alert not published", extra={"alert_id": alert.id, "reason": exc.detail})
        try:
            self.notifier.notify(alert)
        except Exception:  # a notification target must never break a check
            logger.exception("alert notification failed", extra={"alert_id": alert.id})


def alert_text(alert: Alert) -> str:
    """The one-line human rendering used by chat notifications."""
    subject = f" (pipeline {alert.pipeline_id})" if alert.pipeline_id is not None else ""
    return f"[{alert.severity.upper()}] Sluice {alert.type} alert in project {alert.project}{subject}: {alert.message}"
