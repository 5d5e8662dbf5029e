"""End-to-end fixtures: `sluice dev` started as a real process on free ports, driven over HTTP."""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
ADMIN_KEY = "df_key_" + "e2eAdminKey0123456789abcdefghijklmnop"
JWT_SECRET = "e2e-jwt-secret-" + "x" * 24


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class RunningStack:
    process: subprocess.Popen
    base_url: str
    moto_endpoint: str
    dynamodb_endpoint: str
    output: list[str] = field(default_factory=list)
    admin_key: str = ADMIN_KEY

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30)

    @property
    def admin(self) -> httpx.Client:
        return self.client(self.admin_key)

    def stop(self, timeout: float = 30, sig: int = signal.SIGINT) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_stack(*args: str, env: dict[str, str] | None = None, port: int | None = None) -> RunningStack:
    """Start `sluice dev` in a subprocess and wait until /health answers."""
    port = port or free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
    environment.update(SLUICE_ADMIN_KEY=ADMIN_KEY, SLUICE_JWT_SECRET=JWT_SECRET, PYTHONUNBUFFERED="1")
    environment.update(env or {})
    process = subprocess.Popen(
        [sys.executable, "-m", "sluice.local.cli", "dev", "--port", str(port), *args],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    moto_endpoint = dynamodb_endpoint = ""
    deadline = time.monotonic() + 90
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            if process.poll() is not None:
                raise RuntimeError("sluice dev exited:\n" + "".join(output))
            continue
        output.append(line)
        found = re.search(r"moto at (http://[^\s,]+), DynamoDB Local at (http://[^\s)]+)\)", line)
        if found:
            moto_endpoint, dynamodb_endpoint = found.group(1), found.group(2)
        if line.startswith("State:"):
            break
    base_url = f"http://127.0.0.1:{port}"
    while time.monotonic() < deadline:
        try:
            if httpx.get(base_url + "/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        process.kill()
        raise RuntimeError("sluice dev did not answer /health:\n" + "".join(output))
    stack = RunningStack(process, base_url, moto_endpoint, dynamodb_endpoint, output)
    # Keep draining its output so the child never blocks on a full pipe.
    import threading

    def drain() -> None:
        for line in process.stdout:  # type: ignore[union-attr]
            output.append(line)

    threading.Thread(target=drain, daemon=True).start()
    return stack


class WebhookReceiver:
    """A Slack-style incoming webhook on loopback that keeps what it was sent."""

    def __init__(self) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                received.append(json.loads(self.rfile.read(length) or b"{}"))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alerts(self, project: str, kind: str | None = None, pipeline_id: int | None = None) -> list[str]:
        texts = [m.get("text", "") for m in list(self.received)]
        texts = [t for t in texts if f" in project {project}" in t]
        if kind:
            texts = [t for t in texts if f"Sluice {kind} alert" in t]
        if pipeline_id is not None:
            texts = [t for t in texts if f"(pipeline {pipeline_id})" in t]
        return texts

    def close(self) -> None:
        self.server.shutdown()


def eventually(check, timeout: float = 15, interval: float = 0.1):
    """Poll `check` until it returns something truthy; fail with its last value after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, f"condition not met within {timeout}s (last value {value!r})"
            return value
        time.sleep(interval)


@pytest.fixture(scope="session")
def webhook():
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="session")
def stack(webhook):
    running = start_stack("--ephemeral", "--param", f"AlertWebhookUrl={webhook.url}")
    yield running
    running.stop()


def moto_client(stack: RunningStack, service: str):
    """A boto3 client on the running stack's moto, or for DynamoDB its DynamoDB Local (to look
    behind the API in tests)."""
    import boto3

    return boto3.client(
        service,
        endpoint_url=stack.dynamodb_endpoint if service == "dynamodb" else stack.moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def table_dump(stack: RunningStack) -> str:
    """Every item of every table of the stack as one JSON text, binary attributes (the gzipped
    pipeline graphs) decompressed, so a test that looks for a secret also looks inside them (a test
    may Scan; the API never does)."""
    import gzip
    import json

    def readable(value):
        if isinstance(value, (bytes, bytearray)):
            raw = bytes(value)
            return (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode("utf-8", "replace")
        raise TypeError(f"{type(value).__name__} in a DynamoDB item")

    dynamodb = moto_client(stack, "dynamodb")
    items = []
    for name in dynamodb.list_tables()["TableNames"]:
        for page in dynamodb.get_paginator("scan").paginate(TableName=name):
            items += page["Items"]
    return json.dumps(items, default=readable)


@pytest.fixture
def project_admin(stack):
    """An admin API key of a fresh project (via a JWT-authenticated key creation), so tests don't share data."""
    from sluice.auth.tokens import encode_jwt

    project = "e2e-" + secrets.token_hex(4)
    token = encode_jwt(
        {"sub": "e2e", "role": "admin", "project": project, "exp": time.time() + 3600}, JWT_SECRET
    )
    with stack.client(token) as client:
        created = client.post("/api/v1/api-keys", json={"name": "e2e admin", "role": "admin"})
        assert created.status_code == 201, created.text
    return project, created.json()["key"]


def jwt_for(project: str, role: str, ttl: float = 3600, secret: str = JWT_SECRET, **extra) -> str:
    from sluice.auth.tokens import encode_jwt

    claims = {"sub": f"user-{role}", "role": role, "project": project, "exp": time.time() + ttl, **extra}
    return encode_jwt(claims, secret)


def queue_backlog(stack: RunningStack, client: httpx.Client, project: str, count: int) -> list[str]:
    """`count` real pending runs waiting in the run queue: the project is given no execution slot
    (its settings item is written directly: the settings API accepts no limit below 1), then a
    one-node pipeline is triggered `count` times. The dispatcher keeps returning them to the queue."""
    names = moto_client(stack, "dynamodb").list_tables()["TableNames"]
    table = next(n for n in names if "Table" in n)
    moto_client(stack, "dynamodb").put_item(
        TableName=table,
        Item={"PK": {"S": f"P#{project}"}, "SK": {"S": "SETTINGS"}, "max_concurrent_runs": {"N": "0"}},
    )
    created = client.post(
        "/api/v1/pipelines",
        json={
            "name": f"backlog-{secrets.token_hex(3)}",
            "nodes": [{"id": "src", "nodeType": "source", "config": {"kind": "inline", "rows": [{"a": 1}]}}],
            "edges": [],
        },
    )
    assert created.status_code == 201, created.text
    pipeline_id = created.json()["data"]["id"]
    run_ids = []
    for _ in range(count):
        triggered = client.post(f"/api/pipelines/{pipeline_id}/run", json={})
        assert triggered.status_code == 202, triggered.text
        run_ids.append(triggered.json()["id"])
    return run_ids
