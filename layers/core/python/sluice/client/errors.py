"""The SDK's errors: one class per way a call fails, each carrying the server's `detail` sentence."""

from __future__ import annotations

from typing import Any


class SluiceClientError(Exception):
    """Base of every error the SDK raises."""


class ConnectionFailed(SluiceClientError):
    """No Sluice answered at the URL (wrong URL, server down, DNS, TLS)."""


class ApiError(SluiceClientError):
    """The server answered with an error status; `detail` is its sentence (or 422's list)."""

    status_code: int = 0

    def __init__(self, status_code: int, detail: Any, method: str = "", path: str = ""):
        self.status_code = status_code
        self.detail = detail
        self.method, self.path = method, path
        super().__init__(f"{method} {path} -> {status_code}: {self.message}")

    @property
    def message(self) -> str:
        if isinstance(self.detail, list):  # FastAPI's 422 list: name each field that failed
            parts = []
            for issue in self.detail:
                if isinstance(issue, dict):
                    loc = ".".join(str(p) for p in issue.get("loc", []) if p != "body")
                    parts.append(f"{loc}: {issue.get('msg')}" if loc else str(issue.get("msg")))
                else:
                    parts.append(str(issue))
            return "; ".join(parts)
        return str(self.detail)


class BadRequest(ApiError):
    status_code = 400


class AuthenticationFailed(ApiError):
    """401: the API key or token is missing, wrong, expired or revoked."""

    status_code = 401


class PermissionDenied(ApiError):
    """403: the key's role is too weak for the call."""

    status_code = 403


class NotFound(ApiError):
    status_code = 404


class Conflict(ApiError):
    status_code = 409


class PayloadTooLarge(ApiError):
    status_code = 413


class ValidationFailed(ApiError):
    status_code = 422


class RateLimited(ApiError):
    status_code = 429


class ServerError(ApiError):
    """5xx after the retries ran out."""

    status_code = 500


ERROR_OF_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: AuthenticationFailed,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationFailed,
    429: RateLimited,
}


def error_for(status_code: int, detail: Any, method: str, path: str) -> ApiError:
    cls = ERROR_OF_STATUS.get(status_code) or (ServerError if status_code >= 500 else ApiError)
    return cls(status_code, detail, method, path)


class RunFailed(SluiceClientError):
    """`Run.wait()` saw the run end in a status other than success (failed, cancelled, ...)."""

    def __init__(self, run: Any):
        self.run = run
        failed = [n.node_id for n in (run.node_runs or []) if n.status == "failed"]
        where = f" (failed nodes: {', '.join(failed)})" if failed else ""
        super().__init__(f"Run {run.id} ended {run.status}{where}: {run.error or 'no error message'}")


class RunTimeout(SluiceClientError):
    """`Run.wait(timeout)` ran out of time before the run finished; the run goes on."""

    def __init__(self, run: Any, timeout: float):
        self.run, self.timeout = run, timeout
        super().__init__(f"Run {run.id} still {run.status} after {timeout:g} s")
