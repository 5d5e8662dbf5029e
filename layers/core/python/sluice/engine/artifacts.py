"""Where node data lives: the object-store port, its S3, local-filesystem and dry-run adapters, and
the one layout of node artifacts and datasets in the data bucket (env DATA_BUCKET).

Layout, every caller-given segment (project, run id, node id, dataset name) percent-encoded so that
no id can climb out of its folder:

    projects/<project>/runs/<run_id>/nodes/<node_id>/output.parquet   the node's output rows
                                                    /preview.json     first 50 rows {columns, rows}
                                                    /profile.json     {row_count, columns: [...]}
                                                    /logs.jsonl       one {level, message, timestamp} a line
    projects/<project>/datasets/<name>/manifest.json                   the current version (datasets.py)
    projects/<project>/datasets/<name>/data/<uuid>.parquet             data files the manifests list

The engine writes all four node artifacts itself *and* returns preview, profile and logs in its
result: the Runs API reads them back from here (`read_preview`, `read_profile`, `read_logs`) without
the state machine carrying 50-row previews through its 256 KB payloads, and the caller may still
mirror log lines elsewhere (DynamoDB, the WebSocket) straight from the result.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from sluice.config import settings
from sluice.errors import NotFound

OUTPUT = "output.parquet"
PREVIEW = "preview.json"
PROFILE = "profile.json"
LOGS = "logs.jsonl"
# Objects up to this size move in one request; larger ones in s3transfer's parallel parts.
SINGLE_REQUEST_BYTES = 64 * 1024 * 1024
COPY_CHUNK_BYTES = 1024 * 1024


class ObjectMissing(Exception):
    """The object (or its bucket) does not exist."""


class WriteConflict(Exception):
    """A conditional write lost: the object changed (or appeared) since it was read."""


class StorageFailed(Exception):
    """The object store refused or failed a request (permissions, throttling that outlived retries)."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    etag: str = ""


class ObjectStore(Protocol):
    """The port: everything the engine asks of S3, so unit tests run on a folder instead."""

    def read(self, bucket: str, key: str) -> tuple[bytes, str]:
        """The object's bytes and its ETag; ObjectMissing if absent."""

    def write(
        self, bucket: str, key: str, body: bytes, *, if_match: str | None = None, if_absent: bool = False
    ) -> str:
        """Store bytes, returning the new ETag; WriteConflict when the condition does not hold."""

    def download(self, bucket: str, key: str, path: Path) -> None: ...

    def upload(self, path: Path, bucket: str, key: str) -> None: ...

    def copy(self, source_bucket: str, source_key: str, bucket: str, key: str, *, if_match: str = "") -> None:
        """Server-side copy; WriteConflict when the source's ETag is no longer `if_match`."""

    def list(self, bucket: str, prefix: str) -> list[StoredObject]: ...

    def delete(self, bucket: str, key: str) -> None: ...


def _client_error_code(exc: Exception) -> tuple[str, int]:
    response = getattr(exc, "response", {}) or {}
    error = response.get("Error", {})
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return str(error.get("Code", "")), int(status or 0)


