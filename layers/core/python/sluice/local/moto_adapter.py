"""The one place that touches moto's internals (pinned: moto 5.2.5).

moto runs Lambda functions in Docker and leaves Lambda and Step Functions targets of EventBridge
rules unimplemented, and its DynamoDB applies concurrent writes without a lock (a failed
transaction restores a snapshot of whole tables, undoing writes made meanwhile). So this module
patches:

- `LambdaFunction._invoke_lambda`: runs the in-process handler (so a state machine's Task, or any
  `lambda:Invoke` against moto, executes the handler that template.yaml names);
- `events.models.Rule.send_to_targets`: hands Lambda and Step Functions targets to the local
  stack (asynchronously, as EventBridge does) and leaves every other target type to moto;
- DynamoDB's write methods: serialised under one lock, as DynamoDB serialises writes to an item
  (for tests that still run moto's DynamoDB; the stack's DynamoDB is DynamoDB Local);
- Step Functions: finished executions are dropped a few minutes after they end
  (`prune_finished_executions`); moto keeps every execution, its history and its worker threads
  for ever, and walks them all on every StartExecution and DescribeExecution; the same pass drops
  the finished threads from the interpreter's module-level `TMP_THREADS` list, to which every
  execution, Map iteration and Parallel branch appends its thread and which nothing empties;
- moto's instance trackers (`instances_tracked`, a list per model class holding every instance
  ever made, deleted or not) are emptied by the maintenance pass (`forget_tracked_instances`);
  moto server's dashboard (`/moto-api/`) so shows only the models made since the last pass;
- moto's Flask apps run with debug off (in debug, Flask makes a class per request body);
- S3's `put_object` and `delete_object` (which copy, multipart completion and multi-delete go
  through): note the (bucket, key) written, so that the local stack can write it through to disk
  once the request is answered and before the caller sees the answer (`S3WriteObserver`);
- the key store of the template's buckets (`FakeBucket.keys`): `SpilledKeyStore` keeps each
  object's versions in a file once the request that wrote it is answered, and only the key's name
  in memory (`spill_bucket`); `list_objects` tells the store the listing's prefix, so that a
  listing reads only the objects under it.

Everything else the local stack does goes through moto's public API with boto3: over HTTP from
outside (the AWS CLI, SDKs, tests) on the published endpoint, and, for the clients of this
process, in-process (`InProcessMoto`): the same WSGI application that moto's server runs, called
from botocore's `before-send` event with the request that would have gone over the socket, so a
call pays no connection, no server thread and no HTTP parsing (werkzeug's server closes every
connection, ~3 ms of a ~7 ms call). DynamoDB is not moto's: the stack's DynamoDB is DynamoDB Local.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import requests
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from moto.awslambda.models import LambdaFunction
from moto.core.botocore_stubber import MockRawResponse
from moto.core.request import PRESERVED_HEADER_NAMES_ENVIRON_KEY, environ_key_for_header
from moto.dynamodb.models import DynamoDBBackend
from moto.events.models import EventTemplateParser, Rule
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.s3.models import S3Backend, s3_backends
from moto.s3.utils import _VersionedKeyStore
from moto.utilities.arns import parse_arn
from werkzeug.serving import BaseWSGIServer, make_server

MOTO_VERSION = "5.2.5"

# (function name, event) -> handler result; raises on handler error
LambdaInvoker = Callable[[str, Any], Any]
# (target arn, event) -> None; called for Lambda and Step Functions targets of matching rules
TargetDispatcher = Callable[[str, Any], None]

_original_invoke_lambda = LambdaFunction._invoke_lambda
_original_send_to_targets = Rule.send_to_targets
_lock = threading.Lock()
_dynamodb_writes = threading.RLock()
DYNAMODB_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item")
_original_dynamodb = {name: getattr(DynamoDBBackend, name) for name in DYNAMODB_WRITES}
S3_WRITES = ("put_object", "delete_object")
_original_s3 = {name: getattr(S3Backend, name) for name in S3_WRITES}
_original_list_objects = S3Backend.list_objects
_invoker: LambdaInvoker | None = None
_dispatcher: TargetDispatcher | None = None
# [(bucket, key)] -> None, called in the request's thread after moto answered a request that wrote
S3WriteObserver = Callable[[list[tuple[str, str]]], None]
_s3_observer: S3WriteObserver | None = None
_s3_watched: Callable[[str], bool] = lambda bucket: False  # noqa: E731
_s3_pending = threading.local()
ACCOUNT_ID = "123456789012"
# bucket name -> the store that keeps its objects on disk (`spill_bucket`)
_spilled: dict[str, SpilledKeyStore] = {}
_listing = threading.local()  # .prefix: the prefix of the listing this thread is in, if any
SPILL_PREFIX = "sluice-s3-"  # spill folders are named sluice-s3-<pid>-...


def check_version() -> None:
    import moto

    if moto.__version__ != MOTO_VERSION:
        raise RuntimeError(
            f"sluice.local.moto_adapter is written against moto {MOTO_VERSION}, found {moto.__version__}; "
            "re-check the two patched methods before changing the pin."
        )


class MotoServer:
    """moto's server application on a port, in a daemon thread, with S3 writes written through."""

    def __init__(self, host: str, port: int = 0):
        self._server: BaseWSGIServer = make_server(
            host,
            port,
            _WriteThrough(_Dispatcher(create_backend_app)),
            True,
            request_handler=MotoRequestHandler,
        )
        self._thread = threading.Thread(target=self._server.serve_forever, name="sluice-moto", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class _WriteThrough:
    """WSGI middleware: once moto has answered, hand the S3 writes of this request to the observer."""

    def __init__(self, app: Any):
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        try:
            return list(self.app(environ, start_response))
        finally:
            flush_s3_writes()


def start_server(host: str = "127.0.0.1") -> tuple[MotoServer, int]:
    """moto's server on a free port, in a daemon thread."""
    server = MotoServer(host)
    return server, server.port


def flush_s3_writes() -> None:
    """The request is answered: write its S3 writes through (the observer), then let the stores
    of spilled buckets move the keys written to disk."""
    pending: list[tuple[str, str]] | None = getattr(_s3_pending, "writes", None)
    if not pending:
        return
    _s3_pending.writes = []
    try:
        observer = _s3_observer
        if observer is not None:
            observer(pending)
    finally:
        for bucket, key in pending:
            store = _spilled.get(bucket)
            if store is not None:
                store.end_write(key)


def _recording_s3(name: str) -> Callable[..., Any]:
    original = _original_s3[name]

    def write(self: S3Backend, bucket_name: str, key_name: str, *args: Any, **kwargs: Any) -> Any:
        store = _spilled.get(bucket_name)
        if store is not None:
            store.begin_write(key_name)
        try:
            result = original(self, bucket_name, key_name, *args, **kwargs)
        except BaseException:
            if store is not None:
                store.end_write(key_name)
            raise
        if store is not None or (_s3_observer is not None and _s3_watched(bucket_name)):
            if not hasattr(_s3_pending, "writes"):
                _s3_pending.writes = []
            _s3_pending.writes.append((bucket_name, key_name))
        return result

    write.__name__ = name
    return write


def s3_object(bucket: str, key: str) -> tuple[bytes, str | None, dict[str, str]] | None:
    """An object as moto holds it now: (body, content type, user metadata), or None if absent."""
    found = s3_backends[ACCOUNT_ID]["aws"].buckets.get(bucket)
    fake_key = found.keys.get(key) if found is not None else None
    if fake_key is None:
        return None
    metadata = dict(fake_key.metadata or {})
    content_type = next((v for k, v in metadata.items() if k.lower() == "content-type"), None)
    user = {
        k.lower()[len("x-amz-meta-") :]: v for k, v in metadata.items() if k.lower().startswith("x-amz-meta-")
    }
    return fake_key.value, content_type, user


class _OnDisk:
    """The value a `SpilledKeyStore` keeps for a key whose versions are in its file."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<on disk>"


ON_DISK = _OnDisk()


class SpilledKeyStore(_VersionedKeyStore):
    """A bucket's objects in files, one per key, instead of in the interpreter's heap.

    moto holds each object as a `FakeKey`: ~4.7 KB in ~100 live Python blocks for an object of a
    few hundred bytes (its metadata dict, ACL, a `SpooledTemporaryFile` with its buffer, a lock),
    and a run of the soak's pipeline writes 13 of them (docs/performance.md, 10e and 10h). Here a
    key's versions are pickled to a file (FakeKey pickles itself, body included: moto's own deep
    copies rely on it) once every request writing the key has been answered (moto sets an object's
    metadata, ACL and checksum algorithm on the FakeKey after `put_object` returns, so not
    sooner); the dict then holds `ON_DISK` for it. Reading a key unpickles a FakeKey of its own for
    the reader; listing one with a prefix reads only the keys under it (`list_objects` sets
    `_listing.prefix`). Reads take no lock; writes, spills and deletes of this store take one, so a
    spill never replaces a version put meanwhile."""

    def __init__(self, directory: Path, tags: dict[str, dict[str, Any]] | None = None, bucket_name: str = ""):
        super().__init__()
        self.directory = directory
        # moto's tags of S3 objects, by object ARN: it adds an entry for every object put, tagged or
        # not, and keeps it after the object is deleted; here empty entries go once the object is
        # in its file, and an object's entry goes with the object, as S3 deletes an object's tags
        self._tags = tags if tags is not None else {}
        self._untagged_arn = f"arn:aws:s3:::{bucket_name}/{{}}/null"  # an unversioned object's
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._writing: dict[str, int] = {}  # key -> requests that wrote it and are not answered yet

    def _path(self, key: str) -> Path:
        return self.directory / hashlib.sha256(key.encode()).hexdigest()

    def __sgetitem__(self, key: str) -> list[Any]:
        value = dict.__getitem__(self, key)
        if value is not ON_DISK:
            return value  # type: ignore[no-any-return]
        try:
            with open(self._path(key), "rb") as handle:
                return pickle.load(handle)  # type: ignore[no-any-return]
        except FileNotFoundError:  # deleted meanwhile, or put back in memory by a new version
            value = dict.get(self, key)
            if value is None or value is ON_DISK:
                raise KeyError(key) from None
            return value  # type: ignore[no-any-return]

    def __setitem__(self, key: str, value: Any) -> None:
        with self._lock:
            super().__setitem__(key, value)

    def setlist(self, key: Any, list_: Any) -> None:
        if isinstance(list_, tuple):
            list_ = list(list_)
        elif not isinstance(list_, list):
            list_ = [list_]
        with self._lock:
            previous = dict.get(self, key)
            if previous is not None and previous is not ON_DISK:  # versions in a file are replaced
                for version in previous:  # as moto's store does: versions not kept are disposed of
                    if version not in list_ and hasattr(version, "dispose"):
                        version.dispose()
            dict.__setitem__(self, key, list_)

    def pop(self, key: str) -> None:  # type: ignore[override]
        with self._lock:
            value = dict.pop(self, key)
            if value is ON_DISK:
                self._path(key).unlink(missing_ok=True)
                self._tags.pop(self._untagged_arn.format(key), None)
            else:
                for version in value:
                    self._tags.pop(getattr(version, "arn", ""), None)
                    version.dispose()

    def __delitem__(self, key: str) -> None:
        self.pop(key)

    # moto walks a copy of the keys, then reads each: a key deleted in between is left out here
    # (moto's own store has the same window, smaller; reading a file widens it).
    def _iteritems(self) -> Iterator[tuple[str, Any]]:
        for key in self._self_iterable():
            try:
                yield key, self[key]
            except KeyError:
                continue

    def _itervalues(self) -> Iterator[Any]:
        for _key, value in self._iteritems():
            yield value

    def _iterlists(self) -> Iterator[tuple[str, list[Any]]]:
        for key in self._self_iterable():
            versions = self.getlist(key)
            if versions is not None:
                yield key, versions

    items = iteritems = _iteritems  # type: ignore[assignment]
    lists = iterlists = _iterlists
    values = itervalues = _itervalues  # type: ignore[assignment]

    def _self_iterable(self) -> dict[str, Any]:
        prefix = getattr(_listing, "prefix", None)
        keys = dict(self)
        if prefix:  # the listing skips the other keys anyway: do not read them
            return {key: value for key, value in keys.items() if key.startswith(prefix)}
        return keys

    def begin_write(self, key: str) -> None:
        with self._lock:
            self._writing[key] = self._writing.get(key, 0) + 1

    def end_write(self, key: str) -> None:
        """A request that wrote `key` is answered: once none is left, move the key to its file."""
        with self._lock:
            left = self._writing.pop(key, 1) - 1
            if left > 0:
                self._writing[key] = left
                return
            self._spill(key)

    def spill_all(self) -> int:
        """Move every key held in memory and not being written to its file (after a restore)."""
        spilled = 0
        with self._lock:
            for key in list(dict.keys(self)):
                if key not in self._writing and self._spill(key):
                    spilled += 1
        return spilled

    def _spill(self, key: str) -> bool:
        value = dict.get(self, key)
        if value is None or value is ON_DISK or not value:
            return False
        path = self._path(key)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_bytes(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
        os.replace(temporary, path)
        # The FakeKeys in memory become garbage once their readers are done with them; they are not
        # disposed of here, since a reader may still be streaming one's body.
        dict.__setitem__(self, key, ON_DISK)
        for version in value:
            arn = getattr(version, "arn", None)
            if arn is not None and self._tags.get(arn) == {}:
                del self._tags[arn]
        return True

    def in_memory(self) -> int:
        """How many keys are held in memory (being written, or in a bucket that is not spilled)."""
        return sum(1 for value in dict.values(self) if value is not ON_DISK)


def spill_bucket(name: str, directory: Path) -> SpilledKeyStore:
    """Keep the objects of moto's bucket `name` on disk under `directory` from now on."""
    backend = s3_backends[ACCOUNT_ID]["aws"]
    bucket = backend.get_bucket(name)
    store = SpilledKeyStore(directory, backend.tagger.tags, name)
    with _lock:
        for key, versions in dict.items(bucket.keys):
            dict.__setitem__(store, key, versions)
        bucket.keys = store
        _spilled[name] = store
    store.spill_all()
    return store


