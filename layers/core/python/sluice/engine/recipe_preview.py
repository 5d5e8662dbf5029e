"""What the flow area asks of the engine for recipes: the columns of the datasets a recipe reads,
and a preview, the compiled model run on a sample of its inputs in a sandboxed Workspace (the same
DuckDB as node runs: no network, no file outside its folder), writing nothing anywhere.

A sample is the first SAMPLE_ROWS rows of the first data file of each input's current version: one
download per input, however many files the dataset has; the model's answer is cut at `limit` rows.
"""

from __future__ import annotations

from typing import Any

from sluice.engine.artifacts import Storage
from sluice.engine.datasets import Datasets
from sluice.engine.errors import NodeFailed
from sluice.engine.profile import render_value
from sluice.engine.workspace import Workspace, quote_identifier, read_parquet

SAMPLE_ROWS = 1000


class PreviewFailed(Exception):
    """The model failed on the sample (DuckDB's message), or an input is not a dataset."""


def dataset_columns(storage: Storage, project: str, name: str) -> list[str] | None:
    """The columns of a dataset's current version, None when it was never written."""
    version, _ = Datasets(storage, project).current(name)
    return None if version is None else [column.name for column in version.columns]


def preview_model(
    storage: Storage,
    project: str,
    sql: str,
    inputs: list[str],
    *,
    limit: int,
    sample_rows: int = SAMPLE_ROWS,
) -> dict[str, Any]:
    """Run a compiled visual recipe (its refs are `{{ ref('name') }}` of `inputs`) on samples."""
    with Workspace() as workspace:
        views = _samples(workspace, Datasets(storage, project), storage, inputs, sample_rows)
        text = sql
        for name, view in views.items():
            text = text.replace("{{ ref('" + name + "') }}", view)
        return _run(workspace, text, limit)


def preview_sql(
    storage: Storage, project: str, text: str, *, limit: int, sample_rows: int = SAMPLE_ROWS
) -> dict[str, Any]:
    """Run a SQL model (one SELECT; datasets read as `{{ ref('name') }}`) on samples of them."""
    from sluice.engine.sql import compile_query

    try:
        compiled = compile_query(text)
    except NodeFailed as exc:
        raise PreviewFailed(exc.detail) from exc
    refs = {name.lower(): name for name in compiled.refs}
    read = compiled.relations if compiled.relations is not None else compiled.refs
    strangers = [name for name in read if name.lower() not in refs]
    if strangers:
        raise PreviewFailed(
            f"the SQL reads {', '.join(strangers)}, which it does not name by ref(); a recipe reads datasets "
            "as {{ ref('name') }}"
        )
    with Workspace() as workspace:
        views = _samples(workspace, Datasets(storage, project), storage, list(refs.values()), sample_rows)
        for name, view in views.items():  # the compiled SQL reads each ref by its own name
            workspace.create_view(name, f"SELECT * FROM {view}")
        return _run(workspace, compiled.sql, limit)


def _samples(
    workspace: Workspace, datasets: Datasets, storage: Storage, inputs: list[str], sample_rows: int
) -> dict[str, str]:
    """Each input's sample as a view: input name -> the view's quoted name."""
    views = {}
    for number, name in enumerate(dict.fromkeys(inputs)):
        version, _ = datasets.current(name)
        if version is None:
            raise PreviewFailed(
                f"Input '{name}' is not a dataset of this project: no pipeline has written it."
            )
        view = f"__sluice_sample_{number}__"
        if version.files:
            path = workspace.new_path("samples", f"{name}.parquet", origin=f"dataset '{name}'")
            storage.objects.download(storage.bucket, version.files[0], path)
            source = f"SELECT * FROM {read_parquet([path])} LIMIT {int(sample_rows)}"
        else:
            columns = ", ".join(f"NULL::{c.type} AS {quote_identifier(c.name)}" for c in version.columns)
            source = f"SELECT {columns or '1 AS _'} LIMIT 0"
        try:
            workspace.create_view(view, source)
        except NodeFailed as exc:
            raise PreviewFailed(exc.detail) from exc
        views[name] = quote_identifier(view)
    return views


def _run(workspace: Workspace, text: str, limit: int) -> dict[str, Any]:
    try:
        cursor = workspace.connection.execute(f"SELECT * FROM ({text}) AS preview LIMIT {int(limit)}")
        columns = [str(item[0]) for item in cursor.description]
        rows = cursor.fetchall()
    except Exception as exc:  # duckdb.Error: the message is the answer
        raise PreviewFailed(workspace.explain(str(exc))) from exc
    return {
        "columns": columns,
        "rows": [{name: render_value(v) for name, v in zip(columns, row, strict=True)} for row in rows],
    }
