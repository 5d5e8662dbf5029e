"""execute_node: one node of one run, from its inputs' Parquet to its own output, preview, profile
and log lines; what the run state machine's node Lambda calls once per invocation."""

from __future__ import annotations

import concurrent.futures
import json
import shutil
import tempfile
import time
from collections.abc import Callable

from aws_lambda_powertools import Logger

from sluice import timeutil
from sluice.engine.artifacts import (
    LOGS,
    OUTPUT,
    PREVIEW,
    PROFILE,
    ArtifactRef,
    ObjectMissing,
    Storage,
    StorageFailed,
    WriteConflict,
    node_artifact_key,
)
from sluice.engine.errors import NodeFailed
from sluice.engine.logs import NodeLog
from sluice.engine.nodes import NodeContext, NodeResult, NodeRun, ObjectCopy, Outcome
from sluice.engine.profile import preview, profile
from sluice.engine.sources import read_source
from sluice.engine.targets import write_target
from sluice.engine.transforms import run_filter, run_transform
from sluice.engine.workspace import Workspace, read_parquet

logger = Logger(service="sluice")
_transfers = concurrent.futures.ThreadPoolExecutor(max_workers=6, thread_name_prefix="sluice-artifacts")

_NODE_KINDS: dict[str, Callable[[NodeContext], Outcome]] = {
    "source": read_source,
    "transform": run_transform,
    "filter": run_filter,
    "target": write_target,
}


def execute_node(run: NodeRun, storage: Storage) -> NodeResult:
    """Run one node; NodeResult on success, NodeFailed (with timing, logs and compiled SQL) otherwise.

    Persists output.parquet, preview.json, profile.json and logs.jsonl under the node's folder of the
    run (artifacts.py). A dry run persists nothing: with a persistent `storage` it works in a scratch
    folder dropped on return, so a caller chaining several nodes of one dry run passes
    `storage.scratch(folder)` to each instead, keeping upstream outputs between them.
    """
    started = timeutil.now()
    clock = time.perf_counter()
    log = NodeLog()
    node = run.node
    log.info(f"Starting node: {node.label or node.id} ({_describe(run)})")
    throwaway = None
    if run.options.dry_run and storage.persistent:
        throwaway = tempfile.mkdtemp(prefix="sluice-dry-run-")
        storage = storage.scratch(throwaway)
    compiled_sql: str | None = None
    try:
        kind = _NODE_KINDS.get(node.type)
        if kind is None:
            raise NodeFailed(f"node '{node.id}' has type {node.type!r}; Sluice runs {', '.join(_NODE_KINDS)}")
        with Workspace() as workspace:
            ctx = NodeContext(run, storage, workspace, log)
            outcome = kind(ctx)
            compiled_sql = outcome.compiled_sql
            path, rows = outcome.output.path, outcome.output.rows
            columns = workspace.columns(f"SELECT * FROM {read_parquet([path])}")
            shown = preview(workspace, path, columns)
            described = profile(workspace, path, columns, rows)
            _store(storage, run, outcome, shown, described, log)
            finished = timeutil.now()
            elapsed = time.perf_counter() - clock
            rate = f" ({rows / elapsed:,.0f} rows/sec)" if elapsed > 0 else ""
            log.info(f"Node completed: {rows} rows in {elapsed:.1f}s{rate}")
            _store_logs(storage, run, log)
            return NodeResult(
                node_id=node.id,
                node_type=node.type,
                output=ArtifactRef(node_artifact_key(run.project, run.run_id, node.id, OUTPUT)),
                row_count=rows,
                duration_ms=int(elapsed * 1000),
                started_at=timeutil.iso(started) or "",
                finished_at=timeutil.iso(finished) or "",
                columns=columns,
                preview=shown,
                profile=described,
                logs=list(log.lines),
                compiled_sql=compiled_sql,
                watermark=outcome.watermark,
                datasets_read=list(ctx.datasets_read),
                written=outcome.written,
            )
    except NodeFailed as exc:
        raise _failed(exc, run, storage, log, started, clock) from None
    except (ObjectMissing, StorageFailed, WriteConflict) as exc:
        raise _failed(
            NodeFailed(str(exc), compiled_sql=compiled_sql), run, storage, log, started, clock
        ) from exc
    except Exception as exc:
        # A bug, not the pipeline's fault: the author gets one line, operators the traceback.
        logger.exception(
            "node crashed", extra={"project": run.project, "run_id": run.run_id, "node_id": node.id}
        )
        failure = NodeFailed(
            f"internal error in the engine: {type(exc).__name__}: {exc}", compiled_sql=compiled_sql
        )
        raise _failed(failure, run, storage, log, started, clock) from exc
    finally:
        if throwaway is not None:
            shutil.rmtree(throwaway, ignore_errors=True)


