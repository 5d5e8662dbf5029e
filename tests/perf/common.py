"""What every benchmark shares: statistics, markdown tables, the machine, results files, moto tables
and API Gateway events for in-process handler calls."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "tests" / "perf" / "results"
PROJECT = "perf"

# Credentials that can never reach a real account; set before any boto3 client exists.
OFFLINE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def offline_aws_environment(**extra: str) -> None:
    """Point this process at nothing real: fake credentials, no endpoint, no tracing or metrics output."""
    os.environ.update(OFFLINE_AWS)
    os.environ.update(
        POWERTOOLS_TRACE_DISABLED="true",
        POWERTOOLS_METRICS_DISABLED="true",
        POWERTOOLS_LOG_LEVEL="WARNING",
    )
    os.environ.update(extra)
    os.environ.pop("AWS_ENDPOINT_URL", None)


# -- statistics --------------------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(samples: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "median": percentile(samples, 50),
        "p99": percentile(samples, 99),
        "min": min(samples) if samples else float("nan"),
        "max": max(samples) if samples else float("nan"),
        "mean": sum(samples) / len(samples) if samples else float("nan"),
    }


def fmt(value: float | int | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


# -- reporting ---------------------------------------------------------------------------------------
def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """Where the numbers came from (docs/performance.md quotes it)."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--", "layers", "functions", "template.yaml"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if changed:  # the numbers describe the working tree, not the commit alone
            commit += f" + {len(changed.splitlines())} uncommitted product files"
    except OSError:
        commit = ""
    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": commit,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        # Other work on the machine shows here; wall-clock figures suffer from it, CPU times less.
        "loadavg": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }


@dataclass
class Report:
    """One benchmark's outcome: markdown for people, `data` (JSON) for tools and for later comparison."""

    name: str
    title: str
    data: dict[str, Any] = field(default_factory=dict)
    sections: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.sections.append(text)

    def markdown(self) -> str:
        return f"## {self.title}\n\n" + "\n\n".join(self.sections) + "\n"

    def save(self) -> Path:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"{self.name}.json"
        payload = {"name": self.name, "title": self.title, "machine": machine(), "data": self.data}
        payload["markdown"] = self.markdown()
        path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
        return path


def bench_main(description: str, run: Callable[[bool], Report], argv: Sequence[str] | None = None) -> Report:
    """The command line of every benchmark: `--quick` for smaller sizes; prints markdown, saves JSON."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repetitions")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    load_at_start = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    report = run(args.quick)
    report.data["quick"] = args.quick
    report.data["loadavg_at_start"] = load_at_start
    report.data["bench_seconds"] = round(time.perf_counter() - started, 1)
    print(report.markdown(), flush=True)
    path = report.save()
    print(f"(saved {path.relative_to(ROOT)}; took {report.data['bench_seconds']} s)", file=sys.stderr)
    return report


# -- moto, in this process ---------------------------------------------------------------------------
@contextmanager
def moto_table(name: str = "sluice-perf-table") -> Iterator[Any]:
    """The Sluice table in moto (mock_aws, in process), created from template.yaml; TABLE_NAME set."""
    import boto3
    from moto import mock_aws

    from sluice import aws
    from sluice.local.template import load_template, table_definition
    from sluice.store.table import Table

    offline_aws_environment()
    previous = os.environ.get("TABLE_NAME")
    aws.reset_clients()
    with mock_aws():
        boto3.client("dynamodb").create_table(TableName=name, **table_definition(load_template()))
        os.environ["TABLE_NAME"] = name
        try:
            yield Table(name)
        finally:
            aws.reset_clients()
            if previous is None:
                os.environ.pop("TABLE_NAME", None)
            else:
                os.environ["TABLE_NAME"] = previous


# -- DynamoDB Local, a scratch one -------------------------------------------------------------------
@contextmanager
def scratch_dynamodb_local(table: str, prefix: str, on_shm: bool = False) -> Iterator[tuple[Any, int]]:
    """A DynamoDB Local of its own with the Sluice table `table` created from template.yaml:
    yields (boto3 client, the Java process's PID, for its CPU time), stops it at the end. With
    `on_shm` its database is on the tmpfs that the local stack's working copy uses."""
    import tempfile

    from sluice.local.dynamodb_local import WORKING_ROOT, DynamoDBLocal
    from sluice.local.template import load_template, table_definition

    shm = WORKING_ROOT.parent if on_shm and WORKING_ROOT.parent.is_dir() else None
    with tempfile.TemporaryDirectory(prefix=prefix, dir=shm) as folder:
        local = DynamoDBLocal(Path(folder) / "db").start()
        try:
            client = local.client(retries={"max_attempts": 4, "mode": "standard"}, max_pool_connections=50)
            client.create_table(TableName=table, **table_definition(load_template()))
            assert local.pid is not None
            yield client, local.pid
        finally:
            local.stop()


def load_function(logical_id: str) -> Callable[[dict, Any], dict]:
    """The handler template.yaml names for a function, imported the way the local stack imports it."""
    from sluice.local.functions import FunctionRegistry
    from sluice.local.template import load_template

    return FunctionRegistry(load_template()).handler(logical_id)


def principal(role: str = "admin", project: str = PROJECT) -> Any:
    from sluice.auth.principal import Principal, Role

    return Principal(project=project, role=Role[role], subject="perf")


def api_event(
    method: str,
    path: str,
    body: Any = None,
    caller: Any = None,
    route: str | None = None,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An HTTP API (payload 2.0) event after the authorizer ran: `caller` is in the authorizer context."""
    from tests.apigw import http_event

    event = http_event(method, path, body=body, principal=caller, headers=headers, route_key=route)
    if params:
        event["pathParameters"] = params
    return event


def invoke(handler: Callable[[dict, Any], dict], event: dict[str, Any], function: str = "perf") -> dict:
    """Invoke a Lambda handler in-process as Lambda would; its raw result."""
    import asyncio

    from tests.apigw import LambdaContext

    try:  # Mangum runs the app on the thread's event loop; only the main thread has one by default.
        asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())
    return handler(event, LambdaContext(function_name=function))


def call(
    handler: Callable[[dict, Any], dict], event: dict[str, Any], function: str = "perf"
) -> tuple[int, Any]:
    """Invoke a Lambda handler in-process; (status, parsed JSON body or text)."""
    return status_and_body(invoke(handler, event, function))


def status_and_body(response: dict[str, Any]) -> tuple[int, Any]:
    import base64

    text = response.get("body") or ""
    if response.get("isBase64Encoded"):
        text = base64.b64decode(text).decode()
    try:
        payload: Any = json.loads(text) if text else None
    except ValueError:
        payload = text
    return int(response.get("statusCode", 0)), payload
