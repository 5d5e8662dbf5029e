"""visual-lineage (SPEC 6): the column-level edges a visual recipe emits once compiled, from sqlglot's
lineage over the compiled model, typed as OpenLineage's column lineage facet types them
(https://openlineage.io/docs/spec/facets/dataset-facets/column_lineage_facet):

- DIRECT edges, from each output column to the input columns its value comes from: IDENTITY (the
  value as it was, renamed or not), TRANSFORMATION (computed from them: a derive, a cast) or
  AGGREGATION (summarised: SUM, COUNT, ...).
- INDIRECT edges, from the input columns that decide which rows there are, to every output column:
  FILTER (a prepare's filter conditions), JOIN (a join's keys) and GROUP_BY (a group-by's keys).
  Visual recipes never sort, so SORT (a valid subtype) does not occur.

An edge is `{source: {model, column}, target: {model, column}, transformation: {type, subtype,
description, masking}}`. The inputs' columns are the datasets' own when known; otherwise those the
config names (a prepare without a select step then reaches only the columns it mentions).
"""

from __future__ import annotations

from typing import Any

from sluice.domain.recipes import DIALECT, compile_recipe
from sluice.errors import ValidationFailed
from sluice.lazy import LazyModule

sqlglot = LazyModule("sqlglot")
exp = LazyModule("sqlglot.expressions")
lineage_module = LazyModule("sqlglot.lineage")
schema_module = LazyModule("sqlglot.schema")

_SENTINEL = "__sluice_lineage_{}__"
DESCRIPTIONS = {
    "IDENTITY": "the input value, unchanged",
    "TRANSFORMATION": "computed from the input value",
    "AGGREGATION": "aggregated over the input rows",
    "FILTER": "decides which input rows are kept",
    "JOIN": "a join key",
    "GROUP_BY": "a grouping key",
}


