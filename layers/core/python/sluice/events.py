"""Messages outside the table: domain events on the event bus and the SQS queues monitors use.

Each is a small port with an AWS adapter and, for the event publisher, a recording fake that
unit tests pass instead; failures surface as `Unavailable`, never as botocore errors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from sluice import aws
from sluice.config import settings
from sluice.errors import Unavailable

SOURCE = "sluice"
EXECUTION_ENDED = "execution.ended"
ALERT_RAISED = "alert.raised"


class EventPublisher(Protocol):
    def publish(self, detail_type: str, detail: dict[str, Any]) -> None: ...


class EventBridgePublisher:
    """Puts one event on the Sluice bus (EVENT_BUS_NAME) with Source `sluice`."""

    def __init__(self, bus_name: str | None = None):
        self.bus_name = bus_name if bus_name is not None else settings().event_bus_name

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        if not self.bus_name:
            raise Unavailable("No event bus is configured (EVENT_BUS_NAME is empty).")
        entry = {
            "Source": SOURCE,
            "DetailType": detail_type,
            "Detail": json.dumps(detail, separators=(",", ":"), default=str),
            "EventBusName": self.bus_name,
        }
        try:
            result = aws.client("events").put_events(Entries=[entry])
        except (ClientError, BotoCoreError) as exc:
            raise Unavailable(f"The event bus could not be reached: {exc}") from exc
        if result.get("FailedEntryCount"):
            failed = (result.get("Entries") or [{}])[0]
            raise Unavailable(
                f"The event bus refused the {detail_type} event: {failed.get('ErrorMessage', 'unknown error')}."
            )


@dataclass
class RecordingPublisher:
    """In-memory publisher for unit tests: keeps (detail_type, detail) pairs in order."""

    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    fail: bool = False

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        if self.fail:
            raise Unavailable("The event bus could not be reached (test double).")
        self.events.append((detail_type, detail))

    def of_type(self, detail_type: str) -> list[dict[str, Any]]:
        return [detail for kind, detail in self.events if kind == detail_type]


# -- queues -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QueueDepth:
    visible: int
    in_flight: int
    delayed: int

    @property
    def total_pending(self) -> int:
        return self.visible + self.in_flight + self.delayed


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
