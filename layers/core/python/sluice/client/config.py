"""Where `sluice login` keeps the URL and API key: one JSON file readable by its owner only (0600)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

CONFIG_VARIABLE = "SLUICE_CONFIG"


def config_path() -> Path:
    if os.environ.get(CONFIG_VARIABLE):
        return Path(os.environ[CONFIG_VARIABLE])
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "sluice" / "config.json"


def load_config() -> dict[str, Any]:
    path = config_path()
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def save_config(url: str, api_key: str) -> Path:
    """Write the file with mode 0600 from its creation on (never readable by others, even briefly)."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"url": url.rstrip("/"), "api_key": api_key}, handle)
    os.chmod(path, 0o600)  # an existing file keeps its mode through O_CREAT; set it again
    return path
