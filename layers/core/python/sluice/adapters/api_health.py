"""API health from CloudWatch: the EMF metrics each area's handler emits (sluice.edge.app), read in
one GetMetricData call for every area (the ApiHealthSource of sluice.domain.api_health)."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable
from typing import Any

from sluice import aws
from sluice.domain.api_health import summary
from sluice.errors import Unavailable

NAMESPACE = "Sluice"


class CloudWatchApiHealth:
    def health(self, project: str, areas: Iterable[str], window_seconds: int) -> list[dict[str, Any]]:
        areas = list(areas)
        until = _dt.datetime.now(_dt.UTC)
        since = until - _dt.timedelta(seconds=window_seconds)
        queries = []
        for n, area in enumerate(areas):
            for metric, stat in (("Requests", "Sum"), ("Errors", "Sum"), ("ClientErrors", "Sum"),
                                 ("Latency", "p50"), ("Latency", "p95")):  # fmt: skip
                queries.append(
                    {
                        "Id": f"m{n}_{metric.lower()}_{stat.lower()}",
                        "MetricStat": {
                            "Metric": {
                                "Namespace": NAMESPACE,
                                "MetricName": metric,
                                "Dimensions": [
                                    {"Name": "service", "Value": area},
                                    {"Name": "project", "Value": project},
                                ],
                            },
                            "Period": window_seconds,
                            "Stat": stat,
                        },
                        "ReturnData": True,
                    }
                )
        try:
            result = aws.client("cloudwatch").get_metric_data(
                MetricDataQueries=queries, StartTime=since, EndTime=until
            )
        except Exception as exc:  # noqa: BLE001 - any failure of CloudWatch is the same 503
            raise Unavailable(f"CloudWatch metrics could not be read: {exc}") from exc
        values = {r["Id"]: sum(r.get("Values") or []) if r["Id"].endswith("_sum") else
                  (r.get("Values") or [None])[0] for r in result.get("MetricDataResults", [])}  # fmt: skip
        report = []
        for n, area in enumerate(areas):
            requests = int(values.get(f"m{n}_requests_sum") or 0)
            report.append(
                summary(
                    area,
                    requests,
                    int(values.get(f"m{n}_errors_sum") or 0),
                    int(values.get(f"m{n}_clienterrors_sum") or 0),
                    values.get(f"m{n}_latency_p50"),
                    values.get(f"m{n}_latency_p95"),
                )
            )
        return report
