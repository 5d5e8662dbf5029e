"""What the local stack keeps on disk under `<data-dir>/state/` besides DynamoDB Local's own file.

DynamoDB persists itself (DynamoDB Local with `-dbPath`). moto keeps S3 (in its memory, or for the
template's buckets in a per-process cache folder, `moto_adapter.SpilledKeyStore`, gone at stop),
Secrets Manager and EventBridge Scheduler, so this module writes them through to disk as they
change, before the call that changed them returns: a `kill -9` loses no acknowledged write.

- S3, per bucket of the template under `s3/<LogicalId>/` (physical names change at every start,
  CloudFormation makes them): each object in `objects/<sha256 of its key>`, and a journal
  `journal.jsonl` with one line per put or delete; `manifest.json` is the journal compacted (at
  every clean stop, and whenever the journal grows long). Nothing ever lists a bucket.
- Secrets and schedules, the objects Sluice creates at run time, in `runtime.json` (owner-only),
  rewritten after each change to either.
- Legacy: state saved by older versions as `dynamodb/<LogicalId>.jsonl` is imported once into an
  empty new table, then renamed `*.jsonl.imported`.

Files are written under a temporary name and renamed into place, so a crash never leaves a torn
file; a torn last journal line (a crash mid-append) is skipped at restore.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("sluice.local")

MANIFEST = "manifest.json"
JOURNAL = "journal.jsonl"
COMPACT_AFTER = 5_000  # journal lines per bucket before it is folded into the manifest
ClientFactory = Callable[[str], Any]
# (bucket, key) -> (body, content type, user metadata), or None when the key no longer exists
ObjectReader = Callable[[str, str], tuple[bytes, str | None, dict[str, str]] | None]


def _atomic_write(path: Path, data: bytes, durable: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    with open(temporary, "wb") as handle:
        handle.write(data)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(temporary, path)


def _object_file(root: Path, key: str) -> Path:
    # Keys may hold any characters; file names are their digests, the manifest maps them back.
    return root / "objects" / hashlib.sha256(key.encode()).hexdigest()


class _BucketJournal:
    """One bucket's objects on disk: the manifest, the journal since, and what they describe."""

    def __init__(self, root: Path):
        self.root = root
        # key -> (content type, user metadata or None): a tuple, not a dict, per object (every run
        # keeps a dozen objects, and this index lives as long as the stack)
        self.objects: dict[str, tuple[str | None, dict[str, str] | None]] = {}
        self.journal_lines = 0

    def load(self) -> None:
        manifest, journal = self.root / MANIFEST, self.root / JOURNAL
        if manifest.exists():
            for key, meta in json.loads(manifest.read_text()).items():
                self.objects[key] = (meta.get("content_type"), meta.get("metadata") or None)
        if journal.exists():
            for line in journal.read_text().splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    log.warning("skipped a torn line of %s", journal)
                    continue
                self._apply(entry)
                self.journal_lines += 1

    def _apply(self, entry: dict[str, Any]) -> None:
        if entry["op"] == "put":
            self.objects[entry["key"]] = (entry.get("content_type"), entry.get("metadata") or None)
        else:
            self.objects.pop(entry["key"], None)

    def put(self, key: str, body: bytes, content_type: str | None, metadata: dict[str, str]) -> None:
        _atomic_write(_object_file(self.root, key), body, durable=False)
        self._append({"op": "put", "key": key, "content_type": content_type, "metadata": metadata})

    def delete(self, key: str) -> None:
        if key in self.objects:
            self._append({"op": "delete", "key": key})
            _object_file(self.root, key).unlink(missing_ok=True)

    def _append(self, entry: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        # One write per line in append mode: the kernel keeps it whatever happens to this process.
        with open(self.root / JOURNAL, "ab") as handle:
            handle.write((json.dumps(entry, separators=(",", ":")) + "\n").encode())
        self._apply(entry)
        self.journal_lines += 1
        if self.journal_lines >= COMPACT_AFTER:
            self.compact()

    def compact(self) -> None:
        if not self.journal_lines and (self.root / MANIFEST).exists():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        manifest = {
            key: {"content_type": content_type, "metadata": metadata or {}}
            for key, (content_type, metadata) in self.objects.items()
        }
        _atomic_write(self.root / MANIFEST, json.dumps(manifest).encode())
        (self.root / JOURNAL).unlink(missing_ok=True)
        self.journal_lines = 0


class Snapshot:
    """`restore()` at start, `record_s3_writes()` and `save_runtime()` as things change, `save()` at stop."""

    def __init__(
        self,
        directory: Path,
        tables: dict[str, str],
        buckets: dict[str, str],
        clients: ClientFactory,
        read_object: ObjectReader | None = None,
    ):
        self.directory = Path(directory)
        self.tables = tables  # logical -> physical: only for importing an older version's files
        self.buckets = buckets  # logical -> physical
        self._logical_of = {physical: logical for logical, physical in buckets.items()}
        self._clients = clients
        self._read_object = read_object
        self._journals = {logical: _BucketJournal(self.directory / "s3" / logical) for logical in buckets}
        self._lock = threading.Lock()

    def watches(self, bucket: str) -> bool:
        return bucket in self._logical_of

    # -- writing through ---------------------------------------------------------------------------
    def record_s3_writes(self, writes: list[tuple[str, str]]) -> None:
        """Persist the current state of each (bucket, key) just written or deleted in moto."""
        if self._read_object is None:
            return
        with self._lock:
            for bucket, key in writes:
                logical = self._logical_of.get(bucket)
                if logical is None:
                    continue
                found = self._read_object(bucket, key)
                journal = self._journals[logical]
                if found is None:
                    journal.delete(key)
                else:
                    body, content_type, metadata = found
                    journal.put(key, body, content_type, metadata)

    def save(self) -> None:
        """Fold every journal into its manifest and rewrite runtime.json (a clean stop)."""
        with self._lock:
            for journal in self._journals.values():
                journal.compact()
        self.save_runtime()

    def save_runtime(self) -> None:
        """Objects Sluice creates at run time rather than from the template: secrets, schedules.

        They are the local stand-in for a real account's, so they are kept like the table is
        (the file is readable by its owner only)."""
        secrets_client, scheduler = self._clients("secretsmanager"), self._clients("scheduler")
        with self._lock:
            secrets = []
            for page in secrets_client.get_paginator("list_secrets").paginate():
                for entry in page.get("SecretList", []):
                    value = secrets_client.get_secret_value(SecretId=entry["ARN"])
                    secrets.append({"Name": entry["Name"], "SecretString": value.get("SecretString", "")})
            schedules = []
            token = None
            while True:
                page = scheduler.list_schedules(**({"NextToken": token} if token else {}))
                for summary in page.get("Schedules", []):
                    detail = scheduler.get_schedule(
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
            _atomic_write(
                path, json.dumps({"secrets": secrets, "schedules": schedules}, default=str).encode()
            )
            os.chmod(path, 0o600)

    # -- restore ----------------------------------------------------------------------------------
    def restore(self, new_tables: set[str] | frozenset[str] = frozenset()) -> dict[str, int]:
        """Put saved objects, secrets and schedules back; import older table files into `new_tables`."""
        counts = {
            "items": self._import_legacy_tables(new_tables),
            "objects": 0,
            "runtime": self._restore_runtime(),
        }
        s3 = self._clients("s3")
        for logical, name in self.buckets.items():
            journal = self._journals[logical]
            journal.load()
            for key, (content_type, metadata) in list(journal.objects.items()):
                path = _object_file(journal.root, key)
                if not path.exists():
                    log.warning("object %s of bucket %s has no saved body; dropped", key, logical)
                    journal.objects.pop(key)
                    continue
                extra: dict[str, Any] = {}
                if content_type:
                    extra["ContentType"] = content_type
                if metadata:
                    extra["Metadata"] = metadata
                s3.put_object(Bucket=name, Key=key, Body=path.read_bytes(), **extra)
                counts["objects"] += 1
            journal.compact()  # the restore's own puts were not journaled; start from a clean manifest
        return counts

    def _restore_runtime(self) -> int:
        path = self.directory / "runtime.json"
        if not path.exists():
            return 0
        saved = json.loads(path.read_text())
        secrets, scheduler = self._clients("secretsmanager"), self._clients("scheduler")
        for secret in saved.get("secrets", []):
            secrets.create_secret(Name=secret["Name"], SecretString=secret["SecretString"])
        for schedule in saved.get("schedules", []):
            target = dict(schedule["Target"])
            target.pop("RetryPolicy", None)
            scheduler.create_schedule(**{**schedule, "Target": target})
        return len(saved.get("secrets", [])) + len(saved.get("schedules", []))

    def _import_legacy_tables(self, new_tables: set[str] | frozenset[str]) -> int:
        imported = 0
        for logical, name in self.tables.items():
            path = self.directory / "dynamodb" / f"{logical}.jsonl"
            if name not in new_tables or not path.exists():
                continue
            items = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            dynamodb = self._clients("dynamodb")
            for start in range(0, len(items), 25):
                pending = {name: [{"PutRequest": {"Item": i}} for i in items[start : start + 25]]}
                while pending:
                    pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            path.rename(path.with_name(path.name + ".imported"))
            log.warning("imported %s items of %s saved by an older version", len(items), logical)
            imported += len(items)
        return imported
