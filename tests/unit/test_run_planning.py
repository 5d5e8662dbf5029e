"""Run planning: scopes, topological levels, resumes, and the run lifecycle."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluice.domain.runs import check_transition, levels, plan_run, select_scope
from sluice.errors import Conflict, ValidationFailed

# a -> b -> d, a -> c -> d, d -> e  (a diamond with a tail)
DIAMOND = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "e": ["d"]}


@pytest.mark.parametrize(
    "target, scope, expected",
    [
        ("d", "single", {"d"}),
        ("d", "upstream", {"a", "b", "c", "d"}),
        ("b", "downstream", {"b", "d", "e"}),
        ("b", "full", {"a", "b", "d", "e"}),
        (None, "full", {"a", "b", "c", "d", "e"}),
    ],
)
def test_scopes_select_the_right_nodes_of_a_diamond(target, scope, expected):
    assert select_scope(DIAMOND, target, scope) == expected


def test_levels_put_every_node_after_its_inputs():
    assert levels(DIAMOND) == [["a"], ["b", "c"], ["d"], ["e"]]


def test_a_single_node_without_its_inputs_is_refused():
    with pytest.raises(ValidationFailed, match="needs 'b'"):
        plan_run(DIAMOND, "d", "single")


def test_resume_reuses_succeeded_nodes_and_starts_from_the_failed_one():
    plan = plan_run(DIAMOND, succeeded_before={"a": "nr-1", "b": "nr-2", "c": "nr-3"})
    assert plan.levels == [["d"], ["e"]]
    assert plan.reused == {"a": "nr-1", "b": "nr-2", "c": "nr-3"}


def test_cycles_and_bad_scopes_are_refused():
    with pytest.raises(ValidationFailed, match="cycle"):
        levels({"a": ["b"], "b": ["a"]})
    with pytest.raises(ValidationFailed, match="scope must be"):
        select_scope(DIAMOND, "a", "sideways")
    with pytest.raises(ValidationFailed, match="not in this pipeline"):
        select_scope(DIAMOND, "zz", "single")


@pytest.mark.parametrize(
    "current, wanted, allowed",
    [
        ("pending", "running", True),
        ("running", "success", True),
        ("running", "cancelled", True),
        ("pending", "cancelled", True),
        ("success", "running", False),
        ("failed", "cancelled", False),
        ("cancelled", "running", False),
    ],
)
def test_lifecycle_transitions(current, wanted, allowed):
    if allowed:
        check_transition(current, wanted)
    else:
        with pytest.raises(Conflict):
            check_transition(current, wanted)


@st.composite
def dags(draw):
    size = draw(st.integers(1, 12))
    names = [f"n{i}" for i in range(size)]
    return {
        name: draw(st.lists(st.sampled_from(names[:i]), unique=True)) if i else []
        for i, name in enumerate(names)
    }


@given(dags())
def test_levels_are_a_topological_order_of_every_dag(graph):
    planned = levels(graph)
    position = {node: i for i, level in enumerate(planned) for node in level}
    assert sorted(position) == sorted(graph)
    for node, parents in graph.items():
        assert all(position[p] < position[node] for p in parents)