class S3ObjectStore:
    """The adapter for AWS (or moto): boto3 through `sluice.aws`, errors turned into the port's."""

    def _client(self) -> Any:
        from sluice import aws

        return aws.client("s3")

    def _translate(self, exc: Exception, bucket: str, key: str) -> Exception:
        code, status = _client_error_code(exc)
        where = f"s3://{bucket}/{key}"
        if code == "NoSuchBucket":
            return ObjectMissing(f"bucket '{bucket}' does not exist")
        if code in ("NoSuchKey", "404", "NotFound") or status == 404:
            return ObjectMissing(f"{where} does not exist")
        if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
            return WriteConflict(f"{where} changed while it was being written")
        if code in ("AccessDenied", "403") or status == 403:
            return StorageFailed(f"access to {where} was denied")
        return StorageFailed(f"S3 failed on {where}: {code or type(exc).__name__} {exc}")

    def read(self, bucket: str, key: str) -> tuple[bytes, str]:
        try:
            response = self._client().get_object(Bucket=bucket, Key=key)
            return response["Body"].read(), response["ETag"]
        except Exception as exc:
            raise self._translate(exc, bucket, key) from exc

    def write(
        self, bucket: str, key: str, body: bytes, *, if_match: str | None = None, if_absent: bool = False
    ) -> str:
        conditions: dict[str, str] = {}
        if if_match is not None:
            conditions["IfMatch"] = if_match
        if if_absent:
            conditions["IfNoneMatch"] = "*"
        try:
            return self._client().put_object(Bucket=bucket, Key=key, Body=body, **conditions)["ETag"]
        except Exception as exc:
            raise self._translate(exc, bucket, key) from exc

    def download(self, bucket: str, key: str, path: Path) -> None:
        """One GetObject streamed to the file. s3transfer's download_file adds a HeadObject and a
        thread pool, which cost more than they give for the objects nodes pass each other; past
        SINGLE_REQUEST_BYTES its ranged, parallel GETs are worth it again."""
        try:
            response = self._client().get_object(Bucket=bucket, Key=key)
            if int(response.get("ContentLength") or 0) > SINGLE_REQUEST_BYTES:
                response["Body"].close()
                self._client().download_file(bucket, key, str(path))
                return
            with path.open("wb") as handle:
                shutil.copyfileobj(response["Body"], handle, COPY_CHUNK_BYTES)
        except Exception as exc:
            raise self._translate(exc, bucket, key) from exc

    def upload(self, path: Path, bucket: str, key: str) -> None:
        """One PutObject up to SINGLE_REQUEST_BYTES, a parallel multipart upload past it."""
        try:
            if path.stat().st_size <= SINGLE_REQUEST_BYTES:
                with path.open("rb") as handle:
                    self._client().put_object(Bucket=bucket, Key=key, Body=handle)
            else:
                self._client().upload_file(str(path), bucket, key)
        except Exception as exc:
            raise self._translate(exc, bucket, key) from exc

    def copy(self, source_bucket: str, source_key: str, bucket: str, key: str, *, if_match: str = "") -> None:
        # One CopyObject (objects up to 5 GB); the caller falls back to an upload past that. The copy
        # gets a whole-object CRC32 of its own: a multipart source carries a checksum of its parts,
        # which a single GetObject of the copy could not check (moto even copies it as if whole).
        condition = {"CopySourceIfMatch": if_match} if if_match else {}
        try:
            self._client().copy_object(
                CopySource={"Bucket": source_bucket, "Key": source_key},
                Bucket=bucket,
                Key=key,
                ChecksumAlgorithm="CRC32",
                **condition,
            )
        except Exception as exc:
            raise self._translate(exc, source_bucket, source_key) from exc

    def list(self, bucket: str, prefix: str) -> list[StoredObject]:
        found: list[StoredObject] = []
        try:
            pages = self._client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for page in pages:
                found.extend(
                    StoredObject(item["Key"], int(item["Size"]), item.get("ETag", ""))
                    for item in page.get("Contents", [])
                )
        except Exception as exc:
            raise self._translate(exc, bucket, prefix) from exc
        return found

    def delete(self, bucket: str, key: str) -> None:
        try:
            self._client().delete_object(Bucket=bucket, Key=key)
        except Exception as exc:
            raise self._translate(exc, bucket, key) from exc


