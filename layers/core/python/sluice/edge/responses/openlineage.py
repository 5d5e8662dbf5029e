"""What `POST /api/v1/lineage` answers: per event, whether it was applied or a duplicate."""

from __future__ import annotations

from sluice.edge.responses import Answer


class IngestedEvent(Answer):
    runId: str  # noqa: N815 - OpenLineage's spelling, as sent
    eventType: str  # noqa: N815
    eventTime: str  # noqa: N815
    status: str  # applied | duplicate
    execution_id: int | None = None  # the Watcher execution that stands for the run


class LineageIngested(Answer):
    received: int
    applied: int
    duplicates: int
    events: list[IngestedEvent]
