"""Transform and filter nodes: SQL (any sqlglot dialect), a visual recipe compiled to SQL, or a
boolean condition, run on DuckDB over the node's inputs (see sql.py for params, refs and dialects)."""

from __future__ import annotations

from typing import Any

from sluice.domain.recipes import compile_recipe
from sluice.engine.errors import NodeFailed
from sluice.engine.nodes import NodeContext, Outcome
from sluice.engine.sql import DEFAULT_DIALECT, CompiledQuery, compile_condition, compile_query
from sluice.errors import ValidationFailed


def run_transform(ctx: NodeContext) -> Outcome:
    has_sql, has_recipe = ctx.config.get("sql") is not None, ctx.config.get("recipe") is not None
    if ctx.config.get("ai") is not None and not has_sql and not has_recipe:
        from sluice.engine.ai import run_ai  # loads models only for AI recipe nodes

        return run_ai(ctx)
    if has_sql == has_recipe:
        raise ctx.config.fail("config needs exactly one of 'sql' and 'recipe' (or 'ai', an AI recipe)")
    if has_sql:
        dialect = ctx.config.get("dialect") or DEFAULT_DIALECT
        compiled = compile_query(ctx.config.text("sql"), dialect=dialect, params=dict(ctx.options.params))
    else:
        compiled = _compile_recipe(ctx, ctx.config.get("recipe"))
    _bind_relations(ctx, compiled)
    ctx.log.info(f"Running SQL: {_one_line(compiled.sql)}")
    return Outcome(ctx.materialize(compiled.sql, compiled_sql=compiled.sql), compiled_sql=compiled.sql)


def run_filter(ctx: NodeContext) -> Outcome:
    condition = ctx.config.text("condition")
    relation = ctx.single_input()
    (input_id,) = ctx.input_names()
    dialect = ctx.config.get("dialect") or DEFAULT_DIALECT
    compiled, relations = compile_condition(condition, dialect=dialect, params=dict(ctx.options.params))
    strangers = [name for name in relations if name.lower() != input_id.lower()]
    if strangers:
        raise ctx.config.fail(
            f"the condition reads {', '.join(strangers)}; a filter reads only its input '{input_id}'"
        )
    sql = f"SELECT * FROM {relation} WHERE {compiled}"
    ctx.log.info(f"Keeping rows where {compiled}")
    return Outcome(ctx.materialize(sql, compiled_sql=sql), compiled_sql=sql)


def _compile_recipe(ctx: NodeContext, recipe: Any) -> CompiledQuery:
    """Compile once to validate the config, then again knowing the inputs' columns (exact output
    columns, derive in place), then as any SQL."""
    try:
        names = compile_recipe(recipe).inputs
        columns = {}
        for name in names:
            relation = _relation_for(ctx, name, by_ref=True)
            columns[name] = [column.name for column in ctx.workspace.columns(f"SELECT * FROM {relation}")]
        model = compile_recipe(recipe, columns)
    except ValidationFailed as exc:
        raise ctx.config.fail(f"recipe: {exc.detail}") from exc
    return compile_query(model.sql, params=dict(ctx.options.params))


def _bind_relations(ctx: NodeContext, compiled: CompiledQuery) -> None:
    """Make every relation the SQL reads exist: an upstream output by node id, or (via ref) a dataset."""
    refs = {name.lower() for name in compiled.refs}
    if compiled.relations is None:
        # Only DuckDB could parse it: offer every input and every ref, and let DuckDB name what is missing.
        for node_id in ctx.input_names():
            ctx.use_input(node_id)
        for name in compiled.refs:
            if ctx.find_input(name) is None and ctx.datasets.exists(name):
                ctx.use_dataset(name)
        return
    for name in compiled.relations:
        _relation_for(ctx, name, by_ref=name.lower() in refs)


def _relation_for(ctx: NodeContext, name: str, *, by_ref: bool) -> str:
    node_id = ctx.find_input(name)
    if node_id is not None:
        return ctx.use_input(node_id)
    inputs = ", ".join(ctx.input_names()) or "none"
    if by_ref:
        if ctx.datasets.exists(name):
            return ctx.use_dataset(name)
        raise NodeFailed(
            f"ref('{name}') names neither an input of node '{ctx.node.id}' (inputs: {inputs}) "
            f"nor a dataset of project '{ctx.run.project}'"
        )
    raise NodeFailed(
        f"the SQL reads '{name}', which is not an input of node '{ctx.node.id}' (inputs: {inputs}); "
        f"a dataset is read with {{{{ ref('{name}') }}}}"
    )


def _one_line(sql: str, limit: int = 500) -> str:
    text = " ".join(sql.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
