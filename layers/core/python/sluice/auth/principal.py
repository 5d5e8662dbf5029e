"""Who is calling: a project (tenant), a role, and a subject, as the authorizer established them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum

from sluice.errors import Forbidden, ValidationFailed

PROJECT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class Role(IntEnum):
    viewer = 1
    editor = 2
    admin = 3

    @classmethod
    def parse(cls, value: str) -> Role:
        try:
            return cls[str(value).strip().lower()]
        except KeyError as exc:
            raise ValidationFailed(f"role must be one of viewer, editor, admin, not '{value}'.") from exc


@dataclass(frozen=True)
class Principal:
    project: str
    role: Role
    subject: str
    key_id: str | None = None

    def require(self, role: Role) -> None:
        if self.role < role:
            raise Forbidden(
                f"This action needs the {role.name} role; your credentials have {self.role.name}."
            )

    def to_context(self) -> dict[str, str]:
        """The authorizer context (string values only, as API Gateway requires)."""
        context = {"project": self.project, "role": self.role.name, "sub": self.subject}
        if self.key_id:
            context["key_id"] = self.key_id
        return context

    @classmethod
    def from_context(cls, context: dict[str, str]) -> Principal:
        return cls(
            project=context["project"],
            role=Role[context["role"]],
            subject=context.get("sub", ""),
            key_id=context.get("key_id") or None,
        )


def valid_project(project: str) -> bool:
    return bool(PROJECT_PATTERN.match(project or ""))
