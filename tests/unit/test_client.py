"""The SDK's own behaviour, against a scripted HTTP server (httpx.MockTransport): retries and which
requests they may repeat, errors mapped from `detail`, the wait's backoff, config file, imports."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import httpx
import pytest

from sluice.client import (
    AuthenticationFailed,
    Client,
    ConnectionFailed,
    NotFound,
    RateLimited,
    RunFailed,
    RunInfo,
    RunTimeout,
    ServerError,
    ValidationFailed,
)
from sluice.client import http as transport_module
from sluice.client.config import load_config, save_config


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(transport_module.time, "sleep", slept.append)
    return slept


def scripted(*answers, seen=None):
    """A client whose server answers `answers` in order (each an httpx.Response or an exception)."""
    queue = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    http = httpx.Client(base_url="http://sluice.test", transport=httpx.MockTransport(handle))
    return Client("http://sluice.test", "df_key_test", http=http, retries=3)


def test_reads_are_retried_on_429_and_5xx_with_retry_after_honoured(no_sleep):
    seen = []
    client = scripted(
        httpx.Response(503, json={"detail": "busy"}),
        httpx.Response(429, json={"detail": "slow down"}, headers={"Retry-After": "2"}),
        httpx.Response(200, json={"data": {"name": "p"}}),
        seen=seen,
    )
    assert client.pipelines.get("p").name == "p"
    assert len(seen) == 3
    assert no_sleep[1] == 2.0
    assert 0 <= no_sleep[0] <= 0.25  # full jitter: uniform in [0, base * 2^0]
    assert seen[0].headers["authorization"] == "Bearer df_key_test"


def test_retries_give_up_with_the_typed_error_of_the_last_answer():
    client = scripted(*[httpx.Response(500, json={"detail": "Internal error; it has been logged."})] * 4)
    with pytest.raises(ServerError) as failed:
        client.pipelines.get("p")
    assert failed.value.status_code == 500 and "logged" in failed.value.message


def test_a_post_without_idempotency_key_is_not_repeated_after_a_5xx():
    seen = []
    client = scripted(httpx.Response(502, json={"message": "Bad Gateway"}), seen=seen)
    with pytest.raises(ServerError):
        client.pipelines.create({"name": "p"})
    assert len(seen) == 1


def test_a_run_trigger_carries_an_idempotency_key_and_is_retried_with_the_same_key():
    seen = []
    answer = {"data": {"id": "run-7", "pipeline": "p", "status": "pending", "progress": {"stage": "x"}}}
    client = scripted(httpx.Response(503, json={"detail": "x"}), httpx.Response(202, json=answer), seen=seen)
    run = client.pipelines.run("p", full_refresh=True, variables={"k": "v"})
    assert run.id == "run-7"
    keys = {request.headers["idempotency-key"] for request in seen}
    assert len(seen) == 2 and len(keys) == 1
    assert json.loads(seen[0].content) == {"full_refresh": True, "dry_run": False, "variables": {"k": "v"}}


def test_errors_are_typed_from_the_status_and_carry_detail():
    client = scripted(
        httpx.Response(401, json={"detail": "API key is not valid."}),
        httpx.Response(404, json={"detail": "Pipeline 'x' not found."}),
        httpx.Response(422, json={"detail": [{"loc": ["body", "status"], "msg": "bad", "type": "x"}]}),
        httpx.Response(429, json={"detail": "slow"}),
    )
    with pytest.raises(AuthenticationFailed, match="API key is not valid"):
        client.pipelines.list()
    with pytest.raises(NotFound, match="not found"):
        client.pipelines.get("x")
    with pytest.raises(ValidationFailed) as invalid:
        client.pipelines.create({"name": "x"})
    assert invalid.value.message == "status: bad"
    client.transport.retries = 0
    with pytest.raises(RateLimited):
        client.pipelines.get("x")


def test_a_server_that_is_not_sluice_says_so():
    client = scripted(httpx.Response(404, text="<html>nginx</html>"))
    with pytest.raises(NotFound) as wrong:
        client.pipelines.list()
    assert "is the URL a Sluice API?" in wrong.value.message


def test_connection_errors_are_connection_failed_naming_the_url():
    client = scripted(*[httpx.ConnectError("refused")] * 4)
    with pytest.raises(ConnectionFailed, match="No Sluice answered at http://sluice.test"):
        client.pipelines.list()


def run_answer(status, updated_at, node_status="running", **extra):
    return httpx.Response(
        200,
        json={
            "id": "run-1",
            "pipeline_id": "pipeline-1",
            "status": status,
            "started_at": "2026-01-01T00:00:00Z",
            "updated_at": updated_at,
            "node_runs": [
                {"id": "nr-1", "node_id": "load", "status": node_status, "error": extra.get("error")}
            ],
            **{k: v for k, v in extra.items() if k != "error"},
        },
    )


def test_wait_backs_off_while_the_run_is_unchanged_and_resets_when_it_changes(monkeypatch):
    from sluice.client import client as client_module

    pauses: list[float] = []
    monkeypatch.setattr(client_module.time, "sleep", pauses.append)
    client = scripted(
        run_answer("running", "t1"),
        run_answer("running", "t1"),
        run_answer("running", "t1"),
        run_answer("running", "t2"),
        run_answer("success", "t3", "success", finished_at="2026-01-01T00:00:02Z"),
    )
    run = client_module.Run(client, client_module.RunInfo(id="run-1", status="pending"))
    updates = []
    result = run.wait(timeout=60, poll_interval=0.1, on_update=updates.append)
    assert result.succeeded and result.seconds == 2.0
    assert pauses == pytest.approx([0.1, 0.15, 0.225, 0.1])
    assert [u.updated_at for u in updates] == ["t1", "t2", "t3"]


def test_wait_raises_run_failed_with_the_failed_nodes_and_timeout_when_time_is_up(monkeypatch):
    from sluice.client import client as client_module

    monkeypatch.setattr(client_module.time, "sleep", lambda _s: None)
    client = scripted(run_answer("failed", "t1", "failed", error="boom", finished_at="2026-01-01T00:00:01Z"))
    run = client_module.Run(client, client_module.RunInfo(id="run-1", status="pending"))
    with pytest.raises(RunFailed, match="ended failed .failed nodes: load."):
        run.wait()
    client = scripted(*[run_answer("running", "t1")] * 50)
    run = client_module.Run(client, client_module.RunInfo(id="run-1", status="pending"))
    with pytest.raises(RunTimeout):
        run.wait(timeout=0)


def test_yaml_text_is_sent_as_yaml():
    seen = []
    client = scripted(httpx.Response(201, json={"data": {"name": "p"}}), seen=seen)
    client.pipelines.create("name: p\nsources: []\n")
    assert seen[0].headers["content-type"] == "application/yaml"
    assert seen[0].content == b"name: p\nsources: []\n"


def test_client_reads_the_environment_and_the_login_file(monkeypatch, tmp_path):
    monkeypatch.setenv("SLUICE_CONFIG", str(tmp_path / "sluice" / "config.json"))
    monkeypatch.delenv("SLUICE_URL", raising=False)
    monkeypatch.delenv("SLUICE_API_KEY", raising=False)
    with pytest.raises(ValueError, match="No Sluice URL"):
        Client()
    path = save_config("http://saved.test/", "df_key_saved")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_config() == {"url": "http://saved.test", "api_key": "df_key_saved"}
    assert (Client().url, Client().api_key) == ("http://saved.test", "df_key_saved")
    monkeypatch.setenv("SLUICE_URL", "http://env.test")
    monkeypatch.setenv("SLUICE_API_KEY", "df_key_env")
    assert (Client().url, Client().api_key) == ("http://env.test", "df_key_env")
    path.chmod(0o644)
    save_config("http://again.test", "df_key_again")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_sdk_and_cli_import_nothing_of_the_server():
    code = (
        "import sys, sluice.client, sluice.cli.commands, sluice.cli.progress\n"
        "server = [m for m in ('boto3', 'botocore', 'fastapi', 'starlette', 'duckdb', 'mangum',"
        " 'aws_lambda_powertools', 'sluice.domain', 'sluice.store', 'sluice.edge') if m in sys.modules]\n"
        "print(server)"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ))
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "[]"


def test_the_async_twin_retries_waits_and_raises_as_the_sync_client(monkeypatch):
    import asyncio

    from sluice.client import AsyncClient
    from sluice.client import aio as aio_module

    pauses: list[float] = []

    async def no_pause(seconds: float) -> None:
        pauses.append(seconds)

    monkeypatch.setattr(aio_module.asyncio, "sleep", no_pause)
    answers = [
        httpx.Response(503, json={"detail": "busy"}),
        httpx.Response(202, json={"data": {"id": "run-1", "pipeline": "p", "status": "pending"}}),
        run_answer("running", "t1"),
        run_answer("running", "t1"),
        run_answer("failed", "t2", "failed", error="boom"),
        httpx.Response(404, json={"detail": "Pipeline 'q' not found."}),
    ]
    seen = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0)

    async def scenario() -> None:
        http = httpx.AsyncClient(base_url="http://sluice.test", transport=httpx.MockTransport(handle))
        async with AsyncClient("http://sluice.test", "df_key_async", http=http) as client:
            run = await client.pipelines.run("p")
            with pytest.raises(RunFailed):
                await run.wait(timeout=60)
            with pytest.raises(NotFound, match="not found"):
                await client.pipelines.get("q")

    asyncio.run(scenario())
    assert seen[0].headers["idempotency-key"] == seen[1].headers["idempotency-key"]
    assert seen[0].headers["authorization"] == "Bearer df_key_async"
    assert pauses[1:] == pytest.approx([0.1, 0.15])


def test_the_live_display_shows_each_node_with_its_status_rows_and_time():
    from rich.console import Console

    from sluice.cli.progress import NodeProgress
    from sluice.client.models import NodeRun

    info = RunInfo(
        id="run-3",
        status="running",
        node_runs=[
            NodeRun(node_id="orders", status="success", row_count=3, duration_ms=120),
            NodeRun(node_id="load", status="running"),
        ],
    )
    console = Console(record=True, width=80)
    console.print(NodeProgress("run-3", enabled=False)._render(info))
    text = console.export_text()
    assert "run run-3: running" in text
    assert "orders" in text and "success" in text and "120" in text
    assert "load" in text and "running" in text
