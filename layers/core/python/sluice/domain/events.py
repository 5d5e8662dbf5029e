"""The domain's outgoing messages: the events it publishes and the queue depth it reads, as ports.

The adapters (sluice.adapters.events, sluice.adapters.queues) put them on EventBridge and SQS;
unit tests pass the recording publisher below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from sluice.errors import Unavailable

EXECUTION_ENDED = "execution.ended"
ALERT_RAISED = "alert.raised"


class EventPublisher(Protocol):
    """Publishes one domain event; raises Unavailable when the bus cannot take it."""

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None: ...


@dataclass
class RecordingPublisher:
    """In-memory publisher for unit tests: keeps (detail_type, detail) pairs in order."""

    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    fail: bool = False
    batches: list[int] = field(default_factory=list)  # the size of each publish_many

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        if self.fail:
            raise Unavailable("The event bus could not be reached (test double).")
        self.events.append((detail_type, detail))

    def publish_many(self, detail_type: str, details: list[dict[str, Any]]) -> None:
        if self.fail:
            raise Unavailable("The event bus could not be reached (test double).")
        self.batches.append(len(details))
        self.events += [(detail_type, d) for d in details]

    def of_type(self, detail_type: str) -> list[dict[str, Any]]:
        return [detail for kind, detail in self.events if kind == detail_type]


@dataclass(frozen=True)
class QueueDepth:
    """The approximate message counts of a queue (the run queue's, for the queue monitor)."""

    visible: int
    in_flight: int
    delayed: int

    @property
    def total_pending(self) -> int:
        return self.visible + self.in_flight + self.delayed


def publish_all(publisher: EventPublisher, detail_type: str, details: list[dict[str, Any]]) -> None:
    """Many events of one type: in batches where the publisher has `publish_many` (EventBridge:
    10 entries to a PutEvents), else one by one."""
    if not details:
        return
    many = getattr(publisher, "publish_many", None)
    if many is not None:
        many(detail_type, details)
        return
    for detail in details:
        publisher.publish(detail_type, detail)
