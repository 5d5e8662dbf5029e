"""The OpenLineage ingest alone (no gateway, no HTTP): a 1,000-event batch (500 runs of 50 jobs,
START + COMPLETE each) applied in-process to a `sluice dev` stack's DynamoDB Local, first with the
jobs new, then new runs of the same jobs (steady use), with the time of each phase. Run it on an
older checkout's source for a before/after on the same machine at the same time:

    .venv/bin/python -m tests.perf.bench_openlineage_bulk
    git archive <commit> layers | tar -x -C /tmp/before
    PYTHONPATH=/tmp/before/layers/core/python:. .venv/bin/python -m tests.perf.bench_openlineage_bulk
"""

from __future__ import annotations

import collections
import datetime as _dt
import inspect
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from sluice import composition
from sluice.domain import openlineage as ol
from sluice.domain.events import RecordingPublisher
from sluice.store.table import Table
from tests.perf.bench_sdk_openlineage import run_events
from tests.perf.stack_process import dynamodb_table, launch


class TimedClient:
    """The DynamoDB client, with the calls and the time spent in each operation counted."""

    def __init__(self, client: Any):
        self.client = client
        self.seconds: collections.Counter[str] = collections.Counter()
        self.calls: collections.Counter[str] = collections.Counter()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)
        if not callable(method) or name.startswith("_") or name == "meta":
            return method

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - started
                self.calls[name] += 1

        return timed


def make_ingest(table: Table) -> Any:
    from sluice.store.openlineage import OpenLineageMarks

    registry, lineage = composition._registry(table), composition._lineage(table)
    if "runs" in inspect.signature(ol.OpenLineageIngest).parameters:  # before the bulk path
        from sluice.store.executions import RunRepository, WatchedPipelines

        return ol.OpenLineageIngest(
            registry,
            lineage,
            RunRepository(table),
            WatchedPipelines(table),
            RecordingPublisher(),
            OpenLineageMarks(table),
        )
    return ol.OpenLineageIngest(registry, lineage, RecordingPublisher(), OpenLineageMarks(table))


def main() -> None:
    # This process imports the source PYTHONPATH names; the stack runs this checkout's.
    os.environ.pop("PYTHONPATH", None)
    with tempfile.TemporaryDirectory() as folder:
        stack = launch(Path(folder) / "state")
        try:
            client, name = dynamodb_table(stack)
            timed = TimedClient(client)
            ingest = make_ingest(Table(name, timed))
            t0 = _dt.datetime.now(_dt.UTC) - _dt.timedelta(days=1)
            for label, hours in (("50 new jobs", 2), ("the same 50 jobs, new runs", 3)):
                timed.seconds.clear()
                timed.calls.clear()
                events = [
                    ol.RunEvent.model_validate(e)
                    for e in run_events(500, 50, t0 + _dt.timedelta(hours=hours))
                ]
                started = time.perf_counter()
                result = ingest.ingest("bench", events)
                seconds = time.perf_counter() - started
                assert result.applied == 1000, result.applied
                calls = sum(timed.calls.values())
                print(f"{label}: {seconds:.2f} s, {calls} DynamoDB calls ({calls / 1000:.2f} per event)")
                for operation, spent in timed.seconds.most_common():
                    print(
                        f"  {operation}: {timed.calls[operation]} calls, {spent:.2f} s (summed over threads)"
                    )
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
