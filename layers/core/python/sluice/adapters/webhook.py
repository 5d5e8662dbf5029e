"""Alert notifications to a Slack-compatible incoming webhook: the adapter of sluice.domain.alerts.Notifier."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from aws_lambda_powertools import Logger

from sluice.domain.alerts import Alert, alert_text

TIMEOUT_SECONDS = 3.0
RETRY_DELAYS = (0.5, 1.5)  # three attempts in all

logger = Logger(service="sluice")


class WebhookNotifier:
    """POSTs `{"text": ...}` as JSON, Slack's incoming-webhook shape. A receiver that cannot be
    reached, answers 5xx or 429 is tried again (RETRY_DELAYS apart); any other 4xx is not (the
    same request would fail again). A receiver that never takes it is logged and otherwise ignored."""

    def __init__(
        self,
        url: str,
        timeout: float = TIMEOUT_SECONDS,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.url = url
        self.timeout = timeout
        self.retry_delays = retry_delays
        self.sleep = sleep

    def notify(self, alert: Alert) -> None:
        self.post({"text": alert_text(alert)})

    def post(self, payload: dict) -> bool:
        body = json.dumps(payload).encode()
        for attempt in range(len(self.retry_delays) + 1):
            if attempt:
                self.sleep(self.retry_delays[attempt - 1])
            request = urllib.request.Request(
                self.url, data=body, headers={"Content-Type": "application/json"}, method="POST"
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - operator-set URL
                    response.read()
                return True
            except urllib.error.HTTPError as exc:
                retryable = exc.code >= 500 or exc.code == 429
                logger.warning("alert webhook refused", extra={"status": exc.code, "attempt": attempt + 1})
                if not retryable:
                    return False
            except (urllib.error.URLError, OSError, ValueError) as exc:
                logger.warning("alert webhook failed", extra={"reason": str(exc), "attempt": attempt + 1})
        return False