def _describe(run: NodeRun) -> str:
    config = run.node.config
    kind = config.get("kind") or (
        "recipe" if config.get("recipe") is not None else "sql" if config.get("sql") else ""
    )
    mode = " dry run" if run.options.dry_run else ""
    return f"{run.node.type} {kind}".strip() + mode


def _store(
    storage: Storage, run: NodeRun, outcome: Outcome, shown: dict, described: dict, log: NodeLog
) -> None:
    def key(artifact: str) -> str:
        return node_artifact_key(run.project, run.run_id, run.node.id, artifact)

    def output() -> None:
        if outcome.copy_of is None or not _copied(storage, outcome.copy_of, key(OUTPUT), log):
            storage.objects.upload(outcome.output.path, storage.bucket, key(OUTPUT))

    # Three independent requests: sent together, the node waits for the slowest, not the sum.
    pending = [
        _transfers.submit(output),
        _transfers.submit(
            storage.objects.write, storage.bucket, key(PREVIEW), json.dumps(shown).encode("utf-8")
        ),
        _transfers.submit(
            storage.objects.write, storage.bucket, key(PROFILE), json.dumps(described).encode("utf-8")
        ),
    ]
    concurrent.futures.wait(pending)
    for future in pending:
        future.result()  # the first failure, once all three have ended


def _copied(storage: Storage, source: ObjectCopy, output_key: str, log: NodeLog) -> bool:
    """Copy an unchanged source object to the output key inside S3; False when the object changed
    since it was read or is too big for one copy, and the local file (what was read and profiled)
    must be uploaded instead."""
    try:
        storage.objects.copy(source.bucket, source.key, storage.bucket, output_key, if_match=source.etag)
    except (WriteConflict, StorageFailed, ObjectMissing):
        return False
    log.info(f"Kept s3://{source.bucket}/{source.key} as the output unchanged (copied inside S3)")
    return True


def _store_logs(storage: Storage, run: NodeRun, log: NodeLog) -> None:
    key = node_artifact_key(run.project, run.run_id, run.node.id, LOGS)
    storage.objects.write(storage.bucket, key, log.jsonl())


def _failed(
    failure: NodeFailed, run: NodeRun, storage: Storage, log: NodeLog, started, clock: float
) -> NodeFailed:
    """Complete the failure with the run's facts and store its log lines (best effort: the failure
    being reported may be the store itself)."""
    elapsed = time.perf_counter() - clock
    log.error(f"Node failed: {failure.detail}")
    failure.node_id = run.node.id
    failure.started_at = timeutil.iso(started)
    failure.finished_at = timeutil.iso(timeutil.now())
    failure.duration_ms = int(elapsed * 1000)
    failure.logs = list(log.lines)
    if storage.persistent and not run.options.dry_run:
        try:
            _store_logs(storage, run, log)
        except Exception:  # noqa: BLE001 - the original failure is the one to report
            logger.warning("could not store a failed node's logs", extra={"node_id": run.node.id})
    return failure
