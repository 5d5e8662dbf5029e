"""`sluice.client.Client`: seed 001's SDK over Sluice's HTTP API (openapi.json documents each call)."""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from sluice.client.config import load_config
from sluice.client.errors import Conflict, NotFound, RunFailed, RunTimeout
from sluice.client.http import Transport
from sluice.client.models import Address, Execution, LogLine, Model, Pipeline, RunInfo

URL_VARIABLE = "SLUICE_URL"
KEY_VARIABLE = "SLUICE_API_KEY"
YAML_CONTENT_TYPE = "application/yaml"


def _utc_now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def _iso(moment: _dt.datetime) -> str:
    return moment.astimezone(_dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Run:
    """A run that was triggered: `.wait()` until it ends. Its last state read is `.info`."""

    def __init__(self, client: Client, info: RunInfo):
        self._client = client
        self.info = info

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def status(self) -> str:
        return self.info.status

    def refresh(self) -> RunInfo:
        self.info = self._client.runs.get(self.id)
        return self.info

    def wait(
        self,
        timeout: float = 300,
        *,
        poll_interval: float = 0.1,
        max_interval: float = 5.0,
        on_update: Callable[[RunInfo], None] | None = None,
        raise_on_failure: bool = True,
    ) -> RunInfo:
        """Poll until the run ends; return it when it succeeded. The interval grows by half each
        poll that finds the run unchanged (its `updated_at`) and drops back when it changes, up to
        `max_interval`. Raises RunFailed when it ended otherwise, RunTimeout after `timeout` s."""
        deadline = time.monotonic() + timeout
        interval, seen = poll_interval, None
        while True:
            info = self.refresh()
            changed = (info.updated_at, info.status) != seen
            if changed:
                seen = (info.updated_at, info.status)
                interval = poll_interval
                if on_update is not None:
                    on_update(info)
            else:
                interval = min(max_interval, interval * 1.5)
            if info.finished:
                if raise_on_failure and not info.succeeded:
                    raise RunFailed(info)
                return info
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RunTimeout(info, timeout)
            time.sleep(min(interval, remaining))

    def cancel(self) -> dict[str, Any]:
        return self._client.runs.cancel(self.id)

    def logs(self, **filters: Any) -> list[LogLine]:
        return self._client.runs.logs(self.id, **filters)

    def __repr__(self) -> str:
        return f"<Run {self.id} {self.status}>"


class Pipelines:
    """Seed 001's pipelines by name: `/api/v1/pipelines/{name}`."""

    def __init__(self, client: Client):
        self._client = client
        self._t = client.transport

    def list(self, status: str | None = None, limit: int | None = None) -> list[Pipeline]:
        """Every pipeline (all pages), or the first `limit`."""
        found: list[Pipeline] = []
        page = 1
        while True:
            per_page = min(100, limit - len(found)) if limit else 100
            body = self._t.json(
                "GET", "/api/v1/pipelines", params={"status": status, "page": page, "per_page": per_page}
            )
            items = body.get("data") or []
            found += [Pipeline.model_validate(item) for item in items]
            total = (body.get("meta") or {}).get("total", len(found))
            if not items or len(found) >= total or (limit and len(found) >= limit):
                return found[:limit] if limit else found
            page += 1

    def get(self, name: str) -> Pipeline:
        return Pipeline.model_validate(self._t.json("GET", f"/api/v1/pipelines/{name}")["data"])

    def create(self, definition: dict[str, Any] | str) -> Pipeline:
        """Create from a dict (JSON) or YAML text, as seed 001 allows."""
        return Pipeline.model_validate(self._send("POST", "/api/v1/pipelines", definition)["data"])

    def update(self, name: str, definition: dict[str, Any] | str) -> Pipeline:
        return Pipeline.model_validate(self._send("PUT", f"/api/v1/pipelines/{name}", definition)["data"])

    def apply(self, definition: dict[str, Any] | str) -> tuple[Pipeline, bool]:
        """Create the pipeline, or update it when its name is taken: (pipeline, created)."""
        name = definition.get("name") if isinstance(definition, dict) else _yaml_name(definition)
        try:
            return self.create(definition), True
        except Conflict:
            if not name:
                raise
            return self.update(name, definition), False

    def delete(self, name: str) -> None:
        self._t.request("DELETE", f"/api/v1/pipelines/{name}")

    def run(
        self,
        name: str,
        full_refresh: bool = False,
        dry_run: bool = False,
        variables: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Run | Model:
        """Trigger a run; a `Run` to `.wait()` on. With `dry_run`, the dry run's per-node result.
        The trigger carries an Idempotency-Key, so a retried request never starts a second run."""
        body = {"full_refresh": full_refresh, "dry_run": dry_run, "variables": variables or {}}
        if params:
            body["params"] = params
        headers = {"Idempotency-Key": idempotency_key or f"sdk-{uuid.uuid4()}"}
        data = self._t.json("POST", f"/api/v1/pipelines/{name}/runs", json_body=body, headers=headers)["data"]
        if dry_run:
            return Model.model_validate(data)
        return Run(self._client, RunInfo.model_validate(data))

    def runs(self, name: str, limit: int = 10) -> list[RunInfo]:
        """The pipeline's latest runs, newest first."""
        body = self._t.json("GET", f"/api/v1/pipelines/{name}/runs", params={"per_page": limit})
        return [RunInfo.model_validate(item) for item in body.get("data") or []]

    def backfill(
        self,
        name: str,
        start_date: str,
        end_date: str,
        *,
        dry_run: bool = False,
        reprocess: str | None = None,
    ) -> dict[str, Any]:
        """Seed 002's backfill of the pipeline named `name`: one child run per date, inclusive."""
        pipeline_id = self.get(name).id
        body: dict[str, Any] = {"start_date": start_date, "end_date": end_date}
        if dry_run:
            body["dry_run"] = True
        if reprocess:
            body["reprocess"] = reprocess
        return self._t.json("POST", f"/api/pipelines/{pipeline_id}/backfill", json_body=body)

    def _send(self, method: str, path: str, definition: dict[str, Any] | str) -> Any:
        if isinstance(definition, str):
            return self._t.json(
                method, path, content=definition.encode(), headers={"Content-Type": YAML_CONTENT_TYPE}
            )
        return self._t.json(method, path, json_body=definition)


def _yaml_name(text: str) -> str | None:
    import yaml

    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    return loaded.get("name") if isinstance(loaded, dict) else None


class Runs:
    """Seed 002's runs: `/api/runs/{id}` (ids `run-<n>` or `<n>`)."""

    def __init__(self, client: Client):
        self._client = client
        self._t = client.transport

    def get(self, run_id: str | int) -> RunInfo:
        return RunInfo.model_validate(self._t.json("GET", f"/api/runs/{run_id}"))

    def cancel(self, run_id: str | int) -> dict[str, Any]:
        return self._t.json("POST", f"/api/runs/{run_id}/cancel")

    def resume(self, run_id: str | int) -> Run:
        """Resume a failed run: a new run that reuses the nodes which succeeded."""
        answer = self._t.json("POST", f"/api/runs/{run_id}/resume")
        return Run(self._client, RunInfo.model_validate(answer))

    def logs(self, run_id: str | int, node_id: str | None = None, level: str | None = None) -> list[LogLine]:
        lines = self._t.json("GET", f"/api/runs/{run_id}/logs", params={"node_id": node_id, "level": level})
        return [LogLine.model_validate(line) for line in lines]

    def wait(self, run_id: str | int, timeout: float = 300, **options: Any) -> RunInfo:
        return Run(self._client, self.get(run_id)).wait(timeout, **options)


class Tracked:
    """An execution started by `Executions.track`: set its counts before the block ends."""

    def __init__(self, execution_id: int, started: _dt.datetime):
        self.id = execution_id
        self.started = started
        self.counts: dict[str, int] = {}
        self.metadata: dict[str, Any] = {}

    def record(
        self,
        total_rows: int | None = None,
        inserts: int | None = None,
        updates: int | None = None,
        soft_deletes: int | None = None,
        **metadata: Any,
    ) -> None:
        given = {
            "total_rows": total_rows,
            "inserts": inserts,
            "updates": updates,
            "soft_deletes": soft_deletes,
        }
        self.counts.update({k: v for k, v in given.items() if v is not None})
        self.metadata.update(metadata)


class Executions:
    """Watcher's execution reports (seed 004) for pipelines that run elsewhere."""

    def __init__(self, client: Client):
        self._t = client.transport

    def pipeline_id(self, name: str, pipeline_type: str = "external") -> int:
        """The Watcher pipeline `name` (created with type `pipeline_type` when new): its id."""
        answer = self._t.json(
            "POST", "/pipeline", json_body={"name": name, "pipeline_type_name": pipeline_type}
        )
        return int(answer["id"])

    def start(
        self,
        pipeline_id: int,
        *,
        start_date: _dt.datetime | str | None = None,
        parent_id: int | None = None,
        watermark: str | None = None,
        next_watermark: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> int:
        body: dict[str, Any] = {"pipeline_id": pipeline_id}
        if start_date is not None:
            body["start_date"] = start_date if isinstance(start_date, str) else _iso(start_date)
        for key, value in (
            ("parent_id", parent_id),
            ("watermark", watermark),
            ("next_watermark", next_watermark),
            ("execution_metadata", metadata),
        ):
            if value is not None:
                body[key] = value
        return int(self._t.json("POST", "/start_pipeline_execution", json_body=body)["id"])

    def end(
        self,
        execution_id: int,
        completed_successfully: bool,
        *,
        end_date: _dt.datetime | str | None = None,
        total_rows: int | None = None,
        inserts: int | None = None,
        updates: int | None = None,
        soft_deletes: int | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        moment = end_date or _utc_now()
        body: dict[str, Any] = {
            "id": execution_id,
            "completed_successfully": completed_successfully,
            "end_date": moment if isinstance(moment, str) else _iso(moment),
        }
        for key, value in (
            ("total_rows", total_rows),
            ("inserts", inserts),
            ("updates", updates),
            ("soft_deletes", soft_deletes),
            ("execution_metadata", metadata),
        ):
            if value is not None:
                body[key] = value
        self._t.request("POST", "/end_pipeline_execution", json_body=body)

    def get(self, execution_id: int) -> Execution:
        return Execution.model_validate(self._t.json("GET", f"/pipeline_execution/{execution_id}"))

    @contextlib.contextmanager
    def track(
        self,
        pipeline: int | str,
        *,
        parent_id: int | None = None,
        next_watermark: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Iterator[Tracked]:
        """Start an execution of `pipeline` (an id, or a name created when new); end it when the
        block ends: successful with the counts given to `record()`, or failed with the exception's
        text in its metadata, which is raised on."""
        pipeline_id = pipeline if isinstance(pipeline, int) else self.pipeline_id(pipeline)
        started = _utc_now()
        execution_id = self.start(
            pipeline_id,
            start_date=started,
            parent_id=parent_id,
            next_watermark=next_watermark,
            metadata=metadata,
        )
        tracked = Tracked(execution_id, started)
        try:
            yield tracked
        except BaseException as exc:
            failure = {**(metadata or {}), **tracked.metadata, "error": f"{type(exc).__name__}: {exc}"}
            self.end(execution_id, False, end_date=self._after(started), metadata=failure, **tracked.counts)
            raise
        merged = {**(metadata or {}), **tracked.metadata} or None
        self.end(execution_id, True, end_date=self._after(started), metadata=merged, **tracked.counts)

    @staticmethod
    def _after(started: _dt.datetime) -> _dt.datetime:
        # Watcher refuses an end at or before the start (400); a block can be quicker than 1 ms.
        return max(_utc_now(), started + _dt.timedelta(milliseconds=1))


class Datasets:
    """Datasets are Watcher's addresses (SPEC 1): the sources and targets of every pipeline."""

    def __init__(self, client: Client):
        self._t = client.transport

    def list(self) -> list[Address]:
        return [Address.model_validate(a) for a in self._t.json("GET", "/address")]

    def get(self, address_id: int) -> Address:
        return Address.model_validate(self._t.json("GET", f"/address/{address_id}"))

    def find(self, name: str) -> Address:
        lowered = name.strip().lower()
        for address in self.list():
            if address.name == lowered:
                return address
        raise NotFound(404, f"No dataset named {name!r}.", "GET", "/address")


class Lineage:
    def __init__(self, client: Client):
        self._t = client.transport

    def project(self) -> dict[str, Any]:
        """`GET /api/lineage`: pipelines, datasets, connectors and variables as one graph."""
        return self._t.json("GET", "/api/lineage")

    def of(self, address_id: int) -> dict[str, Any]:
        """A dataset's upstream and downstream datasets (`GET /address_lineage/{id}`)."""
        return self._t.json("GET", f"/address_lineage/{address_id}")

    def send(self, events: dict[str, Any] | list[dict[str, Any]]) -> dict[str, Any]:
        """Report OpenLineage RunEvents (one, or a batch) to `POST /api/v1/lineage`."""
        return self._t.json("POST", "/api/v1/lineage", json_body=events)


class Alerts:
    def __init__(self, client: Client):
        self._t = client.transport

    def list(self, **filters: Any) -> list[dict[str, Any]]:
        """`GET /api/pipeline/anomalies` (filters: type, severity, dataset_name, rule_id, pipeline_id)."""
        answer = self._t.json("GET", "/api/pipeline/anomalies", params=filters)
        if isinstance(answer, dict):
            for key in ("data", "alerts", "anomalies", "items"):
                if isinstance(answer.get(key), list):
                    return answer[key]
        return answer


def connection(url: str | None, api_key: str | None) -> tuple[str, str | None]:
    """The URL and key a client uses: the arguments, else SLUICE_URL / SLUICE_API_KEY, else the
    file `sluice login` wrote; a missing URL is an error, a missing key is sent as none."""
    config = load_config() if not (url and api_key) else {}
    url = url or os.environ.get(URL_VARIABLE) or config.get("url")
    api_key = api_key or os.environ.get(KEY_VARIABLE) or config.get("api_key")
    if not url:
        raise ValueError(f"No Sluice URL: pass url=, set {URL_VARIABLE}, or run `sluice login`.")
    return url, api_key


class Client:
    """Sluice from Python: `Client(url, api_key)`, or from SLUICE_URL / SLUICE_API_KEY, or from the
    file `sluice login` wrote. Use it as a context manager, or `close()` it."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 4,
        http: Any = None,
    ):
        self.url, self.api_key = connection(url, api_key)
        self.transport = Transport(self.url, self.api_key, timeout=timeout, retries=retries, http=http)
        self.pipelines = Pipelines(self)
        self.runs = Runs(self)
        self.executions = Executions(self)
        self.datasets = Datasets(self)
        self.lineage = Lineage(self)
        self.alerts = Alerts(self)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<sluice.client.Client {self.url}>"
