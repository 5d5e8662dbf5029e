"""Secret values of connectors and variables in AWS Secrets Manager; the only code that calls it.

One secret per object (`<SECRETS_PREFIX><project>/connectors/<id>`,
`<SECRETS_PREFIX><project>/variables/<key>`) holding a JSON object. Every write makes a new
version whose id Sluice chooses (the ClientRequestToken) and keeps on the DynamoDB item, and reads
ask for that version: the item, not the secret's AWSCURRENT label, says which values are live, so
a write whose item never landed cannot change what readers get. Errors never carry a value.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from sluice import aws
from sluice.config import settings
from sluice.domain.secrets import SecretMissing
from sluice.errors import Unavailable

MAX_SECRET_BYTES = 65_536  # Secrets Manager's limit on a SecretString
_NOT_FOUND = "ResourceNotFoundException"
_EXISTS = "ResourceExistsException"
# AWS answers InvalidRequestException while a force-deleted secret of the same name is still being
# removed (seconds); a re-created variable waits that out.
_BEING_DELETED = "InvalidRequestException"


@dataclass(frozen=True)
class SecretWrite:
    version_id: str
    created: bool  # this write created the secret (so undoing it means deleting the secret)


class SecretStore:
    def __init__(
        self,
        prefix: str | None = None,
        client: Any | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.prefix = prefix if prefix is not None else settings().secrets_prefix
        self._client = client
        self._sleep = sleep

    @property
    def client(self) -> Any:
        return self._client or aws.client("secretsmanager")

    def name_for(self, project: str, collection: str, ident: str | int) -> str:
        return f"{self.prefix}{project}/{collection}/{ident}"

    def write(self, name: str, payload: dict[str, Any]) -> SecretWrite:
        """Store `payload` as a new version of the secret `name` (created if absent)."""
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        token = str(uuid.uuid4())
        delay = 0.25
        for attempt in range(6):
            try:
                try:
                    self.client.put_secret_value(SecretId=name, SecretString=text, ClientRequestToken=token)
                    return SecretWrite(token, created=False)
                except ClientError as exc:
                    if _code(exc) != _NOT_FOUND:
                        raise
                try:
                    self.client.create_secret(
                        Name=name,
                        SecretString=text,
                        ClientRequestToken=token,
                        Description="Secret values of a Sluice object; the object's item names the live version.",
                    )
                    return SecretWrite(token, created=True)
                except ClientError as exc:
                    if _code(exc) != _EXISTS:  # created by a concurrent writer: put a version instead
                        raise
            except ClientError as exc:
                if _code(exc) != _BEING_DELETED or attempt == 5:
                    raise _unavailable("write", exc) from exc
                self._sleep(delay)
                delay = min(delay * 2, 1.0)
            except BotoCoreError as exc:
                raise _unavailable("write", exc) from exc
        raise Unavailable("A secret of this name is still being deleted; retry in a few seconds.")

    def read(self, name: str, version_id: str) -> dict[str, Any]:
        try:
            found = self.client.get_secret_value(SecretId=name, VersionId=version_id)
        except ClientError as exc:
            if _code(exc) == _NOT_FOUND:
                raise SecretMissing(name) from exc
            raise _unavailable("read", exc) from exc
        except BotoCoreError as exc:
            raise _unavailable("read", exc) from exc
        return json.loads(found["SecretString"])

    def delete(self, name: str) -> bool:
        """Delete the secret at once (no recovery window); False when there was none."""
        try:
            self.client.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
        except ClientError as exc:
            if _code(exc) == _NOT_FOUND:
                return False
            raise _unavailable("delete", exc) from exc
        except BotoCoreError as exc:
            raise _unavailable("delete", exc) from exc
        return True


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def _unavailable(action: str, exc: Exception) -> Unavailable:
    # The error code only: AWS messages never hold secret values, but there is no need to pass them on.
    code = _code(exc) if isinstance(exc, ClientError) else type(exc).__name__
    return Unavailable(f"The secret store could not {action} a secret ({code}); retry shortly.")
