"""Run engine nodes in tests: `NodeRunner(storage).run("t", "transform", {...}, inputs={...})`, plus a
local JSON HTTP server for http sources."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sluice.engine import ArtifactRef, Node, NodeResult, NodeRun, RunOptions, Storage, execute_node


class NodeRunner:
    """Calls execute_node as the orchestration layer will: one node, its upstream refs, the options."""

    def __init__(self, storage: Storage, project: str = "acme", run_id: str = "run-1"):
        self.storage = storage
        self.project = project
        self.run_id = run_id

    def run(
        self,
        node_id: str,
        node_type: str,
        config: dict[str, Any],
        inputs: dict[str, NodeResult | ArtifactRef] | None = None,
        *,
        run_id: str | None = None,
        storage: Storage | None = None,
        **options: Any,
    ) -> NodeResult:
        refs = {
            name: value.output if isinstance(value, NodeResult) else value
            for name, value in (inputs or {}).items()
        }
        node = Node.from_dict({"id": node_id, "nodeType": node_type, "config": config})
        run = NodeRun(self.project, run_id or self.run_id, node, refs, RunOptions(**options))
        return execute_node(run, storage or self.storage)


def rows_of(result: NodeResult) -> list[dict[str, Any]]:
    return result.preview["rows"]


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def json_server(routes: dict[str, Any], *, stall_path: str | None = None) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 answering each path in `routes` with its JSON (a str body is sent
    as is); `stall_path` accepts the request and never answers. Yields the base URL."""
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path == stall_path:
                release.wait(10)
                return
            if self.path not in routes:
                self.send_error(404, "Not Found")
                return
            body = routes[self.path]
            raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


class Stopwatch:
    def __enter__(self) -> Stopwatch:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.started