def spilled_objects() -> dict[str, int]:
    """Keys of the spilled buckets, on disk and (being written) in memory."""
    with _lock:
        stores = list(_spilled.values())
    in_memory = sum(store.in_memory() for store in stores)
    return {"on_disk": sum(len(store) for store in stores) - in_memory, "in_memory": in_memory}


def unspill_buckets() -> None:
    """Forget the spilled buckets (a stopping stack): their objects and folders are dropped; what the
    user keeps is in the stack's own journal (sluice.local.snapshot)."""
    with _lock:
        stores = dict(_spilled)
        _spilled.clear()
    for name, store in stores.items():
        bucket = s3_backends[ACCOUNT_ID]["aws"].buckets.get(name)
        if bucket is not None and bucket.keys is store:
            bucket.keys = _VersionedKeyStore()
        shutil.rmtree(store.directory, ignore_errors=True)


def _list_objects(self: S3Backend, bucket: Any, prefix: str | None, *args: Any, **kwargs: Any) -> Any:
    saved = getattr(_listing, "prefix", None)
    _listing.prefix = prefix
    try:
        return _original_list_objects(self, bucket, prefix, *args, **kwargs)
    finally:
        _listing.prefix = saved


def observe_s3_writes(observer: S3WriteObserver | None, watched: Callable[[str], bool] | None = None) -> None:
    """Call `observer` after each request that wrote to a bucket for which `watched(bucket)` holds."""
    global _s3_observer, _s3_watched
    with _lock:
        _s3_observer = observer
        _s3_watched = watched or (lambda bucket: False)


