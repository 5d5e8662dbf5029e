"""The template's schedules fire in the local stack: timeliness, freshness, queue monitor and the
log-cleanup state machine all run with nobody calling them (schedules shortened to seconds)."""

from __future__ import annotations

import pendulum

from tests.e2e.conftest import WebhookReceiver, eventually, jwt_for, queue_backlog, start_stack


def iso(moment: pendulum.DateTime) -> str:
    return moment.in_timezone("UTC").format("YYYY-MM-DDTHH:mm:ss") + "Z"


def test_scheduled_jobs_fire_without_being_called():
    receiver = WebhookReceiver()
    stack = start_stack(
        "--ephemeral",
        "--param",
        f"AlertWebhookUrl={receiver.url}",
        "--param",
        "TimelinessSchedule=rate(2 seconds)",
        "--param",
        "FreshnessSchedule=rate(2 seconds)",
        "--param",
        "QueueMonitorSchedule=rate(2 seconds)",
        "--param",
        "LogCleanupSchedule=rate(2 seconds)",
    )
    try:
        project = "scheduled"
        with stack.client(jwt_for(project, "editor")) as editor:
            # 60 real runs wait in the run queue: the project has no free execution slot (made
            # first: it takes seconds, during which the stale pipeline below must not yet exist)
            queue_backlog(stack, editor, project, 60)
            now = pendulum.now("UTC")
            late = editor.post(
                "/pipeline",
                json={
                    "name": "late",
                    "pipeline_type_name": "t",
                    "timeliness_number": 1,
                    "timeliness_datepart": "minute",
                },
            ).json()["id"]
            editor.post(
                "/start_pipeline_execution",
                json={"pipeline_id": late, "start_date": iso(now.subtract(minutes=10))},
            )

            stale = editor.post(
                "/pipeline",
                json={
                    "name": "stale",
                    "pipeline_type_name": "t",
                    "freshness_number": 1,
                    "freshness_datepart": "hour",
                },
            ).json()["id"]
            # Its last load ended three hours ago: stale, but young enough for log cleanup to keep
            loaded = editor.post(
                "/start_pipeline_execution",
                json={"pipeline_id": stale, "start_date": iso(now.subtract(hours=3))},
            )
            editor.post(
                "/end_pipeline_execution",
                json={
                    "id": loaded.json()["id"],
                    "end_date": iso(now.subtract(hours=3).add(minutes=1)),
                    "completed_successfully": True,
                    "inserts": 3,
                },
            )
            # And a pipeline with no freshness rule has an execution past the 90 days log cleanup keeps
            archived = editor.post("/pipeline", json={"name": "archived", "pipeline_type_name": "t"}).json()[
                "id"
            ]
            old = editor.post(
                "/start_pipeline_execution",
                json={"pipeline_id": archived, "start_date": iso(now.subtract(days=100))},
            )
            editor.post(
                "/end_pipeline_execution",
                json={
                    "id": old.json()["id"],
                    "end_date": iso(now.subtract(days=100).add(minutes=1)),
                    "completed_successfully": True,
                    "inserts": 3,
                },
            )

            # Then, with no request from us, each job does its work
            eventually(lambda: receiver.alerts(project, "timeliness", late), timeout=30)
            eventually(lambda: receiver.alerts(project, "freshness", stale), timeout=30)
            eventually(lambda: receiver.alerts(project, "queue"), timeout=30)
            eventually(
                lambda: editor.get(f"/pipeline_execution/{old.json()['id']}").status_code == 404, timeout=30
            )
            # The schedules keep firing, but each late run / stale load is alerted once
            assert len(receiver.alerts(project, "timeliness", late)) == 1
            assert len(receiver.alerts(project, "freshness", stale)) == 1
    finally:
        stack.stop()
        receiver.close()