class LocalObjectStore:
    """The adapter for unit tests and dry runs: bucket `b`, key `k` is the file `<root>/b/k`.

    ETags are content hashes and conditional writes hold a lock, so manifests swap as on S3.
    """

    _lock = threading.Lock()

    def __init__(self, root: Path | str):
        self.root = Path(root).resolve()

    def _path(self, bucket: str, key: str) -> Path:
        path = (self.root / bucket / key).resolve()
        if not path.is_relative_to(self.root / bucket) or not key:
            raise StorageFailed(f"s3://{bucket}/{key} is not a valid object key")
        return path

    @staticmethod
    def _etag(body: bytes) -> str:
        return f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'

    def read(self, bucket: str, key: str) -> tuple[bytes, str]:
        path = self._path(bucket, key)
        if not path.is_file():
            raise ObjectMissing(f"s3://{bucket}/{key} does not exist")
        body = path.read_bytes()
        return body, self._etag(body)

    def write(
        self, bucket: str, key: str, body: bytes, *, if_match: str | None = None, if_absent: bool = False
    ) -> str:
        path = self._path(bucket, key)
        with self._lock:
            exists = path.is_file()
            if if_absent and exists:
                raise WriteConflict(f"s3://{bucket}/{key} already exists")
            if if_match is not None and (not exists or self._etag(path.read_bytes()) != if_match):
                raise WriteConflict(f"s3://{bucket}/{key} changed while it was being written")
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + ".partial")
            partial.write_bytes(body)
            partial.replace(path)
        return self._etag(body)

    def download(self, bucket: str, key: str, path: Path) -> None:
        source = self._path(bucket, key)
        if not source.is_file():
            raise ObjectMissing(f"s3://{bucket}/{key} does not exist")
        shutil.copyfile(source, path)

    def upload(self, path: Path, bucket: str, key: str) -> None:
        target = self._path(bucket, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)

    def copy(self, source_bucket: str, source_key: str, bucket: str, key: str, *, if_match: str = "") -> None:
        if if_match and self.read(source_bucket, source_key)[1] != if_match:
            raise WriteConflict(f"s3://{source_bucket}/{source_key} changed since it was read")
        self.download(source_bucket, source_key, self._ensure_parent(bucket, key))

    def _ensure_parent(self, bucket: str, key: str) -> Path:
        target = self._path(bucket, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def list(self, bucket: str, prefix: str) -> list[StoredObject]:
        base = self.root / bucket
        if not base.is_dir():
            raise ObjectMissing(f"bucket '{bucket}' does not exist")
        found = []
        for path in sorted(base.rglob("*")):
            if path.is_file() and not path.name.endswith(".partial"):
                key = path.relative_to(base).as_posix()
                if key.startswith(prefix):
                    found.append(StoredObject(key, path.stat().st_size, self._etag(path.read_bytes())))
        return found

    def delete(self, bucket: str, key: str) -> None:
        self._path(bucket, key).unlink(missing_ok=True)


class ScratchObjectStore:
    """A dry run's view of storage: reads fall through to the real store, every write lands in a
    local folder. Nothing a dry run does can reach the real store, by construction."""

    def __init__(self, scratch: LocalObjectStore, base: ObjectStore):
        self.scratch = scratch
        self.base = base

    def _in_scratch(self, bucket: str, key: str) -> bool:
        try:
            return self.scratch._path(bucket, key).is_file()
        except StorageFailed:
            return False

    def read(self, bucket: str, key: str) -> tuple[bytes, str]:
        if self._in_scratch(bucket, key):
            return self.scratch.read(bucket, key)
        return self.base.read(bucket, key)

    def write(
        self, bucket: str, key: str, body: bytes, *, if_match: str | None = None, if_absent: bool = False
    ) -> str:
        return self.scratch.write(bucket, key, body)

    def download(self, bucket: str, key: str, path: Path) -> None:
        if self._in_scratch(bucket, key):
            self.scratch.download(bucket, key, path)
        else:
            self.base.download(bucket, key, path)

    def upload(self, path: Path, bucket: str, key: str) -> None:
        self.scratch.upload(path, bucket, key)

    def copy(self, source_bucket: str, source_key: str, bucket: str, key: str, *, if_match: str = "") -> None:
        self.download(source_bucket, source_key, self.scratch._ensure_parent(bucket, key))

    def list(self, bucket: str, prefix: str) -> list[StoredObject]:
        merged = {item.key: item for item in self.base.list(bucket, prefix)}
        with contextlib.suppress(ObjectMissing):
            merged.update({item.key: item for item in self.scratch.list(bucket, prefix)})
        return [merged[key] for key in sorted(merged)]

    def delete(self, bucket: str, key: str) -> None:
        self.scratch.delete(bucket, key)


@dataclass(frozen=True)
class Storage:
    """The object store and the data bucket a node run works against.

    `persistent` is False for a dry run's scratch storage: the engine refuses to write datasets and
    S3 targets through it, and its artifacts vanish with the folder.
    """

    objects: ObjectStore
    bucket: str
    persistent: bool = True

    @classmethod
    def s3(cls, bucket: str | None = None) -> Storage:
        """S3 through boto3; the data bucket defaults to env DATA_BUCKET."""
        name = bucket or settings().data_bucket
        if not name:
            raise ValueError("DATA_BUCKET is not set: the engine needs the data bucket's name")
        return cls(S3ObjectStore(), name)

    @classmethod
    def local(cls, root: Path | str, bucket: str = "sluice-data") -> Storage:
        """A folder standing in for S3 (unit tests, tools): `<root>/<bucket>/<key>`."""
        return cls(LocalObjectStore(root), bucket)

    def scratch(self, directory: Path | str) -> Storage:
        """Storage for a dry run: reads sources and datasets from here, writes only into `directory`.

        A multi-node dry run passes the same scratch storage to every node so that each finds its
        upstream outputs; the caller deletes the directory afterwards.
        """
        base = self.objects.base if isinstance(self.objects, ScratchObjectStore) else self.objects
        return Storage(ScratchObjectStore(LocalObjectStore(directory), base), self.bucket, persistent=False)


@dataclass(frozen=True)
class ArtifactRef:
    """A node's output: the key of its Parquet file in the data bucket.

    Resumed runs pass the earlier run's refs as inputs, so a ref may point into another run's folder.
    """

    key: str

    def to_dict(self) -> dict[str, str]:
        return {"key": self.key}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | str) -> ArtifactRef:
        if isinstance(data, str):
            return cls(data)
        return cls(str(data["key"]))


