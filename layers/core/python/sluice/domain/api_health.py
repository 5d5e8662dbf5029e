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

import bisect
import math
import threading
import time
from array import array
from collections.abc import Iterable
from typing import Any, Protocol

WINDOW_SECONDS = 3600
AREAS = ("platform", "pipelines", "lineage", "runs", "monitor")
KEEP = 200_000  # requests the local recorder keeps at most per area and project
EVICT_SLACK_SECONDS = 60  # how far past the window the oldest request may be before a batch is dropped


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


class _Series:
    """One area's requests of one project, oldest first: 14 bytes a request in three arrays, where a
    tuple per request cost ~150 (the local stack records every request it serves)."""

    __slots__ = ("latencies", "statuses", "times")

    def __init__(self) -> None:
        self.times = array("d")
        self.latencies = array("f")
        self.statuses = array("H")

    def append(self, at: float, status: int, latency_ms: float) -> None:
        self.times.append(at)
        self.latencies.append(latency_ms)
        self.statuses.append(status)

    def drop_first(self, count: int) -> None:
        del self.times[:count], self.latencies[:count], self.statuses[:count]

    def since(self, start: float) -> tuple[array[float], array[int]]:
        first = bisect.bisect_left(self.times, start)
        return self.latencies[first:], self.statuses[first:]


class LocalRecorder:
    """The figures of every request this process served, for the last WINDOW_SECONDS.

    Requests older than the window are dropped as new ones arrive (in batches, once the oldest is
    EVICT_SLACK_SECONDS past it), so the recorder holds an hour of requests at most, and at most
    `keep` per area and project."""

    def __init__(self, keep: int = KEEP, clock: Any = time.time, window_seconds: int = WINDOW_SECONDS):
        self._series: dict[tuple[str, str | None], _Series] = {}
        self._lock = threading.Lock()
        self._clock = clock
        self._keep = keep
        self._window = window_seconds

    def record(self, area: str, status: int, latency_ms: float, project: str | None = None) -> None:
        now = self._clock()
        with self._lock:
            series = self._series.get((area, project))
            if series is None:
                series = self._series[(area, project)] = _Series()
            series.append(now, status, latency_ms)
            if series.times[0] < now - self._window - EVICT_SLACK_SECONDS:
                series.drop_first(bisect.bisect_left(series.times, now - self._window))
            if len(series.times) > self._keep:
                series.drop_first(len(series.times) - self._keep)

    def held(self) -> int:
        """Requests held, all areas and projects."""
        with self._lock:
            return sum(len(series.times) for series in self._series.values())

    def health(
        self, project: str, areas: Iterable[str], window_seconds: int = WINDOW_SECONDS
    ) -> list[dict[str, Any]]:
        since = self._clock() - window_seconds
        report = []
        for area in areas:
            with self._lock:
                series = self._series.get((area, project))
                latencies, statuses = series.since(since) if series else (array("f"), array("H"))
            report.append(
                summary(
                    area,
                    len(statuses),
                    sum(1 for status in statuses if status >= 500),
                    sum(1 for status in statuses if 400 <= status < 500),
                    percentile(list(latencies), 50),
                    percentile(list(latencies), 95),
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
