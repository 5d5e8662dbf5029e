"""Domain events on the Sluice bus: the EventBridge adapter of sluice.domain.events.EventPublisher.

Failures surface as `Unavailable`, never as botocore errors.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from sluice import aws
from sluice.config import settings
from sluice.errors import Unavailable

SOURCE = "sluice"
MAX_ENTRIES = 10  # PutEvents takes at most 10 entries


class EventBridgePublisher:
    """Puts one event on the Sluice bus (EVENT_BUS_NAME) with Source `sluice`."""

    def __init__(self, bus_name: str | None = None):
        self.bus_name = bus_name if bus_name is not None else settings().event_bus_name

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        self.publish_many(detail_type, [detail])

    def publish_many(self, detail_type: str, details: list[dict[str, Any]]) -> None:
        """The events in PutEvents calls of at most 10 entries (EventBridge's limit); entries a call
        refuses are sent once more, then Unavailable names how many were lost."""
        if not self.bus_name:
            raise Unavailable("No event bus is configured (EVENT_BUS_NAME is empty).")
        entries = [
            {
                "Source": SOURCE,
                "DetailType": detail_type,
                "Detail": json.dumps(detail, separators=(",", ":"), default=str),
                "EventBusName": self.bus_name,
            }
            for detail in details
        ]
        lost: list[str] = []
        for start in range(0, len(entries), MAX_ENTRIES):
            pending = entries[start : start + MAX_ENTRIES]
            for attempt in range(2):
                try:
                    result = aws.client("events").put_events(Entries=pending)
                except (ClientError, BotoCoreError) as exc:
                    raise Unavailable(f"The event bus could not be reached: {exc}") from exc
                if not result.get("FailedEntryCount"):
                    break
                answers = result.get("Entries") or []
                failed = [(e, a) for e, a in zip(pending, answers, strict=False) if a.get("ErrorCode")]
                pending = [e for e, _ in failed]
                if attempt == 1 or not pending:
                    lost += [a.get("ErrorMessage", "unknown error") for _, a in failed]
        if lost:
            raise Unavailable(f"The event bus refused {len(lost)} {detail_type} event(s): {lost[0]}.")