def _latin1(text: str) -> str:
    # PEP 3333: environ strings are bytes decoded as latin-1 (what werkzeug's server hands moto).
    return text.encode("utf-8").decode("latin-1")


class _Dispatcher(DomainDispatcherApplication):
    """moto's application with its per-service Flask apps out of debug mode (moto turns it on): in
    debug, Flask wraps every request's form data in a new class (flask/debughelpers.py) that holds
    the request. moto's dispatcher keeps the factory it is given as an instance attribute, so the
    factory is wrapped (a method of the same name would be shadowed by it)."""

    def __init__(self, create_app: Callable[[Any], Any]):
        def without_debug(backend: Any) -> Any:
            app = create_app(backend)
            app.debug = False
            return app

        super().__init__(without_debug)


def prune_finished_executions(older_than: float = 300.0, keep: int = 100) -> int:
    """Forget state machine executions that ended more than `older_than` seconds ago, keeping the
    newest `keep` finished ones of each state machine. Returns how many were dropped."""
    import datetime

    from moto.stepfunctions.models import stepfunctions_backends
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    cutoff = datetime.datetime.now(tz=datetime.UTC) - datetime.timedelta(seconds=older_than)
    dropped = 0
    for backends in (stepfunctions_backends, stepfunctions_parser_backends):
        for account in list(backends.keys()):
            for region in list(backends[account].keys()):
                for machine in list(getattr(backends[account][region], "state_machines", [])):
                    executions = list(machine.executions)
                    finished = [e for e in executions if _ended_at(e) is not None]
                    newest = set(map(id, sorted(finished, key=_ended_at, reverse=True)[:keep]))
                    for execution in finished:
                        if _ended_at(execution) < cutoff and id(execution) not in newest:
                            machine.executions.remove(execution)  # one atomic step: starts may append
                            dropped += 1
    forget_finished_threads()
    return dropped


