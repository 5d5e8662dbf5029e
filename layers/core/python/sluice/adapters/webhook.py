"""Alert notifications to a Slack-compatible incoming webhook: the adapter of sluice.domain.alerts.Notifier."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from aws_lambda_powertools import Logger

from sluice.domain.alerts import Alert, alert_text

TIMEOUT_SECONDS = 3.0

logger = Logger(service="sluice")


class WebhookNotifier:
    """POSTs `{"text": ...}` as JSON; a slow or failing receiver is logged and otherwise ignored."""

    def __init__(self, url: str, timeout: float = TIMEOUT_SECONDS):
        self.url = url
        self.timeout = timeout

    def notify(self, alert: Alert) -> None:
        self.post({"text": alert_text(alert)})

    def post(self, payload: dict) -> bool:
        request = urllib.request.Request(
            self.url,
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - operator-set URL
                response.read()
            return True
        except (urllib.error.URLError, OSError, ValueError) as exc:
            logger.warning("alert webhook failed", extra={"reason": str(exc)})
            return False
