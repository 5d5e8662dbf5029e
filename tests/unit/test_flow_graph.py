"""Seed 000's flow graph: pipelines linked by the datasets they write and read, and the scopes."""

from __future__ import annotations

import pytest

from sluice.domain.flows import FlowGraph, datasets_of
from sluice.errors import InvalidRequest


def pipeline(pid: int, reads: list[str], writes: list[str]) -> dict:
    nodes = [
        {"id": f"r{i}", "nodeType": "source", "config": {"kind": "dataset", "name": n}}
        for i, n in enumerate(reads)
    ]
    nodes += [
        {"id": f"w{i}", "nodeType": "target", "config": {"kind": "dataset", "name": n}}
        for i, n in enumerate(writes)
    ]
    nodes.append({"id": "x", "nodeType": "source", "config": {"kind": "inline", "rows": []}})
    return {"id": pid, "name": f"p{pid}", "graph": {"nodes": nodes, "edges": []}}


@pytest.fixture
def diamond() -> FlowGraph:
    return FlowGraph.of(
        [
            pipeline(1, [], ["raw"]),
            pipeline(2, ["raw"], ["left"]),
            pipeline(3, ["raw"], ["right"]),
            pipeline(4, ["left", "right"], ["joined"]),
            pipeline(5, [], ["alone"]),
        ]
    )


def test_datasets_of_reads_dataset_sources_and_targets_only():
    assert datasets_of(pipeline(1, ["a"], ["b"])) == ({"a"}, {"b"})


@pytest.mark.parametrize(
    ("target", "scope", "levels"),
    [
        (2, "single", [[2]]),
        (2, "upstream", [[1], [2]]),
        (2, "downstream", [[2], [4]]),
        (2, "full", [[1], [2], [4]]),
        (1, "downstream", [[1], [2, 3], [4]]),
        (4, "upstream", [[1], [2, 3], [4]]),
        (5, "full", [[5]]),
    ],
)
def test_scopes_select_pipelines_in_dependency_levels(diamond, target, scope, levels):
    assert diamond.plan(target, scope) == levels


def test_writers_and_readers(diamond):
    assert diamond.writers_of("raw") == [1] and diamond.readers_of("raw") == [2, 3]
    assert diamond.readers_of("joined") == []


def test_a_cycle_between_pipelines_is_refused():
    flow = FlowGraph.of([pipeline(1, ["b"], ["a"]), pipeline(2, ["a"], ["b"])])
    with pytest.raises(InvalidRequest, match="cycle"):
        flow.plan(1, "full")


def test_a_pipeline_reading_its_own_dataset_does_not_depend_on_itself():
    flow = FlowGraph.of([pipeline(1, ["a"], ["a"])])
    assert flow.plan(1, "full") == [[1]]
