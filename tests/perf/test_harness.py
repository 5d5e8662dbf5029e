"""A smoke test of the benchmark harness, so that `pytest` catches a broken one: every benchmark
module imports, and the DynamoDB call counter counts a trivial request. Nothing here is timed."""

from __future__ import annotations

import importlib
import pkgutil

import tests.perf
from tests.perf.bench_cold_start import parse_importtime, targets
from tests.perf.common import api_event, call, load_function, percentile, principal
from tests.perf.dynamodb_calls import DynamoDBCalls


def test_every_benchmark_module_imports_and_run_all_knows_it():
    from tests.perf.run_all import BENCHMARKS, OWN_CLI

    names = [m.name for m in pkgutil.iter_modules(tests.perf.__path__) if m.name.startswith("bench_")]
    known = {module for module, _ in BENCHMARKS} | {entry[0] for entry in OWN_CLI}
    for name in names:
        module = importlib.import_module(f"tests.perf.{name}")
        assert f"tests.perf.{name}" in known, f"run_all does not run {name}"
        assert callable(getattr(module, "run", None) or getattr(module, "main", None)), name
    for module, _ in BENCHMARKS:
        assert callable(importlib.import_module(module).run), module


def test_the_counter_counts_calls_and_items_of_a_request(table):
    # Given the pipelines function on moto, one pipeline in the project
    handler = load_function("PipelinesFunction")
    caller = principal("admin")
    with DynamoDBCalls() as calls:
        # When a pipeline is created, then read, then an unknown one is asked for
        with calls.counting():
            status, _ = call(
                handler, api_event("POST", "/pipeline", {"name": "a", "pipeline_type_name": "t"}, caller)
            )
            created = calls.by_operation()
        assert status == 201
        with calls.counting():
            call(handler, api_event("GET", "/pipeline/1", None, caller, "GET /pipeline/{pipeline_id}"))
            found = calls.total()
        with calls.counting():
            status, _ = call(
                handler, api_event("GET", "/pipeline/99", None, caller, "GET /pipeline/{pipeline_id}")
            )
            missing = calls.by_operation()
    # Then the writes, the one read and the miss are each counted as such
    assert status == 404
    assert created["TransactWriteItems"].items_written >= 2  # the pipeline and its name claim, at least
    assert (found.calls, found.items_read) == (1, 1)
    assert (missing["GetItem"].calls, missing["GetItem"].items_read) == (1, 0)


def test_cold_start_targets_cover_every_api_function_and_the_floor():
    names = {t.name for t in targets()}
    assert {"AuthorizerFunction", "PipelinesFunction", "LineageFunction"} <= names
    assert any(t.floor for t in targets())


def test_statistics_and_importtime_parsing():
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([5.0], 99) == 5.0
    sample = "import time: self [us] | cumulative | imported package\nimport time:       120 |        300 |   json.decoder\n"
    assert parse_importtime(sample) == {"json.decoder": 120}
