"""Where a pipeline's cron schedule lives outside DynamoDB: one EventBridge Scheduler schedule each
(the adapters of sluice.domain.pipelines.Schedules).

The schedule fires `PipelineScheduleFunction` (functions/pipelines/jobs.py) with
`{"project", "pipeline_id", "scheduled_time"}`; it is enabled only while the pipeline is active.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from sluice import aws
from sluice.domain.schedules import to_eventbridge_cron
from sluice.errors import Unavailable

MAX_NAME = 64
GROUP = "default"
_UNSAFE = re.compile(r"[^0-9A-Za-z_.-]")

logger = Logger(service="sluice")


def schedule_name(project: str, pipeline_id: int) -> str:
    """`sluice-<project>-<id>` in EventBridge's characters; a long project is cut and hashed so
    two projects never share a name."""
    name = _UNSAFE.sub("_", f"sluice-{project}-{pipeline_id}")
    if len(name) <= MAX_NAME and _UNSAFE.sub("_", project) == project:
        return name
    suffix = f"-{hashlib.sha256(project.encode()).hexdigest()[:10]}-{pipeline_id}"
    head = _UNSAFE.sub("_", f"sluice-{project}")[: MAX_NAME - len(suffix)]
    return head + suffix


class EventBridgeSchedules:
    """The schedules as EventBridge Scheduler holds them (moto's `scheduler` in tests and locally)."""

    def __init__(self, target_arn: str, role_arn: str, client: Any | None = None):
        self.target_arn = target_arn
        self.role_arn = role_arn
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or aws.client("scheduler")

    def put(self, project: str, pipeline_id: int, cron: str, enabled: bool) -> None:
        name = schedule_name(project, pipeline_id)
        definition = {
            "Name": name,
            "GroupName": GROUP,
            "ScheduleExpression": to_eventbridge_cron(cron),
            "ScheduleExpressionTimezone": "UTC",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "State": "ENABLED" if enabled else "DISABLED",
            "Description": f"Sluice pipeline {pipeline_id} of project {project}",
            "Target": {
                "Arn": self.target_arn,
                "RoleArn": self.role_arn,
                # The scheduled time makes a repeated delivery of one firing recognisable.
                "Input": json.dumps(
                    {
                        "project": project,
                        "pipeline_id": pipeline_id,
                        "scheduled_time": "<aws.scheduler.scheduled-time>",
                    }
                ),
            },
        }
        try:
            try:
                self.client.update_schedule(**definition)
            except ClientError as exc:
                if _code(exc) != "ResourceNotFoundException":
                    raise
                self.client.create_schedule(**definition)
        except (ClientError, BotoCoreError) as exc:
            logger.error("schedule not saved", extra={"schedule": name, "reason": str(exc)})
            raise Unavailable(
                f"EventBridge Scheduler did not accept the schedule of pipeline {pipeline_id}; retry."
            ) from exc

    def remove(self, project: str, pipeline_id: int) -> None:
        name = schedule_name(project, pipeline_id)
        try:
            self.client.delete_schedule(Name=name, GroupName=GROUP)
        except ClientError as exc:
            if _code(exc) == "ResourceNotFoundException":
                return
            logger.error("schedule not deleted", extra={"schedule": name, "reason": str(exc)})
            raise Unavailable(f"EventBridge Scheduler did not delete schedule {name}; retry.") from exc
        except BotoCoreError as exc:
            raise Unavailable(f"EventBridge Scheduler could not be reached to delete {name}; retry.") from exc


class UnscheduledPipelines:
    """No scheduler configured (PIPELINE_SCHEDULE_TARGET_ARN unset): schedules live only in the
    pipeline's `schedule` and `next_run_at`, and nothing fires them."""

    def put(self, project: str, pipeline_id: int, cron: str, enabled: bool) -> None:
        logger.warning(
            "no scheduler configured; schedule kept only in DynamoDB", extra={"pipeline": pipeline_id}
        )

    def remove(self, project: str, pipeline_id: int) -> None:
        return None


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")
