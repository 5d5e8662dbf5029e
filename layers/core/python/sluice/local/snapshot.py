"""Saving and restoring the local stack's data under `.sluice/`, keyed by template logical ids.

Physical names change on every start (CloudFormation makes them), so a table's items are saved
as `dynamodb/<LogicalId>.jsonl` and a bucket's objects under `s3/<LogicalId>/`; every file is
written to a temporary name and renamed into place, so a crash never leaves a torn snapshot.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import boto3

MANIFEST = "manifest.json"


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _object_file(root: Path, key: str) -> Path:
    # Keys may hold any characters; file names are their digests, the manifest maps them back.
    return root / "objects" / hashlib.sha256(key.encode()).hexdigest()


class Snapshot:
    def __init__(self, directory: Path, tables: dict[str, str], buckets: dict[str, str], endpoint: str):
        self.directory = Path(directory)
        self.tables = tables
        self.buckets = buckets
        self._dynamodb = boto3.client("dynamodb", endpoint_url=endpoint)
        self._s3 = boto3.client("s3", endpoint_url=endpoint)
        self._secrets = boto3.client("secretsmanager", endpoint_url=endpoint)
        self._scheduler = boto3.client("scheduler", endpoint_url=endpoint)
        self._lock = threading.Lock()

    # -- save -----------------------------------------------------------------------------------
    def save(self) -> None:
        with self._lock:
            for logical, name in self.tables.items():
                self._save_table(logical, name)
            for logical, name in self.buckets.items():
                self._save_bucket(logical, name)
            self._save_runtime()

    def _save_table(self, logical: str, name: str) -> None:
        lines = []
        paginator = self._dynamodb.get_paginator("scan")  # a snapshot is not a request path
        for page in paginator.paginate(TableName=name):
            lines.extend(json.dumps(item, separators=(",", ":")) for item in page.get("Items", []))
        _atomic_write(self.directory / "dynamodb" / f"{logical}.jsonl", ("\n".join(lines) + "\n").encode())

    def _save_bucket(self, logical: str, name: str) -> None:
        root = self.directory / "s3" / logical
        manifest_path = root / MANIFEST
        previous: dict[str, dict[str, Any]] = {}
        if manifest_path.exists():
            previous = json.loads(manifest_path.read_text())
        current: dict[str, dict[str, Any]] = {}
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=name):
            for entry in page.get("Contents", []):
                key, etag = entry["Key"], entry["ETag"]
                if previous.get(key, {}).get("etag") != etag or not _object_file(root, key).exists():
                    found = self._s3.get_object(Bucket=name, Key=key)
                    _atomic_write(_object_file(root, key), found["Body"].read())
                    current[key] = {"etag": etag, "content_type": found.get("ContentType")}
                else:
                    current[key] = previous[key]
        _atomic_write(manifest_path, json.dumps(current).encode())
        for gone in set(previous) - set(current):
            _object_file(root, gone).unlink(missing_ok=True)

    def _save_runtime(self) -> None:
        """Objects Sluice creates at run time rather than from the template: secrets, schedules.

        They are the local stand-in for a real account's, so they are kept like the table is
        (the file is readable by its owner only)."""
        secrets = []
        for page in self._secrets.get_paginator("list_secrets").paginate():
            for entry in page.get("SecretList", []):
                value = self._secrets.get_secret_value(SecretId=entry["ARN"])
                secrets.append({"Name": entry["Name"], "SecretString": value.get("SecretString", "")})
        schedules = []
        token = None
        while True:
            page = self._scheduler.list_schedules(**({"NextToken": token} if token else {}))
            for summary in page.get("Schedules", []):
                detail = self._scheduler.get_schedule(
                    Name=summary["Name"], GroupName=summary.get("GroupName", "default")
                )
                schedules.append(
                    {
                        key: detail[key]
                        for key in (
                            "Name",
                            "GroupName",
                            "ScheduleExpression",
                            "ScheduleExpressionTimezone",
                            "State",
                            "Target",
                            "FlexibleTimeWindow",
                            "Description",
                        )
                        if key in detail
                    }
                )
            token = page.get("NextToken")
            if not token:
                break
        path = self.directory / "runtime.json"
        _atomic_write(path, json.dumps({"secrets": secrets, "schedules": schedules}, default=str).encode())
        os.chmod(path, 0o600)

    def _restore_runtime(self) -> int:
        path = self.directory / "runtime.json"
        if not path.exists():
            return 0
        saved = json.loads(path.read_text())
        for secret in saved.get("secrets", []):
            self._secrets.create_secret(Name=secret["Name"], SecretString=secret["SecretString"])
        for schedule in saved.get("schedules", []):
            target = dict(schedule["Target"])
            target.pop("RetryPolicy", None)
            self._scheduler.create_schedule(**{**schedule, "Target": target})
        return len(saved.get("secrets", [])) + len(saved.get("schedules", []))

    # -- restore ----------------------------------------------------------------------------------
    def restore(self) -> dict[str, int]:
        counts = {"items": 0, "objects": 0, "runtime": self._restore_runtime()}
        for logical, name in self.tables.items():
            path = self.directory / "dynamodb" / f"{logical}.jsonl"
            if not path.exists():
                continue
            items = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            for start in range(0, len(items), 25):
                pending = {name: [{"PutRequest": {"Item": i}} for i in items[start : start + 25]]}
                while pending:
                    pending = (
                        self._dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
                    )
            counts["items"] += len(items)
        for logical, name in self.buckets.items():
            root = self.directory / "s3" / logical
            manifest_path = root / MANIFEST
            if not manifest_path.exists():
                continue
            for key, meta in json.loads(manifest_path.read_text()).items():
                extra = {"ContentType": meta["content_type"]} if meta.get("content_type") else {}
                self._s3.put_object(Bucket=name, Key=key, Body=_object_file(root, key).read_bytes(), **extra)
                counts["objects"] += 1
            # ETags are content hashes, so the manifest still describes what is now in the bucket.
        return counts
