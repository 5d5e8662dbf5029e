"""The single-table access layer: typed items in and out, conditional writes, queries with cursors.

Repositories build keys with `sluice.store.keys` and call this; nothing else talks to DynamoDB.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from sluice import aws
from sluice.config import settings
from sluice.errors import ValidationFailed


class ConditionFailed(Exception):
    """A ConditionExpression did not hold; the repository turns it into a domain error."""


class TransactionCancelled(Exception):
    """A TransactWriteItems was cancelled; `reasons` has one code per operation ('None' = fine)."""

    def __init__(self, reasons: list[str]):
        super().__init__(", ".join(reasons))
        self.reasons = reasons


def _attribute(value: Any) -> dict[str, Any]:
    """One Python value as a DynamoDB AttributeValue (floats become exact decimal strings)."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | Decimal):
        return {"N": str(value)}
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("DynamoDB cannot store NaN or infinity")
        return {"N": repr(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bytes | bytearray):
        return {"B": bytes(value)}
    if isinstance(value, dict):
        return {"M": {str(k): _attribute(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [_attribute(v) for v in value]}
    if isinstance(value, set | frozenset):
        if all(isinstance(v, str) for v in value):
            return {"SS": sorted(value)}
        return {"NS": sorted(str(v) for v in value)}
    raise TypeError(f"cannot store a {type(value).__name__} in DynamoDB")


def _number(text: str) -> int | float:
    number = Decimal(text)
    return int(number) if number == number.to_integral_value() else float(number)


def _value(attribute: dict[str, Any]) -> Any:
    ((kind, raw),) = attribute.items()
    if kind == "S":
        return raw
    if kind == "N":
        return _number(raw)
    if kind == "BOOL":
        return raw
    if kind == "NULL":
        return None
    if kind == "M":
        return {k: _value(v) for k, v in raw.items()}
    if kind == "L":
        return [_value(v) for v in raw]
    if kind == "B":
        return raw
    if kind == "SS":
        return set(raw)
    if kind == "NS":
        return {_number(v) for v in raw}
    if kind == "BS":
        return set(raw)
    raise TypeError(f"unknown DynamoDB attribute type {kind}")


def serialize(item: dict[str, Any]) -> dict[str, Any]:
    """A Python dict as a DynamoDB item; None values are left out (absent means null)."""
    return {k: _attribute(v) for k, v in item.items() if v is not None}


def deserialize(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as a Python dict: numbers become int or float, never Decimal."""
    return {k: _value(v) for k, v in item.items()}


def encode_cursor(last_key: dict[str, Any] | None) -> str | None:
    if not last_key:
        return None
    raw = json.dumps(deserialize(last_key), separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, partition: tuple[str, str]) -> dict[str, Any] | None:
    """Decode a cursor and check it belongs to the partition being read (no cross-tenant keys)."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise ValidationFailed("cursor is not a cursor this API returned.") from exc
    name, value = partition
    if (
        not isinstance(key, dict)
        or key.get(name) != value
        or not all(isinstance(v, str) for v in key.values())
    ):
        raise ValidationFailed("cursor is not a cursor this API returned for this list.")
    return serialize(key)


@dataclass
class Page:
    items: list[dict[str, Any]]
    cursor: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class _Expr:
    """Collects attribute names and values for one expression set (update + condition)."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def name(self, attr: str) -> str:
        token = f"#n{len(self.names)}"
        self.names[token] = attr
        return token

    def value(self, val: Any) -> str:
        token = f":v{len(self.values)}"
        self.values[token] = val
        return token


@dataclass
class Condition:
    """A ConditionExpression written with `{name}` placeholders filled from `names`/`values`.

    Example: Condition("attribute_not_exists(PK)") or
    Condition("#s = :s", names={"#s": "status"}, values={":s": "running"}).
    """

    expression: str
    names: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)


def _apply_condition(params: dict[str, Any], condition: Condition | None) -> None:
    if condition is None:
        return
    params["ConditionExpression"] = condition.expression
    if condition.names:
        params.setdefault("ExpressionAttributeNames", {}).update(condition.names)
    if condition.values:
        params.setdefault("ExpressionAttributeValues", {}).update(serialize(condition.values))


class Table:
    """Typed access to the Sluice table. Items are plain dicts with `PK` and `SK`."""

    def __init__(self, name: str | None = None, client: Any | None = None):
        self.name = name or settings().table_name
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or aws.client("dynamodb")

    # -- single items ---------------------------------------------------------------------
    def get(self, pk: str, sk: str, consistent: bool = True) -> dict[str, Any] | None:
        found = self.client.get_item(
            TableName=self.name, Key=serialize({"PK": pk, "SK": sk}), ConsistentRead=consistent
        ).get("Item")
        return deserialize(found) if found else None

    # -- leases --------------------------------------------------------------------------
    def take_lease(self, pk: str, sk: str, owner: str, now: int, lease_seconds: int) -> bool:
        """Take the lease item if it is absent or expired; False while another owner holds it.
        `expires_at` is also the table's TTL attribute, so a lease left by a crashed holder
        disappears by itself as well."""
        item = {"PK": pk, "SK": sk, "kind": "lease", "owner": owner, "expires_at": now + lease_seconds}
        free = Condition(
            "attribute_not_exists(PK) OR #expires < :now",
            names={"#expires": "expires_at"},
            values={":now": now},
        )
        try:
            self.put(item, free)
        except ConditionFailed:
            return False
        return True

    def release_lease(self, pk: str, sk: str, owner: str) -> None:
        """Drop the lease if `owner` still holds it: one that lapsed and was taken over is not ours."""
        mine = Condition("#owner = :me", names={"#owner": "owner"}, values={":me": owner})
        with contextlib.suppress(ConditionFailed):
            self.delete(pk, sk, mine)

    def put(self, item: dict[str, Any], condition: Condition | None = None) -> None:
        params: dict[str, Any] = {"TableName": self.name, "Item": serialize(item)}
        _apply_condition(params, condition)
        try:
            self.client.put_item(**params)
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                raise ConditionFailed(str(exc)) from exc
            raise

    def update(
        self,
        pk: str,
        sk: str,
        *,
        set_: dict[str, Any] | None = None,
        set_if_absent: dict[str, Any] | None = None,
        remove: list[str] | None = None,
        add: dict[str, int | float | set[int] | set[str]] | None = None,
        condition: Condition | None = None,
        return_values: str = "ALL_NEW",
    ) -> dict[str, Any]:
        params = self.update_params(
            pk, sk, set_=set_, set_if_absent=set_if_absent, remove=remove, add=add, condition=condition
        )
        params["ReturnValues"] = return_values
        try:
            result = self.client.update_item(**params)
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                raise ConditionFailed(str(exc)) from exc
            raise
        return deserialize(result.get("Attributes", {}))

    def update_params(
        self,
        pk: str,
        sk: str,
        *,
        set_: dict[str, Any] | None = None,
        set_if_absent: dict[str, Any] | None = None,
        remove: list[str] | None = None,
        add: dict[str, int | float | set[int] | set[str]] | None = None,
        condition: Condition | None = None,
    ) -> dict[str, Any]:
        """The UpdateItem parameters (also used inside transactions). None in `set_` removes; `add`
        adds to numbers and, given a set, adds its members to a set attribute."""
        expr = _Expr()
        sets: list[str] = []
        removes: list[str] = list(remove or [])
        for attr, val in (set_ or {}).items():
            if val is None:
                removes.append(attr)
            else:
                sets.append(f"{expr.name(attr)} = {expr.value(val)}")
        for attr, val in (set_if_absent or {}).items():
            token = expr.name(attr)
            sets.append(f"{token} = if_not_exists({token}, {expr.value(val)})")
        clauses = []
        if sets:
            clauses.append("SET " + ", ".join(sets))
        if removes:
            clauses.append("REMOVE " + ", ".join(expr.name(a) for a in removes))
        if add:
            clauses.append("ADD " + ", ".join(f"{expr.name(a)} {expr.value(v)}" for a, v in add.items()))
        params: dict[str, Any] = {
            "TableName": self.name,
            "Key": serialize({"PK": pk, "SK": sk}),
            "UpdateExpression": " ".join(clauses),
        }
        if expr.names:
            params["ExpressionAttributeNames"] = dict(expr.names)
        if expr.values:
            params["ExpressionAttributeValues"] = serialize(expr.values)
        _apply_condition(params, condition)
        return params

    def delete(self, pk: str, sk: str, condition: Condition | None = None) -> dict[str, Any] | None:
        params: dict[str, Any] = {
            "TableName": self.name,
            "Key": serialize({"PK": pk, "SK": sk}),
            "ReturnValues": "ALL_OLD",
        }
        _apply_condition(params, condition)
        try:
            old = self.client.delete_item(**params).get("Attributes")
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                raise ConditionFailed(str(exc)) from exc
            raise
        return deserialize(old) if old else None

    # -- counters ---------------------------------------------------------------------------
    def next_number(self, pk: str, sk: str) -> int:
        """Atomically add one to a counter item and return the new value (1 on first use)."""
        result = self.client.update_item(
            TableName=self.name,
            Key=serialize({"PK": pk, "SK": sk}),
            UpdateExpression="ADD #n :one",
            ExpressionAttributeNames={"#n": "value"},
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="UPDATED_NEW",
        )
        return int(result["Attributes"]["value"]["N"])

    def next_numbers(self, pk: str, sk: str, count: int) -> list[int]:
        """`count` consecutive numbers from a counter item in one update (ADD count): the values it
        moved past, in order; none (and no call) for a count under one."""
        if count <= 0:
            return []
        last = int(self.update(pk, sk, add={"value": count}, return_values="UPDATED_NEW")["value"])
        return list(range(last - count + 1, last + 1))

    def batch_get(self, keys: list[tuple[str, str]], consistent: bool = False) -> list[dict[str, Any]]:
        """The items that exist among `keys` (any order), 100 keys per call, retrying leftovers."""
        found: list[dict[str, Any]] = []
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 100):
            pending: dict[str, Any] = {
                self.name: {
                    "Keys": [serialize({"PK": pk, "SK": sk}) for pk, sk in unique[start : start + 100]],
                    "ConsistentRead": consistent,
                }
            }
            for _attempt in range(8):
                result = self.client.batch_get_item(RequestItems=pending)
                found += [deserialize(i) for i in result.get("Responses", {}).get(self.name, [])]
                pending = result.get("UnprocessedKeys") or {}
                if not pending:
                    break
            else:
                raise RuntimeError("DynamoDB left batch reads unprocessed after 8 attempts")
        return found

    # -- queries ----------------------------------------------------------------------------
    def query(
        self,
        pk: str,
        *,
        index: str | None = None,
        begins_with: str | None = None,
        between: tuple[str, str] | None = None,
        after: str | None = None,
        before: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        forward: bool = True,
        consistent: bool = False,
        filter_: Condition | None = None,
        attributes: tuple[str, ...] | None = None,
    ) -> Page:
        """One page of a partition (or GSI partition), in sort-key order, with a resume cursor.
        `attributes` projects the items to those names (fewer bytes read, sent and parsed)."""
        pk_attr, sk_attr = ("PK", "SK") if index is None else (f"{index}PK", f"{index}SK")
        expr = f"{pk_attr} = :pk"
        values: dict[str, Any] = {":pk": pk}
        if begins_with is not None:
            expr += f" AND begins_with({sk_attr}, :pre)"
            values[":pre"] = begins_with
        elif between is not None:
            expr += f" AND {sk_attr} BETWEEN :lo AND :hi"
            values[":lo"], values[":hi"] = between
        elif after is not None:
            expr += f" AND {sk_attr} > :after"
            values[":after"] = after
        elif before is not None:
            expr += f" AND {sk_attr} < :before"
            values[":before"] = before
        params: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": expr,
            "ScanIndexForward": forward,
        }
        if filter_ is not None:
            params["FilterExpression"] = filter_.expression
            if filter_.names:
                params["ExpressionAttributeNames"] = dict(filter_.names)
            values.update(filter_.values)
        params["ExpressionAttributeValues"] = serialize(values)
        if attributes:
            names = {f"#a{n}": name for n, name in enumerate(attributes)}
            params["ProjectionExpression"] = ", ".join(names)
            params["ExpressionAttributeNames"] = {**params.get("ExpressionAttributeNames", {}), **names}
        if index is not None:
            params["IndexName"] = index
        elif consistent:
            params["ConsistentRead"] = True
        if limit is not None:
            params["Limit"] = limit
        start = decode_cursor(cursor, (pk_attr, pk))
        if start:
            params["ExclusiveStartKey"] = start
        result = self.client.query(**params)
        return Page(
            items=[deserialize(i) for i in result.get("Items", [])],
            cursor=encode_cursor(result.get("LastEvaluatedKey")),
        )

    def query_all(self, pk: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every item of a partition, page by page (for jobs and bounded per-request reads)."""
        cursor = None
        while True:
            page = self.query(pk, cursor=cursor, **kwargs)
            yield from page.items
            if not page.cursor:
                return
            cursor = page.cursor

    def skip(self, pk: str, count: int, *, index: str | None = None, consistent: bool = False) -> str | None:
        """The sort key of the `count`-th item of a partition, for page-number lists: a page read
        after it skips `count` items. Counts with Select=COUNT, so no item crosses the wire.
        None when the partition holds no item past the first `count`."""
        pk_attr, sk_attr = ("PK", "SK") if index is None else (f"{index}PK", f"{index}SK")
        params: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": f"{pk_attr} = :pk",
            "ExpressionAttributeValues": serialize({":pk": pk}),
            "Select": "COUNT",
        }
        if index is not None:
            params["IndexName"] = index
        elif consistent:
            params["ConsistentRead"] = True
        remaining = count
        while remaining > 0:
            result = self.client.query(**params, Limit=remaining)
            remaining -= int(result.get("Count", 0))
            last = result.get("LastEvaluatedKey")
            if not last:
                return None
            params["ExclusiveStartKey"] = last
        last_key = params.get("ExclusiveStartKey")
        return deserialize(last_key)[sk_attr] if last_key else None

    # -- multi-item writes --------------------------------------------------------------------
    def transact(self, operations: list[dict[str, Any]]) -> None:
        """TransactWriteItems; operations are built with put_op/update_op/delete_op/check_op."""
        try:
            self.client.transact_write_items(TransactItems=operations)
        except ClientError as exc:
            if _code(exc) == "TransactionCanceledException":
                reasons = [r.get("Code", "None") for r in exc.response.get("CancellationReasons", [])]
                raise TransactionCancelled(reasons) from exc
            raise

    def put_op(self, item: dict[str, Any], condition: Condition | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"TableName": self.name, "Item": serialize(item)}
        _apply_condition(params, condition)
        return {"Put": params}

    def update_op(self, pk: str, sk: str, **kwargs: Any) -> dict[str, Any]:
        return {"Update": self.update_params(pk, sk, **kwargs)}

    def delete_op(self, pk: str, sk: str, condition: Condition | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"TableName": self.name, "Key": serialize({"PK": pk, "SK": sk})}
        _apply_condition(params, condition)
        return {"Delete": params}

    def check_op(self, pk: str, sk: str, condition: Condition) -> dict[str, Any]:
        params: dict[str, Any] = {"TableName": self.name, "Key": serialize({"PK": pk, "SK": sk})}
        _apply_condition(params, condition)
        return {"ConditionCheck": params}

    def batch_write(
        self, puts: list[dict[str, Any]] | None = None, deletes: list[tuple[str, str]] | None = None
    ) -> int:
        """Unconditional puts and deletes in batches of 25, retrying what DynamoDB leaves over."""
        requests = [{"PutRequest": {"Item": serialize(i)}} for i in (puts or [])]
        requests += [
            {"DeleteRequest": {"Key": serialize({"PK": pk, "SK": sk})}} for pk, sk in (deletes or [])
        ]
        for start in range(0, len(requests), 25):
            pending = {self.name: requests[start : start + 25]}
            for _attempt in range(8):
                left = self.client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
                if not left:
                    break
                pending = left
            else:
                raise RuntimeError("DynamoDB left batch writes unprocessed after 8 attempts")
        return len(requests)


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")
