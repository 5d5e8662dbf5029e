"""Runs: the lifecycle of a run, and planning which nodes run in which order.

A run's plan is its nodes in scope, grouped into topological levels: every node of a level has
all its upstream nodes in earlier levels (or reused from the run it resumes), so a level's nodes
can run in parallel and the Run state machine walks the levels in order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sluice.domain.status import RunStatus
from sluice.errors import Conflict, ValidationFailed

ALLOWED = {
    RunStatus.pending: {RunStatus.running, RunStatus.cancelled, RunStatus.failed},
    RunStatus.running: {RunStatus.success, RunStatus.failed, RunStatus.cancelled},
}

SCOPES = ("single", "upstream", "downstream", "full")


def check_transition(current: str, wanted: str) -> None:
    """Refuse a state change the lifecycle does not allow (409 with the reason)."""
    now, then = RunStatus(current), RunStatus(wanted)
    if then not in ALLOWED.get(now, set()):
        raise Conflict(f"A {now.value} run cannot become {then.value}.")


Adjacency = Mapping[str, Iterable[str]]  # node id -> ids of its upstream nodes


def downstream_of(graph: Adjacency) -> dict[str, set[str]]:
    children: dict[str, set[str]] = {node: set() for node in graph}
    for node, parents in graph.items():
        for parent in parents:
            children.setdefault(parent, set()).add(node)
    return children


def _walk(start: str, edges: Mapping[str, Iterable[str]]) -> set[str]:
    seen: set[str] = set()
    frontier = [start]
    while frontier:
        for neighbour in edges.get(frontier.pop(), ()):
            if neighbour not in seen:
                seen.add(neighbour)
                frontier.append(neighbour)
    return seen


def select_scope(graph: Adjacency, target: str | None, scope: str = "full") -> set[str]:
    """The nodes a run covers: `single` the target, `upstream`/`downstream` the target and its
    ancestors/descendants, `full` both; with no target, every node."""
    if scope not in SCOPES:
        raise ValidationFailed(f"scope must be one of {', '.join(SCOPES)}, not '{scope}'.")
    if target is None:
        if scope != "full":
            raise ValidationFailed(f"scope '{scope}' needs a target node.")
        return set(graph)
    if target not in graph:
        raise ValidationFailed(f"node '{target}' is not in this pipeline.")
    chosen = {target}
    if scope in ("upstream", "full"):
        chosen |= _walk(target, graph)
    if scope in ("downstream", "full"):
        chosen |= _walk(target, downstream_of(graph))
    return chosen


def levels(
    graph: Adjacency, nodes: Iterable[str] | None = None, satisfied: Iterable[str] = ()
) -> list[list[str]]:
    """Topological levels of `nodes` (default all). Upstream nodes outside `nodes` must be in
    `satisfied` (their outputs already exist), else the plan is refused: a node would start
    without its input."""
    chosen = set(graph if nodes is None else nodes)
    ready = set(satisfied)
    for node in chosen:
        missing = [p for p in graph[node] if p not in chosen and p not in ready]
        if missing:
            raise ValidationFailed(
                f"node '{node}' needs '{missing[0]}', which is neither in this run nor reusable from an earlier one."
            )
    remaining = {node: {p for p in graph[node] if p in chosen} for node in chosen}
    planned: list[list[str]] = []
    while remaining:
        level = sorted(node for node, parents in remaining.items() if not parents)
        if not level:
            raise ValidationFailed(f"the graph has a cycle through {', '.join(sorted(remaining))}.")
        planned.append(level)
        for node in level:
            del remaining[node]
        for parents in remaining.values():
            parents.difference_update(level)
    return planned


@dataclass(frozen=True)
class Plan:
    levels: list[list[str]]
    reused: dict[str, str] = field(default_factory=dict)  # node id -> node run id whose output it reuses

    @property
    def nodes(self) -> list[str]:
        return [node for level in self.levels for node in level]


def plan_run(
    graph: Adjacency,
    target: str | None = None,
    scope: str = "full",
    succeeded_before: Mapping[str, str] | None = None,
) -> Plan:
    """Plan a run; for a resume, `succeeded_before` maps the nodes that succeeded in the failed
    run to their node runs, which are reused instead of executed again."""
    chosen = select_scope(graph, target, scope)
    reused = {node: run for node, run in (succeeded_before or {}).items() if node in graph}
    to_run = chosen - set(reused)
    return Plan(
        levels=levels(graph, to_run, satisfied=reused),
        reused={n: r for n, r in reused.items() if n in chosen},
    )
