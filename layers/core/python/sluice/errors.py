"""Domain errors: one type per kind of failure; the edge maps each to a status code in one place."""


class SluiceError(Exception):
    """Base of every error a caller can cause; `detail` is a sentence meant for the caller."""

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class NotFound(SluiceError):
    """The object does not exist (or belongs to another project)."""


class Conflict(SluiceError):
    """A name already taken, or a state change that is not allowed."""


class NameTaken(Conflict):
    """A uniquely named object (pipeline, type, address) already holds that name in the project."""


class InUse(Conflict):
    """An object that others still reference (a connector or schema a pipeline uses)."""


class InvalidRequest(SluiceError):
    """A well-formed request that cannot be carried out (documented 400 cases)."""


class ValidationFailed(SluiceError):
    """A body or parameter that fails validation (422)."""


class PayloadTooLarge(SluiceError):
    """A body or batch larger than the route accepts (413)."""


class Unauthorized(SluiceError):
    """Missing, malformed, expired, badly signed or revoked credentials."""


class Forbidden(SluiceError):
    """Valid credentials whose role is too weak for the action."""


class Unavailable(SluiceError):
    """A dependency (queue, bucket) could not be reached; the request may be retried."""
