"""The SQS queues: the FIFO run queue (pending runs, in trigger order per project), the check queue
(timeliness and freshness requests) and the run queue's depth for the queue monitor.

Each implements a domain port (RunQueue, CheckQueue, QueueReader); failures surface as
`Unavailable`, never as botocore errors.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from sluice import aws
from sluice.config import settings
from sluice.domain.events import QueueDepth
from sluice.errors import Unavailable

logger = Logger(service="sluice")


class SqsRunQueue:
    """Pending runs in the FIFO run queue: one message group per project keeps its runs in order."""

    def __init__(self, queue_url: str | None = None):
        self.queue_url = queue_url or settings().run_queue_url

    def send(self, project: str, run_id: int, resend: int = 0) -> None:
        if not self.queue_url:
            raise Unavailable("RUN_QUEUE_URL is not set.")
        # Each re-send has a deduplication id of its own: SQS would drop a re-send inside its
        # 5-minute window under the first send's id, lost message or not.
        deduplication = f"{project}-{run_id}" + (f"-r{resend}" if resend else "")
        aws.client("sqs").send_message(
            QueueUrl=self.queue_url,
            MessageBody=json.dumps({"project": project, "run_id": run_id}),
            MessageGroupId=project,
            MessageDeduplicationId=deduplication,
        )

    def retry_soon(self, receipt_handle: str, seconds: int) -> None:
        """Make a received message visible again after `seconds` (a run that found every slot
        taken); if that fails, it still returns after the queue's visibility timeout."""
        try:
            aws.client("sqs").change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
            )
        except Exception:  # noqa: BLE001 - the message comes back either way, only later
            logger.warning("could not shorten a waiting run's visibility timeout")


class SqsQueueDepth:
    """Reads the approximate message counts of one SQS queue (the run queue by default)."""

    def __init__(self, queue_url: str | None = None):
        self.queue_url = queue_url if queue_url is not None else settings().run_queue_url

    def depth(self) -> QueueDepth:
        if not self.queue_url:
            raise Unavailable("No run queue is configured (RUN_QUEUE_URL is empty).")
        try:
            attributes = aws.client("sqs").get_queue_attributes(
                QueueUrl=self.queue_url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )["Attributes"]
        except (ClientError, BotoCoreError) as exc:
            raise Unavailable(f"The run queue could not be read: {exc}") from exc
        return QueueDepth(
            visible=int(attributes.get("ApproximateNumberOfMessages", 0)),
            in_flight=int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
            delayed=int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
        )


class SqsCheckQueue:
    """Sends check requests (timeliness, freshness) to the check queue (CHECK_QUEUE_URL)."""

    def __init__(self, queue_url: str | None = None):
        self.queue_url = queue_url if queue_url is not None else settings().check_queue_url

    def send(self, message: dict[str, Any]) -> None:
        if not self.queue_url:
            raise Unavailable(
                "The check queue is not configured (CHECK_QUEUE_URL is empty); try again later."
            )
        try:
            aws.client("sqs").send_message(
                QueueUrl=self.queue_url, MessageBody=json.dumps(message, separators=(",", ":"))
            )
        except (ClientError, BotoCoreError) as exc:
            raise Unavailable(
                "The check queue could not be reached, so the check was not queued; try again shortly."
            ) from exc
