"""Alert notifications to a Slack-compatible incoming webhook (SLUICE_ALERT_WEBHOOK_URL)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

from aws_lambda_powertools import Logger

from sluice.domain.alerts import Alert, Notifier, SilentNotifier, alert_text

WEBHOOK_ENV = "SLUICE_ALERT_WEBHOOK_URL"
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


def configured_notifier() -> Notifier:
    """The webhook notifier when SLUICE_ALERT_WEBHOOK_URL is set, else one that does nothing."""
    url = os.environ.get(WEBHOOK_ENV, "").strip()
    return WebhookNotifier(url) if url else SilentNotifier()
