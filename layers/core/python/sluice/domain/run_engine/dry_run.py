"""A dry run: every node of a pipeline on its first 10 rows, in topological order, in a scratch
folder dropped at the end: no run, no node run, no object written. A failed node's descendants
are skipped. And the variable substitution a node's config gets before it runs, dry or not."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from sluice.domain.graph import Graph
from sluice.domain.run_engine.core import EngineCore, adjacency
from sluice.domain.run_engine.errors import NodeFailed
from sluice.domain.runs import levels
from sluice.domain.status import NodeStatus
from sluice.errors import InvalidRequest, Unavailable, ValidationFailed

PREVIEW_ROWS = 10


class DryRuns(EngineCore):
    def dry_run(
        self,
        project: str,
        record: dict[str, Any],
        params: dict[str, Any],
        variables: Mapping[str, Any],
        full_refresh: bool = False,
    ) -> dict[str, Any]:
        """{node id: {node_id, name, status, columns, rows, row_count | error}} in run order."""
        graph = Graph.from_document(record.get("graph"))
        if graph.empty:
            raise InvalidRequest(f"Pipeline {record['name']} has no nodes to run.")
        try:
            order = [n for level in levels(adjacency(graph)) for n in level]
        except ValidationFailed as exc:
            raise InvalidRequest(f"The pipeline cannot be run: {exc.detail}") from exc
        results: dict[str, Any] = {}
        blocked: set[str] = set()
        nodes = []
        for node_id in order:
            node = graph.node(node_id)
            assert node is not None
            upstream = [e.source for e in graph.inputs_of(node_id)]
            entry = {"node_id": node_id, "name": node.label or node_id}
            if any(u in blocked for u in upstream):
                blocked.add(node_id)
                results[node_id] = _outcome(entry, NodeStatus.skipped)
                continue
            try:
                config = substituted(node.config, lambda: self._variables_of(project), variables, node_id)
            except NodeFailed as failed:
                blocked.add(node_id)
                results[node_id] = _outcome(entry, NodeStatus.failed, error=failed.detail)
                continue
            spec = {"id": node.id, "nodeType": node.node_type, "config": config, "label": node.label}
            nodes.append((node_id, entry, spec, upstream))
        if self.executor is None:
            raise Unavailable("No node engine is configured for dry runs.")
        options = {"params": params, "full_refresh": full_refresh, "dry_run": True}
        entries = {n[0]: n[1] for n in nodes}
        for node_id, outcome in self.executor.dry_run(project, [(n[2], n[3]) for n in nodes], options):
            base = entries[node_id]
            if isinstance(outcome, NodeFailed):
                results[node_id] = _outcome(base, NodeStatus.failed, error=outcome.detail)
            elif outcome is None:
                results[node_id] = _outcome(base, NodeStatus.skipped)
            else:
                results[node_id] = {
                    **base,
                    "status": NodeStatus.success.value,
                    "columns": [c.name for c in outcome.columns],
                    "rows": outcome.preview.get("rows", [])[:PREVIEW_ROWS],
                    "row_count": outcome.row_count,
                }
        return {node_id: results[node_id] for node_id in order if node_id in results}


def _outcome(entry: dict[str, Any], status: NodeStatus, **extra: Any) -> dict[str, Any]:
    """A node that produced no rows: skipped, or failed with `error`."""
    return {**entry, "status": status.value, **extra, "columns": [], "rows": []}


def substituted(
    config: Mapping[str, Any],
    resolved: Callable[[], Mapping[str, str]],
    overrides: Mapping[str, Any],
    node_id: str,
) -> dict[str, Any]:
    """The node's config with `${var.KEY}` filled in (the project's variables are read only when the
    config refers to one); an unknown key fails the node with the sentence naming it."""
    from sluice.domain.variables import substitute_variables  # its pydantic models: only when used

    if "${var." not in json.dumps(config):
        return dict(config)
    try:
        return substitute_variables(dict(config), resolved(), overrides, where=f"node '{node_id}'")
    except ValidationFailed as exc:
        raise NodeFailed(exc.detail) from exc
