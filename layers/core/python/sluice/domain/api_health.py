"""API health (seed 000 `GET /api/pipeline/api-health`, SPEC 8): per API area, over the last hour,
requests, error rate (percent of 5xx answers), client-error rate (percent of 4xx), median and p95
latency, from what each area records about itself: the caller's project's requests only (one
project never sees how much another uses Sluice).

In AWS each area's handler emits EMF metrics (Requests, Errors, ClientErrors, Latency; namespace
Sluice, dimensions `service` = the area and `project` = the authorized caller's project), read back
from CloudWatch in one GetMetricData call. In the local stack (metrics disabled) the same figures are
kept in the process that serves every area (`RECORDER`): no write per request either way. Requests
without an authorized project (refused tokens, public routes) are counted under no project.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any, Protocol

WINDOW_SECONDS = 3600
AREAS = ("platform", "pipelines", "lineage", "runs", "monitor")
KEEP = 200_000  # requests the local recorder keeps at most (an hour of a busy local stack)


class ApiHealthSource(Protocol):
    def health(self, project: str, areas: Iterable[str], window_seconds: int) -> list[dict[str, Any]]: ...


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (what CloudWatch's pNN statistics approximate)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(
    area: str, requests: int, errors: int, client_errors: int, p50: float | None, p95: float | None
) -> dict[str, Any]:
    return {
        "router": area,
        "requests": requests,
        "error_rate": round(100 * errors / requests, 2) if requests else 0.0,
        "client_error_rate": round(100 * client_errors / requests, 2) if requests else 0.0,
        "median_latency_ms": round(p50, 2) if p50 is not None else None,
        "p95_latency_ms": round(p95, 2) if p95 is not None else None,
    }


class LocalRecorder:
    """The figures of every request this process served, for the last WINDOW_SECONDS."""

    def __init__(self, keep: int = KEEP, clock: Any = time.time):
        self._requests: deque[tuple[float, str, int, float, str | None]] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self._clock = clock

    def record(self, area: str, status: int, latency_ms: float, project: str | None = None) -> None:
        with self._lock:
            self._requests.append((self._clock(), area, status, latency_ms, project))

    def health(
        self, project: str, areas: Iterable[str], window_seconds: int = WINDOW_SECONDS
    ) -> list[dict[str, Any]]:
        since = self._clock() - window_seconds
        with self._lock:
            while self._requests and self._requests[0][0] < since:
                self._requests.popleft()
            recent = list(self._requests)
        report = []
        for area in areas:
            mine = [r for r in recent if r[1] == area and r[4] == project]
            latencies = [r[3] for r in mine]
            report.append(
                summary(
                    area,
                    len(mine),
                    sum(1 for r in mine if r[2] >= 500),
                    sum(1 for r in mine if 400 <= r[2] < 500),
                    percentile(latencies, 50),
                    percentile(latencies, 95),
                )
            )
        return report


RECORDER = LocalRecorder()


def api_health(source: ApiHealthSource, project: str, window_seconds: int = WINDOW_SECONDS) -> dict[str, Any]:
    return {"window_seconds": window_seconds, "routers": source.health(project, AREAS, window_seconds)}


def caller_project(event: dict[str, Any]) -> str | None:
    """The project the authorizer resolved for an HTTP API event (None when refused or public)."""
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    context = authorizer.get("lambda") or {}
    return context.get("project") if not context.get("denied") else None
