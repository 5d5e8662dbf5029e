"""Alert notifications (issue 13): Slack-compatible JSON, retried while the receiver fails with 5xx,
429 or cannot be reached; never retried on another 4xx. A real HTTP server on loopback."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pendulum
import pytest

from sluice.adapters.webhook import WebhookNotifier
from sluice.domain.alerts import Alert


@pytest.fixture
def receiver():
    state = {"answers": [], "received": []}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length") or 0)
            state["received"].append(json.loads(self.rfile.read(length)))
            code = state["answers"].pop(0) if state["answers"] else 200
            self.send_response(code)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield state
    server.shutdown()


ALERT = Alert(
    1, "acme", "data_quality", "critical", "not_null on orders.id: 1 of 400 rows", pendulum.now("UTC")
)


def test_a_failing_receiver_is_retried_until_it_takes_the_alert(receiver):
    receiver["answers"] = [503, 429]
    slept = []
    notifier = WebhookNotifier(receiver["url"], retry_delays=(0.01, 0.02), sleep=slept.append)
    notifier.notify(ALERT)
    assert len(receiver["received"]) == 3 and slept == [0.01, 0.02]
    text = receiver["received"][-1]["text"]
    assert text.startswith("[CRITICAL] Sluice data_quality alert in project acme") and "1 of 400" in text


def test_another_4xx_is_not_retried_and_an_unreachable_one_gives_up(receiver):
    receiver["answers"] = [400]
    assert (
        WebhookNotifier(receiver["url"], retry_delays=(0.01,), sleep=lambda s: None).post({"text": "x"})
        is False
    )
    assert len(receiver["received"]) == 1
    slept = []
    gone = WebhookNotifier(
        "http://127.0.0.1:9/hook", timeout=0.5, retry_delays=(0.01, 0.01), sleep=slept.append
    )
    assert gone.post({"text": "x"}) is False and len(slept) == 2
