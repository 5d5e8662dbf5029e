"""Target nodes: write the one input's rows to a Sluice dataset (overwrite, append, merge on a key) or
to an S3 object in a declared format. A target's own output artifact is the rows it wrote, so its
preview and profile show exactly what went out. In a dry run nothing is written: the node reports
the rows it would have written."""

from __future__ import annotations

from pathlib import Path

from sluice.engine import formats
from sluice.engine.artifacts import check_user_object, parse_s3_uri
from sluice.engine.datasets import MODES
from sluice.engine.errors import NodeFailed
from sluice.engine.nodes import Materialized, NodeContext, Outcome, TargetWrite
from sluice.engine.workspace import quote_literal, read_parquet

TARGET_KINDS = ("dataset", "s3")


def write_target(ctx: NodeContext) -> Outcome:
    kind = ctx.config.choice("kind", TARGET_KINDS)
    relation = ctx.single_input()
    output = ctx.materialize(f"SELECT * FROM {relation}")
    written = (
        _write_dataset(ctx, output.path, output.rows) if kind == "dataset" else _write_object(ctx, output)
    )
    return Outcome(output, written=written)


def _write_dataset(ctx: NodeContext, rows_path: Path, rows: int) -> TargetWrite:
    name = ctx.config.text("name")
    mode = ctx.config.choice("mode", MODES, default="overwrite")
    key = ctx.config.names("key") if mode == "merge" else None
    if not ctx.storage.persistent or ctx.options.dry_run:
        ctx.log.info(f"Dry run: would write {rows} rows to dataset '{name}' ({mode})")
        return TargetWrite("dataset", rows, rows, 0, dataset=name, mode=mode, persisted=False)
    write = ctx.datasets.write(
        ctx.workspace, name, mode, rows_path, key=key, run_id=ctx.run.run_id, node_id=ctx.node.id
    )
    detail = (
        f"{write.inserts} inserts, {write.updates} updates"
        if mode == "merge"
        else f"{write.rows_written} rows"
    )
    ctx.log.info(
        f"Wrote dataset '{name}' version {write.version} ({mode}): {detail}; {write.row_count} rows in all"
    )
    return TargetWrite.of_dataset(write)


def _write_object(ctx: NodeContext, output: Materialized) -> TargetWrite:
    uri = ctx.config.text("uri")
    declared = ctx.config.choice("format", formats.FORMATS)
    try:
        bucket, key = parse_s3_uri(uri)
        check_user_object(ctx.storage, ctx.run.project, bucket, key, writing=True)
    except ValueError as exc:
        raise ctx.config.fail(str(exc)) from exc
    if not key or key.endswith("/"):
        raise ctx.config.fail(f"uri '{uri}' must name an object, not a bucket or a folder")
    if not ctx.storage.persistent or ctx.options.dry_run:
        ctx.log.info(f"Dry run: would write {output.rows} rows to {uri} as {declared}")
        return TargetWrite("s3", output.rows, output.rows, 0, uri=uri, format=declared, persisted=False)
    if declared == "parquet":
        path = output.path
    else:
        path = ctx.workspace.new_path("target", f"rows.{declared}")
        ctx.workspace.execute(
            f"COPY (SELECT * FROM {read_parquet([output.path])}) TO {quote_literal(str(path))} "
            f"{formats.writer_options(declared)}"
        )
    try:
        ctx.storage.objects.upload(path, bucket, key)
    except Exception as exc:
        raise NodeFailed(f"could not write {uri}: {exc}") from exc
    ctx.log.info(f"Wrote {output.rows} rows to {uri} as {declared}")
    return TargetWrite("s3", output.rows, output.rows, 0, uri=uri, format=declared)
