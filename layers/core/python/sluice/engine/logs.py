"""A node run's log lines (level, message, timestamp), kept in order for the result and logs.jsonl."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sluice import timeutil

LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class LogLine:
    level: str
    message: str
    timestamp: str

    def to_dict(self) -> dict[str, str]:
        return {"level": self.level, "message": self.message, "timestamp": self.timestamp}


@dataclass
class NodeLog:
    """The lines one node run says about itself; seed 002's logs endpoint serves them per node."""

    lines: list[LogLine] = field(default_factory=list)

    def add(self, level: str, message: str) -> None:
        self.lines.append(LogLine(level, message, timeutil.iso(timeutil.now()) or ""))

    def info(self, message: str) -> None:
        self.add("info", message)

    def warning(self, message: str) -> None:
        self.add("warning", message)

    def error(self, message: str) -> None:
        self.add("error", message)

    def jsonl(self) -> bytes:
        return "".join(json.dumps(line.to_dict()) + "\n" for line in self.lines).encode("utf-8")