def forget_finished_threads() -> int:
    """Drop the threads that have ended from moto's `TMP_THREADS` (the ASL interpreter appends each
    execution's, Map iteration's and Parallel branch's thread to it, and never removes one).
    Returns how many were dropped."""
    from moto.stepfunctions.parser import utils

    threads = utils.TMP_THREADS
    ended = [thread for thread in list(threads) if thread.ident is not None and not thread.is_alive()]
    for thread in ended:
        threads.remove(thread)  # one atomic step each: interpreter threads append meanwhile
    return len(ended)


def forget_tracked_instances() -> int:
    """Empty moto's instance trackers. Every moto model (`BaseModel`) appends each instance it makes
    to its class's `instances_tracked`, for moto server's dashboard and S3's reset, and only a reset
    empties it: every SQS message, S3 key and ACL, EventBridge event and state machine execution
    ever made stays referenced there after it is deleted, overwritten or pruned. The backends keep
    what is live; this drops the rest. Returns how many references were dropped."""
    from moto.core.model_instances import model_data

    dropped = 0
    for models in list(model_data.values()):
        for model in list(models.values()):
            tracked = getattr(model, "instances_tracked", None)
            if tracked:
                dropped += len(tracked)
                del tracked[:]  # in place, one step: models made meanwhile append to the same list
    return dropped


