"""API health in AWS (issue 13): one GetMetricData call reads every area's EMF metrics back, and
the answer is rendered like the local figures; CloudWatch failing is a 503. botocore's Stubber
checks the request against CloudWatch's own model."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import ANY, Stubber

from sluice.adapters.api_health import CloudWatchApiHealth
from sluice.errors import Unavailable


@pytest.fixture
def cloudwatch(monkeypatch):
    client = boto3.client(
        "cloudwatch", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    monkeypatch.setattr("sluice.adapters.api_health.aws.client", lambda service: client)
    with Stubber(client) as stub:
        yield stub


def test_one_call_for_every_area_and_its_answer_rendered(cloudwatch):
    results = [
        {"Id": "m0_requests_sum", "Values": [30.0, 10.0]},
        {"Id": "m0_errors_sum", "Values": [2.0]},
        {"Id": "m0_clienterrors_sum", "Values": [4.0]},
        {"Id": "m0_latency_p50", "Values": [12.5]},
        {"Id": "m0_latency_p95", "Values": [80.0]},
        {"Id": "m1_requests_sum", "Values": []},
    ]
    cloudwatch.add_response(
        "get_metric_data",
        {"MetricDataResults": results},
        {"MetricDataQueries": ANY, "StartTime": ANY, "EndTime": ANY},
    )
    sent = []
    cloudwatch.client.meta.events.register(
        "provide-client-params.cloudwatch.GetMetricData", lambda params, **_: sent.append(params)
    )
    runs, monitor = CloudWatchApiHealth().health("acme", ["runs", "monitor"], 3600)
    dimensions = [q["MetricStat"]["Metric"]["Dimensions"] for q in sent[0]["MetricDataQueries"]]
    assert all({"Name": "project", "Value": "acme"} in d for d in dimensions)  # the caller's only
    assert runs == {
        "router": "runs",
        "requests": 40,
        "error_rate": 5.0,
        "client_error_rate": 10.0,
        "median_latency_ms": 12.5,
        "p95_latency_ms": 80.0,
    }
    assert monitor["requests"] == 0 and monitor["median_latency_ms"] is None


def test_cloudwatch_failing_is_unavailable(cloudwatch):
    cloudwatch.add_client_error("get_metric_data", "AccessDenied", http_status_code=403)
    with pytest.raises(Unavailable):
        CloudWatchApiHealth().health("acme", ["runs"], 3600)
