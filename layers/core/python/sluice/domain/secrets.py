"""Which values of a config are secret, and how they are kept apart, masked and put back.

A connector's config is split in two: the stored config, where each secret value is replaced by
a reference `{"$secret": "<JSON pointer>"}`, and the secret values by pointer, which go to the
secret store. Responses show the stored config with every reference masked as `********`; only
the run engine puts the values back (`reveal`).

A value is secret when (documented in docs/api.md):
- its key matches the secret-key pattern (`is_secret_key`) at any depth, and the value is a
  non-empty string (numbers, booleans and null configure, they do not authenticate); an object
  or array under such a key is secret as a whole unless secret values can be found inside it,
  which are then hidden one by one;
- its key or path is listed in `secretFields` (then any non-null value is secret);
- it is a string that carries credentials: a URL with a password (`postgres://u:p@host/db`) or a
  connection string with `password=` / `pwd=`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sluice.errors import ValidationFailed

MASK = "********"
SECRET_REF = "$secret"
MAX_DEPTH = 32
MAX_CONFIG_CHARS = 65_536  # of JSON; keeps the item and the secret (64 KiB) within their limits

# Matched against the key with separators removed ("client_secret" -> "clientsecret").
_SECRET_WORDS = re.compile(
    r"password|passwd|passphrase|secret|token|apikey|accesskey|privatekey|sshkey|credential"
    r"|connectionstring|connstr|signingkey|encryptionkey|masterkey|accountkey|sharedkey|clientkey"
)
# Matched against whole words of the key ("pass" but not "passthrough").
_SECRET_WORDS_EXACT = frozenset({"pwd", "pass", "auth", "authorization", "dsn", "cookie", "bearer", "jwt"})
# A key ending in one of these words names or locates a secret, it does not hold one
# ("token_url", "auth_type", "secret_name", "private_key_path").
_NOT_SECRET_ENDINGS = frozenset(
    {"url", "uri", "endpoint", "host", "type", "path", "file", "method", "mode", "name", "format", "arn"}
)
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_ACRONYM = re.compile(r"([A-Z]+)([A-Z][a-z])")
_SEPARATORS = re.compile(r"[^a-z0-9]+")
_URL_WITH_PASSWORD = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#@\s:]*:[^/?#@\s]+@")
_PASSWORD_SETTING = re.compile(r"(?:^|[;?&\s])(?:password|pwd)\s*=\s*[^;&\s]", re.IGNORECASE)


def key_words(key: str) -> list[str]:
    """`clientSecret`, `client-secret`, `CLIENT_SECRET` -> ["client", "secret"]."""
    spaced = _CAMEL.sub(r"\1_\2", _ACRONYM.sub(r"\1_\2", str(key)))
    return [word for word in _SEPARATORS.split(spaced.lower()) if word]


def is_secret_key(key: str) -> bool:
    words = key_words(key)
    if not words or (len(words) > 1 and words[-1] in _NOT_SECRET_ENDINGS):
        return False
    return bool(_SECRET_WORDS.search("".join(words))) or any(w in _SECRET_WORDS_EXACT for w in words)


def carries_credentials(text: str) -> bool:
    """A URL with a password in it, or a connection string with a password setting."""
    return bool(_URL_WITH_PASSWORD.match(text.strip()) or _PASSWORD_SETTING.search(text))


# -- paths ------------------------------------------------------------------------------------------
Path = tuple[str | int, ...]


def pointer(path: Path) -> str:
    """RFC 6901 JSON pointer of a path ("/auth/token", "/hosts/0/password")."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def display(path: Path, root: str = "config") -> str:
    """A path as a caller reads it in an error sentence: config.auth.token, config.hosts[0]."""
    text = root
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _parse_secret_field(entry: str) -> tuple[str, ...]:
    parts = tuple(p.strip().casefold() for p in entry.split("."))
    if not all(parts):
        raise ValidationFailed(f"secretFields entry '{entry}' has an empty part; use key or a.b.c.")
    return parts


@dataclass(frozen=True)
class SecretFields:
    """The caller's explicit `secretFields`: a bare key matches that key at any depth; a dotted
    entry (`auth.token`, `hosts.0.password`) is a path from the config's root. Case-insensitive."""

    entries: tuple[tuple[str, ...], ...] = ()

    @classmethod
    def of(cls, entries: Iterable[str] | None) -> SecretFields:
        return cls(tuple(_parse_secret_field(e) for e in entries or ()))

    def match(self, path: Path) -> bool:
        folded = tuple(str(p).casefold() for p in path)
        for entry in self.entries:
            if len(entry) == 1 and folded and folded[-1] == entry[0]:
                return True
            if folded == entry:
                return True
        return False


# -- splitting, masking, revealing -------------------------------------------------------------------
@dataclass
class SplitConfig:
    stored: dict[str, Any]  # the config with a reference in place of each secret value
    secrets: dict[str, Any] = field(default_factory=dict)  # JSON pointer -> secret value