def _ended_at(execution: Any) -> Any:
    """When a finished execution stopped (timezone-aware), or None while it runs."""
    import datetime

    status = getattr(execution, "status", None)
    if callable(status):
        status = status()
    if status in (None, "RUNNING"):
        return None
    stopped = getattr(execution, "stop_date", None)
    if isinstance(stopped, str):
        stopped = datetime.datetime.fromisoformat(stopped.replace("Z", "+00:00"))
    if not isinstance(stopped, datetime.datetime):
        return None
    return stopped if stopped.tzinfo else stopped.replace(tzinfo=datetime.UTC)


class InProcessMoto:
    """moto's server application, called in-process from botocore (register `handle` on a client's
    `before-send`). The request is the one botocore would send, signed, to the published endpoint,
    so moto sees exactly what its HTTP server would pass it."""

    def __init__(self) -> None:
        self.app = _Dispatcher(create_backend_app)

    def attach(self, client: Any) -> Any:
        client.meta.events.register("before-send", self.handle)
        return client

    def handle(self, request: Any, **_: Any) -> AWSResponse:
        url = urlsplit(request.url)
        body = request.body
        if body is None:
            data = b""
        elif isinstance(body, bytes | bytearray):
            data = bytes(body)
        elif isinstance(body, str):
            data = body.encode("utf-8")
        else:  # a file-like body (S3 uploads, aws-chunked wrappers): what would go on the wire
            data = body.read()
            if isinstance(data, str):
                data = data.encode("utf-8")
        raw_uri = url.path + (f"?{url.query}" if url.query else "")
        environ: dict[str, Any] = {
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": url.scheme or "http",
            "wsgi.input": io.BytesIO(data),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "REQUEST_METHOD": request.method,
            "SCRIPT_NAME": "",
            "PATH_INFO": _latin1(unquote(url.path or "/")),
            "QUERY_STRING": _latin1(url.query),
            "REQUEST_URI": _latin1(raw_uri),
            "RAW_URI": _latin1(raw_uri),
            "REMOTE_ADDR": "127.0.0.1",
            "REMOTE_PORT": 0,
            "SERVER_NAME": url.hostname or "localhost",
            "SERVER_PORT": str(url.port or 80),
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": url.netloc,
            "CONTENT_LENGTH": str(len(data)),
        }
        preserved: dict[str, str] = {}
        for name, value in request.headers.items():
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            key = environ_key_for_header(name)
            if key == "HTTP_CONTENT_LENGTH" or key == "CONTENT_LENGTH":
                continue  # the body's own length, set above
            if "_" in name:
                preserved.setdefault(key, name)
            environ[key] = value
        environ[PRESERVED_HEADER_NAMES_ENVIRON_KEY] = preserved
        status_line: list[str] = []
        response_headers: list[tuple[str, str]] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status_line[:] = [status]
            response_headers[:] = headers
            return lambda chunk: None

        chunks = self.app(environ, start_response)
        try:
            content = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close:
                close()
            flush_s3_writes()
        headers = HTTPHeaders()
        for name, value in response_headers:
            headers[name] = value
        status = int(status_line[0].split(" ", 1)[0])
        if request.method == "HEAD":
            content = b""
        return AWSResponse(request.url, status, headers, MockRawResponse(content))


