"""The SDK's HTTP transport: bearer auth, retries with jittered backoff, errors from `detail`.

Retries: a GET, PUT, DELETE (idempotent) or a POST that carries an Idempotency-Key is retried on
429 and 5xx and on connection errors; any other POST only on 429 and on a connection that never
reached the server (retrying it after a 5xx could do the work twice). `Retry-After` is honoured.
"""

from __future__ import annotations

import json
import random
import time
from typing import Any

import httpx

from sluice.client.errors import ConnectionFailed, error_for

RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
USER_AGENT = "sluice-python"


def backoff(attempt: int, base: float = 0.25, cap: float = 8.0) -> float:
    """Full jitter (AWS's "Exponential Backoff And Jitter"): uniform in [0, min(cap, base * 2^n)]."""
    return random.uniform(0, min(cap, base * (2**attempt)))


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def detail_of(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "detail" in body:
        return body["detail"]
    if isinstance(body, dict) and "message" in body:  # API Gateway's own answers
        return body["message"]
    text = response.text.strip()
    return (
        f"the server answered {response.status_code} without a Sluice error body"
        f"{': ' + text[:200] if text else ''} (is the URL a Sluice API?)"
    )


class Transport:
    def __init__(
        self,
        url: str,
        api_key: str | None,
        *,
        timeout: float = 30.0,
        retries: int = 4,
        http: httpx.Client | None = None,
    ):
        self.url = url.rstrip("/")
        self.retries = retries
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.http = http or httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        if http is not None:
            self.http.headers.update(headers)

    def close(self) -> None:
        self.http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        content: bytes | str | None = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        method = method.upper()
        headers = dict(headers or {})
        safe_to_repeat = method in IDEMPOTENT_METHODS or "Idempotency-Key" in headers
        if json_body is not None:
            content = json.dumps(json_body)
            headers.setdefault("Content-Type", "application/json")
        params = {k: v for k, v in (params or {}).items() if v is not None}
        attempt = 0
        while True:
            try:
                response = self.http.request(method, path, content=content, params=params, headers=headers)
            except httpx.ConnectError as exc:  # never reached the server: safe to try again
                if attempt < self.retries:
                    time.sleep(backoff(attempt))
                    attempt += 1
                    continue
                raise ConnectionFailed(f"No Sluice answered at {self.url}: {exc}") from exc
            except httpx.TransportError as exc:
                if safe_to_repeat and attempt < self.retries:
                    time.sleep(backoff(attempt))
                    attempt += 1
                    continue
                raise ConnectionFailed(f"{method} {self.url}{path} failed: {exc!r}") from exc
            status = response.status_code
            retryable = status == 429 or (status in RETRIED_STATUSES and safe_to_repeat)
            if retryable and attempt < self.retries:
                time.sleep(retry_after(response) or backoff(attempt))
                attempt += 1
                continue
            if status >= 400:
                raise error_for(status, detail_of(response), method, path)
            return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise ConnectionFailed(
                f"{method} {self.url}{path} answered {response.status_code} with a body that is not "
                "JSON; is the URL a Sluice API?"
            ) from exc