def split_secrets(
    config: Mapping[str, Any],
    secret_fields: SecretFields | None = None,
    kept: Mapping[str, Any] | None = None,
) -> SplitConfig:
    """Take the secret values out of `config`.

    `kept` holds the object's current secret values by pointer: a `********` given back where a
    secret is stored keeps that secret (a client can PUT what it read). `********` anywhere else
    is refused, as is the reserved key `$secret`.
    """
    check_config_shape(config)
    splitter = _Splitter(secret_fields or SecretFields(), dict(kept or {}))
    stored = splitter.walk(dict(config), ())
    size = len(json.dumps(splitter.secrets, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_CONFIG_CHARS - 1024:
        raise ValidationFailed(
            "config's secret values take more than 64 KiB; store fewer or smaller secrets."
        )
    return SplitConfig(stored, splitter.secrets)


class _Splitter:
    def __init__(self, secret_fields: SecretFields, kept: dict[str, Any]):
        self.secret_fields = secret_fields
        self.kept = kept
        self.secrets: dict[str, Any] = {}

    def walk(self, value: Any, path: Path) -> Any:
        if isinstance(value, dict):
            return {key: self.visit(child, (*path, key)) for key, child in value.items()}
        if isinstance(value, list):
            return [self.visit(child, (*path, index)) for index, child in enumerate(value)]
        return value

    def visit(self, value: Any, path: Path) -> Any:
        where = pointer(path)
        if value == MASK:
            if where not in self.kept:
                raise ValidationFailed(
                    f"{display(path)} is '{MASK}', the mask of a secret value, but no secret is stored "
                    "there; send the value itself."
                )
            self.secrets[where] = self.kept[where]
            return {SECRET_REF: where}
        if value is None:
            return None
        if self.secret_fields.match(path):
            return self._hide(value, path)
        if isinstance(path[-1], str) and is_secret_key(path[-1]) and _hideable(value):
            if isinstance(value, str):
                return self._hide(value, path)
            # An object or array under a secret-looking key keeps its shape when its own secret
            # values can be told apart (`auth: {type, client_id, client_secret}`); when none can
            # (`credentials: {"u": ..., "p": ...}`), all of it is secret.
            found = len(self.secrets)
            walked = self.walk(value, path)
            return walked if len(self.secrets) > found else self._hide(value, path)
        if isinstance(value, str) and carries_credentials(value):
            return self._hide(value, path)
        return self.walk(value, path)

    def _hide(self, value: Any, path: Path) -> dict[str, str]:
        if _holds_mask(value):
            raise ValidationFailed(
                f"{display(path)} is secret as a whole; send all of it, not '{MASK}' inside it."
            )
        where = pointer(path)
        self.secrets[where] = value
        return {SECRET_REF: where}


def _hideable(value: Any) -> bool:
    return isinstance(value, str | dict | list) and len(value) > 0


def _holds_mask(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_holds_mask(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_mask(v) for v in value)
    return value == MASK


def check_config_shape(config: Any) -> None:
    """An object of at most 64 KiB of JSON, nested at most 32 deep, without the reserved key."""
    if not isinstance(config, Mapping):
        raise ValidationFailed("config must be a JSON object.")
    size = len(json.dumps(config, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_CONFIG_CHARS:
        raise ValidationFailed(f"config must be at most {MAX_CONFIG_CHARS} bytes of JSON.")
    _check_nesting(config, (), 1)


def _check_nesting(value: Any, path: Path, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValidationFailed(f"{display(path)} nests deeper than {MAX_DEPTH} levels.")
    if isinstance(value, dict):
        for key, child in value.items():
            if key == SECRET_REF:
                raise ValidationFailed(f"{display(path)} uses the reserved key '{SECRET_REF}'.")
            _check_nesting(child, (*path, key), depth + 1)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            _check_nesting(child, (*path, index), depth + 1)


def _reference(value: Any) -> str | None:
    if isinstance(value, dict) and len(value) == 1 and isinstance(value.get(SECRET_REF), str):
        return value[SECRET_REF]
    return None


def mask(stored: Any) -> Any:
    """The stored config as responses show it: every reference replaced by `********`."""
    if _reference(stored) is not None:
        return MASK
    if isinstance(stored, dict):
        return {key: mask(child) for key, child in stored.items()}
    if isinstance(stored, list):
        return [mask(child) for child in stored]
    return stored


def references(stored: Any) -> set[str]:
    """The pointers of every secret value the stored config refers to."""
    found = _reference(stored)
    if found is not None:
        return {found}
    if isinstance(stored, dict):
        children: Iterable[Any] = stored.values()
    elif isinstance(stored, list):
        children = stored
    else:
        return set()
    pointers: set[str] = set()
    for child in children:
        pointers |= references(child)
    return pointers


class SecretMissing(Exception):
    """A secret, a version of it, or a value the stored config refers to is not in the secret store."""


class SecretWritten(Protocol):
    version_id: str
    created: bool


class SecretVault(Protocol):
    """Where secret values live (Secrets Manager in `sluice.store.secrets`); one JSON object per
    object, read by the version id that the object's item keeps."""

    def name_for(self, project: str, collection: str, ident: str | int) -> str: ...
    def write(self, name: str, payload: dict[str, Any]) -> SecretWritten: ...
    def read(self, name: str, version_id: str) -> dict[str, Any]: ...
    def delete(self, name: str) -> bool: ...


def reveal(stored: Any, secrets: Mapping[str, Any]) -> Any:
    """The stored config with the real secret values put back (for the run engine only)."""
    where = _reference(stored)
    if where is not None:
        if where not in secrets:
            raise SecretMissing(where)
        return secrets[where]
    if isinstance(stored, dict):
        return {key: reveal(child, secrets) for key, child in stored.items()}
    if isinstance(stored, list):
        return [reveal(child, secrets) for child in stored]
    return stored
