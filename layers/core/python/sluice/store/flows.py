"""Recipes (their current version and every revision) and zones with their members, in the
project's partitions of the Sluice table (keys.recipes, keys.zones, keys.zone_members).

A save writes the revision and moves the recipe's current item in one transaction, conditional on
the revision it read: of two concurrent saves one wins and the other is a Conflict, and a revision
is never half-written. A zone's members are found through GSI1 (one Query per zone).
"""

from __future__ import annotations

import json
from typing import Any

from sluice.errors import Conflict, NotFound
from sluice.store import keys
from sluice.store.executions import in_parallel
from sluice.store.table import Condition, ConditionFailed, Table, TransactionCancelled


def _stored(recipe: dict[str, Any]) -> dict[str, Any]:
    return {**recipe, "config": json.dumps(recipe.get("config"), separators=(",", ":"))}


def _loaded(item: dict[str, Any] | None) -> dict[str, Any] | None:
    if item is None:
        return None
    found = {k: v for k, v in item.items() if k not in ("PK", "SK", "GSI1PK", "GSI1SK", "kind")}
    found["config"] = json.loads(found["config"]) if found.get("config") is not None else None
    return found


class RecipeRepository:
    def __init__(self, table: Table):
        self.table = table

    def get(self, project: str, model_name: str) -> dict[str, Any] | None:
        return _loaded(self.table.get(*keys.recipe(project, model_name)))

    def save(self, project: str, recipe: dict[str, Any], previous: int | None) -> None:
        """Write revision `recipe['revision']` and make it current, if the current one is still
        `previous` (None: the recipe does not exist yet)."""
        name, revision = recipe["model_name"], int(recipe["revision"])
        pk, sk = keys.recipe(project, name)
        rev_pk, rev_sk = keys.recipe_revision(project, name, revision)
        body = _stored(recipe)
        current = (
            Condition("attribute_not_exists(PK)")
            if previous is None
            else Condition("#r = :r", names={"#r": "revision"}, values={":r": previous})
        )
        try:
            self.table.transact(
                [
                    self.table.put_op(
                        {"PK": rev_pk, "SK": rev_sk, "kind": "recipe_revision", **body},
                        Condition("attribute_not_exists(PK)"),
                    ),
                    self.table.put_op({"PK": pk, "SK": sk, "kind": "recipe", **body}, current),
                ]
            )
        except TransactionCancelled as exc:
            if "ConditionalCheckFailed" in exc.reasons:
                raise Conflict(
                    f"Recipe '{name}' was saved by someone else meanwhile; read it again and retry."
                ) from exc
            raise

    def revisions(
        self, project: str, model_name: str, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of revisions, newest first, and the cursor of the next page."""
        page = self.table.query(
            keys.recipe_revisions(project, model_name),
            limit=limit,
            cursor=cursor,
            forward=False,
            consistent=True,
        )
        return [r for r in (_loaded(i) for i in page.items) if r is not None], page.cursor

    def all(self, project: str) -> list[dict[str, Any]]:
        return [r for r in (_loaded(i) for i in self.table.query_all(keys.recipes(project))) if r is not None]


class ZoneRepository:
    def __init__(self, table: Table):
        self.table = table

    def create(self, project: str, name: str, color: str | None, now: str) -> dict[str, Any]:
        zone_id = self.table.next_number(*keys.counter(project, "zone"))
        pk, sk = keys.zone(project, zone_id)
        zone = {"id": zone_id, "name": name, "color": color, "created_at": now, "updated_at": now}
        self.table.put({"PK": pk, "SK": sk, "kind": "zone", **zone}, Condition("attribute_not_exists(PK)"))
        return zone

    def get(self, project: str, zone_id: int) -> dict[str, Any] | None:
        item = self.table.get(*keys.zone(project, zone_id))
        return None if item is None else self._zone(item)

    def list(self, project: str) -> list[dict[str, Any]]:
        return [self._zone(i) for i in self.table.query_all(keys.zones(project), consistent=True)]

    def update(self, project: str, zone_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        try:
            item = self.table.update(
                *keys.zone(project, zone_id), set_=changes, condition=Condition("attribute_exists(PK)")
            )
        except ConditionFailed as exc:
            raise NotFound(f"Zone {zone_id} not found.") from exc
        return self._zone(item)

    def delete(self, project: str, zone_id: int) -> int:
        """Delete the zone, then unassign its members (each only if still in this zone); the
        number unassigned. NotFound for an unknown zone."""
        if self.table.delete(*keys.zone(project, zone_id)) is None:
            raise NotFound(f"Zone {zone_id} not found.")
        members = list(self.table.query_all(keys.members_of_zone(project, zone_id), index="GSI1"))

        def unassign(item: dict[str, Any]) -> bool:
            try:
                self.table.delete(
                    item["PK"],
                    item["SK"],
                    Condition("#z = :z", names={"#z": "zone_id"}, values={":z": zone_id}),
                )
            except ConditionFailed:
                return False  # moved to another zone meanwhile
            return True

        return sum(in_parallel(unassign, members))

    def assign(self, project: str, model_name: str, zone_id: int | None) -> None:
        pk, sk = keys.zone_member(project, model_name)
        if zone_id is None:
            self.table.delete(pk, sk)
            return
        zone_pk, zone_sk = keys.zone(project, zone_id)
        member = {
            "PK": pk,
            "SK": sk,
            "GSI1PK": keys.members_of_zone(project, zone_id),
            "GSI1SK": model_name.lower(),
            "kind": "zone_member",
            "model_name": model_name,
            "zone_id": zone_id,
        }
        try:
            self.table.transact(
                [
                    self.table.check_op(zone_pk, zone_sk, Condition("attribute_exists(PK)")),
                    self.table.put_op(member),
                ]
            )
        except TransactionCancelled as exc:
            if exc.reasons and exc.reasons[0] == "ConditionalCheckFailed":
                raise NotFound(f"Zone {zone_id} not found.") from exc
            raise

    def zone_of(self, project: str, model_name: str) -> int | None:
        item = self.table.get(*keys.zone_member(project, model_name))
        if item is None or self.table.get(*keys.zone(project, int(item["zone_id"]))) is None:
            return None  # a zone deleted while its members were being unassigned
        return int(item["zone_id"])

    def members(self, project: str) -> dict[str, int]:
        """Lowercase model name -> zone id, for every assigned model."""
        return {
            i["SK"]: int(i["zone_id"])
            for i in self.table.query_all(keys.zone_members(project), consistent=True)
        }

    @staticmethod
    def _zone(item: dict[str, Any]) -> dict[str, Any]:
        return {k: item.get(k) for k in ("id", "name", "color", "created_at", "updated_at")} | {
            "id": int(item["id"])
        }


class AiRecipeRepository:
    """AI recipes; creation is idempotent on (model_name, recipe_type) through a name claim written
    in the same transaction as the recipe."""

    def __init__(self, table: Table):
        self.table = table

    @staticmethod
    def _claim(project: str, model_name: str, recipe_type: str) -> tuple[str, str]:
        return keys.name_claim(project, "ai_recipe", f"{model_name}#{recipe_type}")

    def find(self, project: str, model_name: str, recipe_type: str) -> dict[str, Any] | None:
        claim = self.table.get(*self._claim(project, model_name, recipe_type))
        return None if claim is None else self.get(project, int(claim["owner_id"]))

    def next_id(self, project: str) -> int:
        return self.table.next_number(*keys.counter(project, "ai_recipe"))

    def create(self, project: str, recipe: dict[str, Any]) -> dict[str, Any] | None:
        """The recipe written, or None when (model_name, recipe_type) was claimed meanwhile."""
        pk, sk = keys.ai_recipe(project, int(recipe["id"]))
        claim_pk, claim_sk = self._claim(project, recipe["model_name"], recipe["recipe_type"])
        try:
            self.table.transact(
                [
                    self.table.put_op(
                        {"PK": claim_pk, "SK": claim_sk, "kind": "name_claim", "owner_id": int(recipe["id"])},
                        Condition("attribute_not_exists(PK)"),
                    ),
                    self.table.put_op(
                        {"PK": pk, "SK": sk, "kind": "ai_recipe", **self._stored(recipe)},
                        Condition("attribute_not_exists(PK)"),
                    ),
                ]
            )
        except TransactionCancelled as exc:
            if exc.reasons and exc.reasons[0] == "ConditionalCheckFailed":
                return None
            raise
        return recipe

    def get(self, project: str, recipe_id: int) -> dict[str, Any] | None:
        item = self.table.get(*keys.ai_recipe(project, recipe_id))
        return None if item is None else self._loaded(item)

    def list(self, project: str) -> list[dict[str, Any]]:
        return [self._loaded(i) for i in self.table.query_all(keys.ai_recipes(project), consistent=True)]

    def update(self, project: str, recipe_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        stored = {k: (json.dumps(v) if k in ("run_config", "inputs") else v) for k, v in changes.items()}
        try:
            item = self.table.update(
                *keys.ai_recipe(project, recipe_id), set_=stored, condition=Condition("attribute_exists(PK)")
            )
        except ConditionFailed as exc:
            raise NotFound(f"AI recipe {recipe_id} not found.") from exc
        return self._loaded(item)

    def delete(self, project: str, recipe: dict[str, Any]) -> None:
        pk, sk = keys.ai_recipe(project, int(recipe["id"]))
        self.table.transact(
            [
                self.table.delete_op(pk, sk),
                self.table.delete_op(*self._claim(project, recipe["model_name"], recipe["recipe_type"])),
            ]
        )

    @staticmethod
    def _stored(recipe: dict[str, Any]) -> dict[str, Any]:
        return {
            **recipe,
            "run_config": json.dumps(recipe["run_config"]),
            "inputs": json.dumps(recipe["inputs"]),
        }

    @staticmethod
    def _loaded(item: dict[str, Any]) -> dict[str, Any]:
        found = {k: v for k, v in item.items() if k not in ("PK", "SK", "kind")}
        found["id"] = int(found["id"])
        found["run_config"] = json.loads(found["run_config"])
        found["inputs"] = json.loads(found["inputs"])
        if found.get("pipeline_id") is not None:
            found["pipeline_id"] = int(found["pipeline_id"])
        return found
