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