def recipe_lineage(
    model_name: str, config: dict[str, Any], input_columns: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    """`{model_name, output_columns, edges}`; raises ValidationFailed for an invalid config."""
    try:
        return _lineage(model_name, config, input_columns)
    except RecursionError as exc:
        raise ValidationFailed("The recipe's expressions nest too deeply to trace their lineage.") from exc


def _lineage(
    model_name: str, config: dict[str, Any], input_columns: dict[str, list[str]] | None
) -> dict[str, Any]:
    compile_recipe(config)  # validates before anything is inferred from it
    known = dict(input_columns or {})
    for name, columns in _named_columns(config).items():
        known.setdefault(name, columns)
    compiled = compile_recipe(config, known)
    sentinels = {name: _SENTINEL.format(i) for i, name in enumerate(dict.fromkeys(compiled.inputs))}
    models = {sentinel: name for name, sentinel in sentinels.items()}
    text = compiled.sql
    for name, sentinel in sentinels.items():
        text = text.replace("{{ ref('" + name + "') }}", sentinel)
    tree = sqlglot.parse_one(text, read=DIALECT)
    schema = schema_module.MappingSchema(
        {
            sentinels[name]: {column: "TEXT" for column in columns}
            for name, columns in known.items()
            if name in sentinels
        },
        dialect=None,
        normalize=False,
    )
    edges = _Edges(model_name)
    # identify=True quotes every identifier in the node names, so a leaf's `table.column` parses back
    # whatever the column is called (a keyword, a dot, a quote).
    roots = lineage_module.lineage(None, tree, schema=schema, dialect=None, identify=True)
    outputs = list(roots)
    for target, root in roots.items():
        subtype = _direct_subtype(root)
        for source in _leaves(root, models):
            edges.add(source, target, "DIRECT", subtype)
    for source, subtype in _indirect_sources(config, tree, schema, sentinels, models):
        for target in outputs:
            edges.add(source, target, "INDIRECT", subtype)
    return {"model_name": model_name, "output_columns": outputs, "edges": edges.edges}


class _Edges:
    def __init__(self, model_name: str):
        self.model_name = model_name
        self.edges: list[dict[str, Any]] = []
        self._seen: set[tuple[str, str, str, str, str]] = set()

    def add(self, source: tuple[str, str], target: str, kind: str, subtype: str) -> None:
        key = (*source, target, kind, subtype)
        if key in self._seen:
            return
        self._seen.add(key)
        self.edges.append(
            {
                "source": {"model": source[0], "column": source[1]},
                "target": {"model": self.model_name, "column": target},
                "transformation": {
                    "type": kind,
                    "subtype": subtype,
                    "description": DESCRIPTIONS[subtype],
                    "masking": False,
                },
            }
        )


def _direct_subtype(root: Any) -> str:
    subtype = "IDENTITY"
    for node in root.walk():
        value = node.expression.this if isinstance(node.expression, exp.Alias) else node.expression
        if isinstance(value, exp.Table):
            continue
        if value.find(exp.AggFunc) is not None:
            return "AGGREGATION"
        if not isinstance(value, exp.Column):
            subtype = "TRANSFORMATION"
    return subtype


def _leaves(root: Any, models: dict[str, str]) -> list[tuple[str, str]]:
    found = []
    for node in root.walk():
        if node.downstream or not isinstance(node.expression, exp.Table):
            continue
        column = sqlglot.parse_one(node.name, into=exp.Column)
        table = node.expression.name  # the relation itself, whatever alias the query gave it
        if table in models:
            found.append((models[table], column.name))
    return found


def _indirect_sources(
    config: dict[str, Any], tree: Any, schema: Any, sentinels: dict[str, str], models: dict[str, str]
) -> list[tuple[tuple[str, str], str]]:
    kind = config["recipe_type"]
    inputs = config["inputs"]
    if kind == "join":
        return [
            *(((inputs[0], pair["left"]), "JOIN") for pair in config["on"]),
            *(((inputs[1], pair["right"]), "JOIN") for pair in config["on"]),
        ]
    if kind == "group_by":
        return [((inputs[0], key), "GROUP_BY") for key in config.get("keys", [])]
    if kind != "prepare":
        return []
    found: list[tuple[tuple[str, str], str]] = []
    ctes = list(tree.args["with_"].expressions) if tree.args.get("with_") else []
    for number, step in enumerate(config.get("steps", [])):
        if step["type"] != "filter":
            continue
        condition = sqlglot.parse_one(step["condition"], read=DIALECT)
        before = ctes[:number]
        relation = before[-1].alias if before else sentinels[inputs[0]]
        for column in {c.name for c in condition.find_all(exp.Column)}:
            probe = exp.select(exp.column(exp.to_identifier(column, quoted=True))).from_(relation)
            for cte in before:
                probe = probe.with_(cte.alias, as_=cte.this.copy())
            try:
                roots = lineage_module.lineage(None, probe, schema=schema, dialect=None, identify=True)
            except sqlglot.errors.SqlglotError:
                continue  # a column the inputs do not have: DuckDB will say so at run time
            for root in roots.values():
                found.extend((source, "FILTER") for source in _leaves(root, models))
    return found


def _named_columns(config: dict[str, Any]) -> dict[str, list[str]]:
    """The input columns a config names, for inputs whose columns are not known."""
    kind = config["recipe_type"]
    inputs = config["inputs"]
    named: dict[str, list[str]] = {name: [] for name in inputs}

    def note(name: str, column: str) -> None:
        if column != "*" and column.lower() not in {c.lower() for c in named[name]}:
            named[name].append(column)

    if kind == "prepare":
        produced: set[str] = set()
        fixed = False
        for step in config.get("steps", []):
            mentioned: list[str] = []
            if step["type"] in ("select", "drop"):
                mentioned = list(step["columns"])
            elif step["type"] in ("rename", "cast"):
                mentioned = [step["column"]]
            elif step["type"] in ("filter", "derive"):
                text = step["condition"] if step["type"] == "filter" else step["expression"]
                mentioned = [c.name for c in sqlglot.parse_one(text, read=DIALECT).find_all(exp.Column)]
            if not fixed:
                for column in mentioned:
                    if column.lower() not in produced:
                        note(inputs[0], column)
            if step["type"] == "select":
                fixed = True
            elif step["type"] == "rename":
                produced.add(step["to"].lower())
            elif step["type"] == "derive":
                produced.add(step["column"].lower())
    elif kind == "join":
        for pair in config["on"]:
            note(inputs[0], pair["left"])
            note(inputs[1], pair["right"])
        for item in config.get("columns") or []:
            note(item["input"], item["column"])
    elif kind == "group_by":
        for key in config.get("keys", []):
            note(inputs[0], key)
        for item in config.get("aggregations", []):
            note(inputs[0], item["column"])
    elif config.get("columns"):
        for name in inputs:
            for column in config["columns"]:
                note(name, column)
    return named