def segment(value: str | int) -> str:
    """One path segment from a caller-given id; '/' and '..' cannot survive it."""
    text = quote(str(value), safe="")
    return text.replace(".", "%2E") if set(text) <= {"."} else text


def project_prefix(project: str) -> str:
    return f"projects/{segment(project)}/"


def run_prefix(project: str, run_id: str | int) -> str:
    return f"{project_prefix(project)}runs/{segment(run_id)}/"


def node_prefix(project: str, run_id: str | int, node_id: str) -> str:
    return f"{run_prefix(project, run_id)}nodes/{segment(node_id)}/"


def node_artifact_key(project: str, run_id: str | int, node_id: str, artifact: str) -> str:
    """Key of one of a node run's artifacts: OUTPUT, PREVIEW, PROFILE or LOGS."""
    return node_prefix(project, run_id, node_id) + artifact


def dataset_prefix(project: str, name: str) -> str:
    # Datasets are addresses, whose names Watcher compares without case: one dataset per lowercase name.
    return f"{project_prefix(project)}datasets/{segment(name.lower())}/"


def dataset_manifest_key(project: str, name: str) -> str:
    return dataset_prefix(project, name) + "manifest.json"


def dataset_file_key(project: str, name: str, file_id: str) -> str:
    return f"{dataset_prefix(project, name)}data/{file_id}.parquet"


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/key` -> (bucket, key); ValueError with a sentence otherwise."""
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise ValueError(f"'{uri}' is not an s3:// URI")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"'{uri}' names no bucket")
    return bucket, key


def check_user_object(storage: Storage, project: str, bucket: str, key: str, *, writing: bool) -> None:
    """A node's own S3 URI may touch the data bucket only inside its project, and may not write over
    what Sluice manages there (run artifacts, datasets): tenants share that bucket."""
    if bucket != storage.bucket:
        return
    own = project_prefix(project)
    if not key.startswith(own):
        raise ValueError(f"s3://{bucket}/{key} is outside this project's folder ({own}) of the data bucket")
    managed = (own + "runs/", own + "datasets/")
    if writing and key.startswith(managed):
        raise ValueError(
            f"s3://{bucket}/{key} is inside Sluice's managed run and dataset folders; "
            "write datasets with a dataset target"
        )


# -- reading node artifacts back (the Runs API) ---------------------------------------------------
def _read_node_artifact(
    storage: Storage, project: str, run_id: str | int, node_id: str, artifact: str
) -> bytes:
    try:
        body, _ = storage.objects.read(storage.bucket, node_artifact_key(project, run_id, node_id, artifact))
    except ObjectMissing as exc:
        raise NotFound(
            f"Node '{node_id}' of run {run_id} has no {artifact.split('.')[0]}: it did not run."
        ) from exc
    return body


def read_preview(storage: Storage, project: str, run_id: str | int, node_id: str) -> dict[str, Any]:
    """The node's first 50 rows, `{columns, rows}`, as the engine stored them."""
    return json.loads(_read_node_artifact(storage, project, run_id, node_id, PREVIEW))


def read_profile(storage: Storage, project: str, run_id: str | int, node_id: str) -> dict[str, Any]:
    return json.loads(_read_node_artifact(storage, project, run_id, node_id, PROFILE))


def read_logs(storage: Storage, project: str, run_id: str | int, node_id: str) -> list[dict[str, Any]]:
    """The node's log lines, oldest first (written on success and on failure)."""
    body = _read_node_artifact(storage, project, run_id, node_id, LOGS)
    return [json.loads(line) for line in body.decode("utf-8").splitlines() if line.strip()]
