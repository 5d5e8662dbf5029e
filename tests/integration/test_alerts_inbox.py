"""The alerts inbox on moto (issue 13): the Status index lists one state newest first, filtered
pages fill themselves and resume without loss or repeat, moves are conditional, and another
project's alerts are never reached."""

from __future__ import annotations

import pendulum
import pytest

from sluice.domain.alerts import Alert
from sluice.errors import ValidationFailed
from sluice.store.alerts import AlertRepository, alert_item

NOW = pendulum.datetime(2026, 6, 1, tz="UTC")


def seed(table, project="acme", count=30):
    items = [
        alert_item(
            Alert(
                id=n,
                project=project,
                type="anomaly" if n % 3 == 0 else "data_quality",
                severity="warning",
                message=f"alert {n}",
                created_at=NOW.add(minutes=n),
                pipeline_id=1,
                status="resolved" if n % 5 == 0 else "active",
                dataset_name="orders",
                rule_id=n % 4,
            )
        )
        for n in range(1, count + 1)
    ]
    table.batch_write(puts=items)


def test_filtered_pages_fill_and_resume_without_loss_or_repeat(table):
    seed(table)
    repo = AlertRepository(table)
    expected = [n for n in range(30, 0, -1) if n % 3 == 0 and n % 5 != 0]
    seen, cursor = [], None
    while True:
        page, cursor = repo.inbox("acme", alert_type="anomaly", limit=3, cursor=cursor)
        assert len(page) <= 3
        seen += [a.id for a in page]
        if not cursor:
            break
    assert seen == expected
    resolved, _ = repo.inbox("acme", status="resolved", limit=50)
    assert [a.id for a in resolved] == [30, 25, 20, 15, 10, 5]
    assert repo.active_types("acme") == {"anomaly": len(expected), "data_quality": 24 - len(expected)}


def test_moves_are_conditional_and_stay_in_their_project(table):
    seed(table)
    seed(table, project="other", count=3)
    repo = AlertRepository(table)
    moved = repo.transition("acme", 1, ("active",), "dismissed", NOW, by="user")
    assert moved.status == "dismissed" and moved.closed_by == "user"
    assert repo.transition("acme", 1, ("active",), "dismissed", NOW) is None
    assert repo.transition("acme", 5, ("active", "dismissed"), "resolved", NOW) is None  # already resolved
    assert repo.transition("acme", 999, ("active",), "resolved", NOW) is None
    assert [a.id for a in repo.inbox("acme", status="dismissed")[0]] == [1]
    back = repo.transition("acme", 1, ("dismissed",), "active", NOW, details={"run_id": "run-7"})
    assert back.status == "active" and back.run_id == 7 and back.closed_by is None
    assert [a.id for a in repo.inbox("other", limit=10)[0]] == [3, 2, 1]
    _, cursor = repo.inbox("acme", limit=2)
    with pytest.raises(ValidationFailed):
        repo.inbox("other", limit=2, cursor=cursor)


def test_a_queue_depth_alert_is_in_the_inbox_and_counted(table):
    from sluice.domain.alerts import Alerting
    from sluice.domain.events import QueueDepth, RecordingPublisher
    from sluice.domain.inbox import list_alerts, type_counts
    from sluice.domain.monitoring import monitor_queue

    class Deep:
        def depth(self):
            return QueueDepth(visible=120, in_flight=3, delayed=0)

    repo = AlertRepository(table)
    monitor_queue(["acme"], Deep(), Alerting(repo, RecordingPublisher()), pendulum.now("UTC"))
    (alert,) = list_alerts("acme", repo, alert_type="queue")["data"]
    assert alert["severity"] == "critical" and "123 pending runs" in alert["reason"]
    assert type_counts("acme", repo) == [{"type": "queue", "count": 1}]