def enable_state_machine_execution(endpoint: str) -> None:
    """Make moto interpret ASL for real (its public config API, not a patch)."""
    response = requests.post(
        f"{endpoint}/moto-api/config", json={"stepfunctions": {"execute_state_machine": True}}, timeout=10
    )
    response.raise_for_status()


def _invoke_lambda(self: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
    invoker = _invoker
    if invoker is None:
        return _original_invoke_lambda(self, event)
    if isinstance(event, str):
        event = json.loads(event or "{}")
    try:
        result = invoker(self.function_name, event)
    except Exception as exc:  # the handler failed: report it as Lambda does, errorType first
        payload = {
            "errorType": type(exc).__name__,
            "errorMessage": str(exc),
            "stackTrace": traceback.format_exception(exc),
        }
        return json.dumps(payload), True, ""
    return json.dumps(result), False, ""


def _target_event(target: dict[str, Any], event: dict[str, Any]) -> Any:
    if "Input" in target:
        return json.loads(target["Input"])
    if "InputPath" in target:
        path = target["InputPath"].lstrip("$").strip(".")
        value: Any = event
        for part in filter(None, path.split(".")):
            value = value.get(part) if isinstance(value, dict) else None
        return value
    transformer = target.get("InputTransformer")
    if transformer:
        rendered = EventTemplateParser.parse(
            input_template=transformer.get("InputTemplate"),
            input_paths_map=transformer.get("InputPathsMap", {}),
            event=event,
        )
        return rendered
    return event


def _send_to_targets(self: Rule, original_event: dict[str, Any], transform_input: bool = True) -> None:
    dispatcher = _dispatcher
    if dispatcher is None:
        return _original_send_to_targets(self, original_event, transform_input)
    local = [t for t in self.targets if parse_arn(t["Arn"]).service in ("lambda", "states")]
    if local and self.event_pattern.matches_event(original_event):
        for target in local:
            event = _target_event(target, original_event) if transform_input else original_event
            dispatcher(target["Arn"], event)
    others = [t for t in self.targets if t not in local]
    if others:
        saved = self.targets
        try:
            self.targets = others
            _original_send_to_targets(self, original_event, transform_input)
        finally:
            self.targets = saved


def _serialised(name: str) -> Callable[..., Any]:
    original = _original_dynamodb[name]

    def write(self: DynamoDBBackend, *args: Any, **kwargs: Any) -> Any:
        with _dynamodb_writes:
            return original(self, *args, **kwargs)

    write.__name__ = name
    return write


def install(invoker: LambdaInvoker, dispatcher: TargetDispatcher) -> None:
    """Route moto's Lambda invocations and rule targets to the local stack; serialise its writes."""
    global _invoker, _dispatcher
    check_version()
    with _lock:
        _invoker, _dispatcher = invoker, dispatcher
        LambdaFunction._invoke_lambda = _invoke_lambda
        Rule.send_to_targets = _send_to_targets
        for name in DYNAMODB_WRITES:
            setattr(DynamoDBBackend, name, _serialised(name))
        for name in S3_WRITES:
            setattr(S3Backend, name, _recording_s3(name))
        S3Backend.list_objects = _list_objects


def uninstall() -> None:
    global _invoker, _dispatcher
    with _lock:
        _invoker, _dispatcher = None, None
        LambdaFunction._invoke_lambda = _original_invoke_lambda
        Rule.send_to_targets = _original_send_to_targets
        for name, original in _original_dynamodb.items():
            setattr(DynamoDBBackend, name, original)
        for name, original in _original_s3.items():
            setattr(S3Backend, name, original)
        S3Backend.list_objects = _original_list_objects
