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


class Call:
    """One request and its retry policy, shared by the sync and the async transport: what to send,
    and after each attempt whether to pause and try again or to stop (returning or raising)."""

    def __init__(
        self,
        url: str,
        method: str,
        path: str,
        json_body: Any,
        content: bytes | str | None,
        params: dict[str, Any] | None,
        headers: dict[str, str] | None,
        retries: int,
    ):
        self.url, self.method, self.path, self.retries = url, method.upper(), path, retries
        headers = dict(headers or {})
        self.safe_to_repeat = self.method in IDEMPOTENT_METHODS or "Idempotency-Key" in headers
        if json_body is not None:
            content = json.dumps(json_body)
            headers.setdefault("Content-Type", "application/json")
        self.arguments = {
            "content": content,
            "params": {k: v for k, v in (params or {}).items() if v is not None},
            "headers": headers,
        }
        self.attempt = 0

    def _next(self, pause: float) -> float:
        self.attempt += 1
        return pause

    def pause_after_error(self, exc: httpx.TransportError) -> float:
        """The pause before trying again, or ConnectionFailed when the error is final."""
        never_sent = isinstance(exc, httpx.ConnectError)  # never reached the server: safe to repeat
        if (never_sent or self.safe_to_repeat) and self.attempt < self.retries:
            return self._next(backoff(self.attempt))
        if never_sent:
            raise ConnectionFailed(f"No Sluice answered at {self.url}: {exc}") from exc
        raise ConnectionFailed(f"{self.method} {self.url}{self.path} failed: {exc!r}") from exc

    def pause_after(self, response: httpx.Response) -> float | None:
        """None when `response` is the answer; a pause when to try again; the typed error when final."""
        status = response.status_code
        retryable = status == 429 or (status in RETRIED_STATUSES and self.safe_to_repeat)
        if retryable and self.attempt < self.retries:
            return self._next(retry_after(response) or backoff(self.attempt))
        if status >= 400:
            raise error_for(status, detail_of(response), self.method, self.path)
        return None

    def parsed(self, response: httpx.Response) -> Any:
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise ConnectionFailed(
                f"{self.method} {self.url}{self.path} answered {response.status_code} with a body that "
                "is not JSON; is the URL a Sluice API?"
            ) from exc


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
        call = Call(self.url, method, path, json_body, content, params, headers, self.retries)
        while True:
            try:
                response = self.http.request(call.method, path, **call.arguments)
            except httpx.TransportError as exc:
                time.sleep(call.pause_after_error(exc))
                continue
            pause = call.pause_after(response)
            if pause is None:
                return response
            time.sleep(pause)

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        return Call(self.url, method, path, None, None, None, None, 0).parsed(response)
