"""The one codec of ids on the `/api/*` surfaces: integers rendered `<kind>-<n>`, read in either form.

SPEC 1: Watcher paths show the integer, `/api/*` paths an opaque string (`run-3`, `pipeline-3`,
`connector-3`), and `/api/*` path parameters accept the string or the bare integer.
"""

from __future__ import annotations

import re

from sluice.errors import ValidationFailed

MAX_ID = 10**12 - 1  # ids are padded to 12 digits in sort keys (sluice.store.keys.ID_WIDTH)
_DIGITS = re.compile(r"^[0-9]{1,12}$")


def render(kind: str, number: int) -> str:
    return f"{kind}-{number}"


def parse(kind: str, text: str | int) -> int:
    """`connector-3` or `3` -> 3; anything else (another kind's id, a name, 0) is a ValidationFailed."""
    if isinstance(text, int) and not isinstance(text, bool):
        digits = str(text)
    else:
        raw = str(text).strip()
        digits = raw[len(kind) + 1 :] if raw.lower().startswith(f"{kind}-") else raw
    if _DIGITS.fullmatch(digits) and 0 < int(digits) <= MAX_ID:
        return int(digits)
    raise ValidationFailed(f"'{text}' is not a {kind} id; give {kind}-<n> or the number <n>.")
