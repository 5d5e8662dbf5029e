"""The async twin of the SDK's most used calls: `AsyncClient` with pipelines, runs and lineage,
and `AsyncRun.wait()`. Same retries, errors and models as `sluice.client.Client` (one `Call`
policy in sluice.client.http); executions, datasets and alerts are the sync client's only."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx

from sluice.client.client import YAML_CONTENT_TYPE, connection
from sluice.client.errors import RunFailed, RunTimeout
from sluice.client.http import USER_AGENT, Call
from sluice.client.models import LogLine, Model, Pipeline, RunInfo


class AsyncTransport:
    def __init__(
        self, url: str, api_key: str | None, *, timeout: float = 30.0, retries: int = 4, http: Any = None
    ):
        self.url = url.rstrip("/")
        self.retries = retries
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.http = http or httpx.AsyncClient(base_url=self.url, headers=headers, timeout=timeout)
        if http is not None:
            self.http.headers.update(headers)

    async def json(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        content: bytes | str | None = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        call = Call(self.url, method, path, json_body, content, params, headers, self.retries)
        while True:
            try:
                response = await self.http.request(call.method, path, **call.arguments)
            except httpx.TransportError as exc:
                await asyncio.sleep(call.pause_after_error(exc))
                continue
            pause = call.pause_after(response)
            if pause is None:
                return call.parsed(response)
            await asyncio.sleep(pause)

    async def close(self) -> None:
        await self.http.aclose()


class AsyncRun:
    def __init__(self, client: AsyncClient, info: RunInfo):
        self._client = client
        self.info = info

    @property
    def id(self) -> str:
        return self.info.id

    async def wait(
        self,
        timeout: float = 300,
        *,
        poll_interval: float = 0.1,
        max_interval: float = 5.0,
        raise_on_failure: bool = True,
    ) -> RunInfo:
        """As `sluice.client.Run.wait`: backs off while `updated_at` stays the same."""
        deadline = time.monotonic() + timeout
        interval, seen = poll_interval, None
        while True:
            self.info = info = await self._client.runs.get(self.id)
            if (info.updated_at, info.status) != seen:
                seen, interval = (info.updated_at, info.status), poll_interval
            else:
                interval = min(max_interval, interval * 1.5)
            if info.finished:
                if raise_on_failure and not info.succeeded:
                    raise RunFailed(info)
                return info
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RunTimeout(info, timeout)
            await asyncio.sleep(min(interval, remaining))


class AsyncPipelines:
    def __init__(self, client: AsyncClient):
        self._client, self._t = client, client.transport

    async def list(self, status: str | None = None, per_page: int = 100, page: int = 1) -> list[Pipeline]:
        body = await self._t.json(
            "GET", "/api/v1/pipelines", params={"status": status, "page": page, "per_page": per_page}
        )
        return [Pipeline.model_validate(item) for item in body.get("data") or []]

    async def get(self, name: str) -> Pipeline:
        return Pipeline.model_validate((await self._t.json("GET", f"/api/v1/pipelines/{name}"))["data"])

    async def create(self, definition: dict[str, Any] | str) -> Pipeline:
        return Pipeline.model_validate((await self._send("POST", "/api/v1/pipelines", definition))["data"])

    async def update(self, name: str, definition: dict[str, Any] | str) -> Pipeline:
        return Pipeline.model_validate(
            (await self._send("PUT", f"/api/v1/pipelines/{name}", definition))["data"]
        )

    async def delete(self, name: str) -> None:
        await self._t.json("DELETE", f"/api/v1/pipelines/{name}")

    async def run(
        self,
        name: str,
        full_refresh: bool = False,
        dry_run: bool = False,
        variables: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> AsyncRun | Model:
        body = {"full_refresh": full_refresh, "dry_run": dry_run, "variables": variables or {}}
        headers = {"Idempotency-Key": idempotency_key or f"sdk-{uuid.uuid4()}"}
        answer = await self._t.json("POST", f"/api/v1/pipelines/{name}/runs", json_body=body, headers=headers)
        if dry_run:
            return Model.model_validate(answer["data"])
        return AsyncRun(self._client, RunInfo.model_validate(answer["data"]))

    async def runs(self, name: str, limit: int = 10) -> list[RunInfo]:
        body = await self._t.json("GET", f"/api/v1/pipelines/{name}/runs", params={"per_page": limit})
        return [RunInfo.model_validate(item) for item in body.get("data") or []]

    async def _send(self, method: str, path: str, definition: dict[str, Any] | str) -> Any:
        if isinstance(definition, str):
            return await self._t.json(
                method, path, content=definition.encode(), headers={"Content-Type": YAML_CONTENT_TYPE}
            )
        return await self._t.json(method, path, json_body=definition)


class AsyncRuns:
    def __init__(self, client: AsyncClient):
        self._client, self._t = client, client.transport

    async def get(self, run_id: str | int) -> RunInfo:
        return RunInfo.model_validate(await self._t.json("GET", f"/api/runs/{run_id}"))

    async def cancel(self, run_id: str | int) -> dict[str, Any]:
        return await self._t.json("POST", f"/api/runs/{run_id}/cancel")

    async def resume(self, run_id: str | int) -> AsyncRun:
        return AsyncRun(
            self._client, RunInfo.model_validate(await self._t.json("POST", f"/api/runs/{run_id}/resume"))
        )

    async def logs(
        self, run_id: str | int, node_id: str | None = None, level: str | None = None
    ) -> list[LogLine]:
        lines = await self._t.json(
            "GET", f"/api/runs/{run_id}/logs", params={"node_id": node_id, "level": level}
        )
        return [LogLine.model_validate(line) for line in lines]


class AsyncLineage:
    def __init__(self, client: AsyncClient):
        self._t = client.transport

    async def send(self, events: dict[str, Any] | list[dict[str, Any]]) -> dict[str, Any]:
        return await self._t.json("POST", "/api/v1/lineage", json_body=events)


class AsyncClient:
    """`async with AsyncClient(url, api_key) as client: await client.pipelines.run(...)`."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 4,
        http: Any = None,
    ):
        self.url, api_key = connection(url, api_key)
        self.transport = AsyncTransport(self.url, api_key, timeout=timeout, retries=retries, http=http)
        self.pipelines = AsyncPipelines(self)
        self.runs = AsyncRuns(self)
        self.lineage = AsyncLineage(self)

    async def close(self) -> None:
        await self.transport.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()
