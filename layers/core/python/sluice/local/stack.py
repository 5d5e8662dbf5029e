"""The local stack: template.yaml's tables in DynamoDB Local, every other resource on moto, the
handlers in this process.

Start-up: DynamoDB Local (its own Java process, sluice.local.dynamodb_local) -> moto's server in
a thread -> the template through the real SAM transform -> moto's CloudFormation `create_stack`
(buckets, queues, bus, rules, functions, state machines; the tables are taken out and references
to them resolved to fixed names) -> the tables created in DynamoDB Local from the template (GSIs,
TTL) unless its database has them already -> state machines re-created in moto's executing Step
Functions backend with their substitutions resolved -> environment of the functions set on this
process -> saved data restored -> admin key bootstrapped -> SQS pollers, scheduler and TTL
sweeper threads started. The gateway (sluice.local.gateway) then serves the HttpApi routes.

The handlers' boto3 clients send DynamoDB to DynamoDB Local (`AWS_ENDPOINT_URL_DYNAMODB`) and
everything else to moto in-process (moto_adapter.InProcessMoto); outside clients use moto's
published endpoint.
"""

from __future__ import annotations

import contextvars
import copy
import io
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sluice import aws
from sluice.local import moto_adapter, native_heap
from sluice.local.dynamodb_local import DynamoDBLocal
from sluice.local.functions import ACCOUNT, REGION, FunctionRegistry
from sluice.local.gateway import Gateway
from sluice.local.scheduler import Scheduler
from sluice.local.snapshot import Snapshot
from sluice.local.template import (
    ROOT,
    http_routes,
    load_template,
    resources_of_type,
    table_definition,
    websocket_routes,
)

log = logging.getLogger("sluice.local")

STACK_NAME = "sluice-local"
ARTIFACTS_BUCKET = "sluice-local-artifacts"
SUB_MINUTE_RATE = re.compile(r"rate\(\s*\d+\s+seconds?\s*\)")
WRITE_PREFIXES = (
    "Create",
    "Put",
    "Update",
    "Delete",
    "BatchWrite",
    "TransactWrite",
    "Copy",
    "CompleteMultipart",
    "Restore",
)
RUNTIME_SERVICES = ("secretsmanager", "scheduler")  # written through to runtime.json on every change


START_AT_ONCE = 10  # a request's first background jobs start at once; the rest once it has answered


class _RequestJobs:
    """The background jobs of one gateway request (LocalStack.answer)."""

    def __init__(self) -> None:
        self.started = 0
        self.held: list[tuple[Any, ...]] = []


# The jobs of the gateway request being answered in this context
_HELD_JOBS: contextvars.ContextVar[_RequestJobs | None] = contextvars.ContextVar(
    "sluice_held_jobs", default=None
)


@dataclass
class StackOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = field(default_factory=lambda: Path(".sluice"))
    ephemeral: bool = False
    parameters: dict[str, str] = field(default_factory=dict)
    admin_key: str | None = None
    log_level: str = "WARNING"
    scheduler_tick: float = 0.5
    ttl_sweep_interval: float = 60.0  # DynamoDB Local keeps expired items; the stack deletes them
    # glibc's malloc_trim after each maintenance pass (every 30 s); SLUICE_DEV_HEAP_TRIM=0 turns it off
    trim_native_heap: bool = field(default_factory=lambda: os.environ.get("SLUICE_DEV_HEAP_TRIM", "1") != "0")
    # the template buckets' objects in files rather than in moto's memory; SLUICE_DEV_S3_SPILL=0 keeps
    # them in memory (moto's own store)
    spill_s3: bool = field(default_factory=lambda: os.environ.get("SLUICE_DEV_S3_SPILL", "1") != "0")


class LocalStack:
    def __init__(self, options: StackOptions | None = None):
        self.options = options or StackOptions()
        self.template = load_template()
        self.registry = FunctionRegistry(self.template)
        self.resources: dict[str, str] = {}  # logical id -> physical id
        self.outputs: dict[str, str] = {}
        self.state_machines: dict[str, str] = {}  # logical id -> ARN
        self.created_admin_key: str | None = None
        self.schedule_overrides: dict[str, str] = {}  # rule physical name -> sub-minute rate
        self.endpoint = ""
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="sluice-lambda")
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: Any = None
        self.dynamodb_local: DynamoDBLocal | None = None
        self.dynamodb_endpoint = ""
        self.tables: dict[str, str] = {}  # logical id -> table name in DynamoDB Local
        self.created_tables: set[str] = set()
        self._moto = moto_adapter.InProcessMoto()
        self._hooks: list[Callable[[str, Any], None]] = []
        self.expired_deleted = 0
        self.moto_instances_forgotten = 0  # references dropped from moto's instance trackers
        self.heap = HeapTrims()
        self.background = BackgroundWork()
        self.scheduler: Scheduler | None = None
        self.snapshot: Snapshot | None = None
        self._uvicorn: Any = None
        self._saved_environ: dict[str, str] | None = None
        self._spill_root: Path | None = None

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> LocalStack:
        """Start everything; on any failure, stop what had started (DynamoDB Local included)."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> LocalStack:
        started = time.perf_counter()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._saved_environ = dict(os.environ)
        from sluice.engine.workspace import remove_abandoned_folders

        remove_abandoned_folders()  # left by a stack killed with node runs open
        remove_abandoned_folders(moto_adapter.SPILL_PREFIX)  # and by one killed with objects spilled
        state = self.options.data_dir / "state"
        self.dynamodb_local = DynamoDBLocal(
            None if self.options.ephemeral else state / "dynamodb-local", host=self.options.host
        ).start()
        self.dynamodb_endpoint = self.dynamodb_local.endpoint
        self._server, port = moto_adapter.start_server(self.options.host)
        self.endpoint = f"http://{self.options.host}:{port}"
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
        os.environ["AWS_DEFAULT_REGION"] = REGION
        os.environ["AWS_ENDPOINT_URL"] = self.endpoint
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = self.dynamodb_endpoint
        os.environ["MOTO_PORT"] = str(port)
        os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
        os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
        aws.reset_clients()
        self._add_hook(self._serve_in_process)
        moto_adapter.enable_state_machine_execution(self.endpoint)
        moto_adapter.install(self._invoke_for_moto, self.dispatch)
        self._create_stack()
        if self.options.spill_s3:
            self._spill_buckets()
        self._create_tables()
        self._create_state_machines()
        self._apply_function_environment()
        aws.reset_clients()
        if not self.options.ephemeral:
            self.snapshot = Snapshot(
                state,
                tables=self.tables,
                buckets=self._physical_of("AWS::S3::Bucket"),
                clients=aws.client,
                read_object=moto_adapter.s3_object,
            )
            restored = self.snapshot.restore(self.created_tables)
            log.info("restored %s objects, %s runtime objects", restored["objects"], restored["runtime"])
            moto_adapter.observe_s3_writes(self.snapshot.record_s3_writes, self.snapshot.watches)
            self._add_hook(self._write_runtime_through)
        self._bootstrap_admin_key()
        self._start_queue_pollers()
        self.scheduler = Scheduler(
            self.endpoint,
            self.dispatch,
            tick_seconds=self.options.scheduler_tick,
            overrides=self.schedule_overrides,
            clients=aws.client,
        )
        self.scheduler.start()
        self._spawn(self._maintenance_loop, "sluice-maintenance")
        log.info("local stack up in %.1fs", time.perf_counter() - started)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
        if self.scheduler:
            self.scheduler.stop()
        for thread in self._threads:
            thread.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=False)
        try:
            if self.snapshot is not None:
                self.save()
        except Exception:
            log.exception("saving the local state at stop failed")
        finally:
            moto_adapter.observe_s3_writes(None)
            moto_adapter.unspill_buckets()
            if self._spill_root is not None:
                shutil.rmtree(self._spill_root, ignore_errors=True)
                self._spill_root = None
            for hook in self._hooks:
                aws.remove_client_hook(hook)
            self._hooks.clear()
            moto_adapter.uninstall()
            if self._server is not None:
                self._server.stop()
                self._server = None
            if self.dynamodb_local is not None:
                self.dynamodb_local.stop()
            if self._saved_environ is not None:  # leave the process as it was (tests start stacks in-process)
                os.environ.clear()
                os.environ.update(self._saved_environ)
            aws.reset_clients()

    def _spill_buckets(self) -> None:
        """The template buckets' objects live in files under one temporary folder of this process
        (moto_adapter.SpilledKeyStore); the folder goes at stop, or at the next start after a kill.
        What the user keeps survives in the snapshot's journal, not here."""
        self._spill_root = Path(tempfile.mkdtemp(prefix=f"{moto_adapter.SPILL_PREFIX}{os.getpid()}-"))
        for logical, physical in self._physical_of("AWS::S3::Bucket").items():
            moto_adapter.spill_bucket(physical, self._spill_root / logical)

    def _add_hook(self, hook: Callable[[str, Any], None]) -> None:
        aws.add_client_hook(hook)
        self._hooks.append(hook)

    def _serve_in_process(self, service: str, client: Any) -> None:
        # DynamoDB is DynamoDB Local's; the WebSocket management API is the local gateway's own.
        if service not in ("dynamodb", "apigatewaymanagementapi"):
            self._moto.attach(client)

    def save(self) -> None:
        """Compact the S3 journals and rewrite runtime.json (DynamoDB Local persists itself)."""
        if self.snapshot is not None:
            self.snapshot.save()

    # ---------------------------------------------------------------- serving
    def gateway(self) -> Gateway:
        authorizer = "AuthorizerFunction" if "AuthorizerFunction" in self.registry.functions else None
        from sluice.local.openapi import ServedDocument, docs_page

        return Gateway(
            http_routes(self.template),
            self.answer,
            authorizer,
            diagnostics=self.stats,
            openapi=ServedDocument(self.registry),
            docs=docs_page,
            websocket=websocket_routes(self.template),
        )

    def _point_live_events_here(self, port: int) -> None:
        """The live-events fan-out posts to connections through the management API: here, the
        gateway's own `/@connections/{id}` (template.yaml points it at the WebSocket stage)."""
        host = "127.0.0.1" if self.options.host in ("0.0.0.0", "::", "") else self.options.host
        os.environ["AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI"] = f"http://{host}:{port}"

    def stats(self, reset: bool = False) -> dict[str, Any]:
        """The stack's own figures (GET /_local/stats[?reset=1]): background work and its lag (since
        the last reset), memory, processes."""
        return {
            "background": self.background.summary(reset),
            "rss_bytes": _rss(os.getpid()),
            "dynamodb_local": {
                "pid": self.dynamodb_local.pid if self.dynamodb_local else None,
                "rss_bytes": _rss(self.dynamodb_local.pid)
                if self.dynamodb_local and self.dynamodb_local.pid
                else None,
            },
            "expired_items_deleted": self.expired_deleted,
            "moto_instances_forgotten": self.moto_instances_forgotten,
            "heap_trims": self.heap.summary(),
            "heap": native_heap.usage(),
            "s3_objects": moto_adapter.spilled_objects(),
        }

    def serve(self) -> None:
        """Serve the gateway in this thread until Ctrl-C (uvicorn handles the signal)."""
        import uvicorn

        config = uvicorn.Config(
            self.gateway(),
            host=self.options.host,
            port=self.options.port,
            log_level="warning",
            lifespan="off",
        )
        self._uvicorn = uvicorn.Server(config)
        self._point_live_events_here(self.options.port)
        self._uvicorn.run()

    def serve_in_thread(self) -> str:
        """Serve the gateway from a background thread; returns the base URL once it accepts requests."""
        import uvicorn

        config = uvicorn.Config(
            self.gateway(),
            host=self.options.host,
            port=self.options.port,
            log_level="warning",
            lifespan="off",
        )
        self._uvicorn = uvicorn.Server(config)
        self._uvicorn.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        thread = threading.Thread(target=self._uvicorn.run, name="sluice-gateway", daemon=True)
        thread.start()
        self._threads.append(thread)
        deadline = time.monotonic() + 30
        while not self._uvicorn.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the local gateway did not start")
            time.sleep(0.05)
        port = self._uvicorn.servers[0].sockets[0].getsockname()[1]
        self._point_live_events_here(port)
        return f"http://{self.options.host}:{port}"

    # ---------------------------------------------------------------- invoking functions
    def invoke(self, function: str, event: Any) -> Any:
        """Run a function's handler in this process (by logical id, physical name or ARN)."""
        return self.registry.invoke(function, event)

    def answer(self, function: str, event: Any) -> Any:
        """A gateway request's function. The background work it causes (the rule targets of the
        events it publishes) beyond its first START_AT_ONCE jobs starts once it has answered: on
        AWS those functions run elsewhere, while here they would share this interpreter with the
        request they came from (an OpenLineage batch's 500 anomaly checks took half of its time;
        performance.md 14d). A request with a few, such as a Watcher end, starts them at once, so
        its checks overlap its answer as before."""
        jobs = _RequestJobs()
        # A context variable, not a thread's: the handler publishes from the worker thread FastAPI
        # runs a sync route on, which AnyIO gives a copy of this context
        token = _HELD_JOBS.set(jobs)
        try:
            return self.registry.invoke(function, event)
        finally:
            _HELD_JOBS.reset(token)
            for job in jobs.held:
                self._submit(job)

    def _invoke_for_moto(self, function_name: str, event: Any) -> Any:
        return self.registry.invoke(function_name, event)

    def dispatch(self, target_arn: str, event: Any) -> None:
        """Deliver an event to a rule or schedule target asynchronously, as EventBridge does (past a
        gateway request's first START_AT_ONCE, held until the request has answered)."""
        if ":states:" in target_arn:
            job: tuple[Any, ...] = (self._start_execution, target_arn, event)
        else:
            job = (self._invoke_logged, target_arn, event, self.background.submitted())
        request = _HELD_JOBS.get()
        if request is not None and request.started >= START_AT_ONCE:
            request.held.append(job)
            return
        if request is not None:
            request.started += 1
        self._submit(job)

    def _submit(self, job: tuple[Any, ...]) -> None:
        try:
            self._pool.submit(*job)
        except RuntimeError:  # the stack is stopping: the pool takes no more work
            if job[0] == self._invoke_logged:
                self.background.done(self._function_of(job[1]), job[3], failed=True)
            log.warning("background work dropped: the stack is stopping")

    def _invoke_logged(self, target: str, event: Any, submitted: float) -> None:
        failed = False
        try:
            self.registry.invoke(target, event)
        except Exception:
            failed = True
            log.exception("asynchronous invocation of %s failed", target)
        finally:
            self.background.done(self._function_of(target), submitted, failed)

    def _function_of(self, target: str) -> str:
        """The logical id of a target's function (its name from the ARN when unknown)."""
        try:
            return self.registry.logical_id(target)
        except LookupError:
            return target.split(":function:")[-1]

    def _start_execution(self, arn: str, event: Any) -> None:
        try:
            # moto's interpreter names an unnamed execution "None"; AWS would make a unique name.
            aws.client("stepfunctions").start_execution(
                stateMachineArn=arn, name=str(uuid.uuid4()), input=json.dumps(event)
            )
        except Exception:
            log.exception("starting %s failed", arn)

    # ---------------------------------------------------------------- building the stack
    def _parameters(self) -> dict[str, str]:
        parameters = {"Stage": "local", "LogLevel": self.options.log_level, "EnableTracing": "false"}
        if os.environ.get("SLUICE_JWT_SECRET"):
            parameters["JwtSecret"] = os.environ["SLUICE_JWT_SECRET"]
        parameters.update(self.options.parameters)
        declared = self.template.get("Parameters") or {}
        unknown = sorted(set(parameters) - set(declared))
        if unknown:
            raise ValueError(f"template.yaml declares no parameter {', '.join(unknown)}")
        return parameters

    def _deployable_template(self) -> dict[str, Any]:
        """The template as `sam build` would hand it over: code in S3, definitions inline."""
        template = copy.deepcopy(self.template)
        s3 = aws.client("s3")
        s3.create_bucket(Bucket=ARTIFACTS_BUCKET)
        outputs = template.setdefault("Outputs", {})
        for name, resource in template["Resources"].items():
            props = resource.get("Properties") or {}
            kind = resource["Type"]
            if kind == "AWS::Serverless::Function":
                props["CodeUri"] = self._upload_code(s3, name, ROOT / props["CodeUri"])
            elif kind == "AWS::Serverless::LayerVersion":
                props["ContentUri"] = self._upload_code(s3, name, ROOT / props["ContentUri"])
            elif kind == "AWS::Serverless::StateMachine":
                definition_uri = props.pop("DefinitionUri")
                props["Definition"] = json.loads((ROOT / definition_uri).read_text())
                for key, value in (props.get("DefinitionSubstitutions") or {}).items():
                    outputs[f"SfnSub{name}X{key}"] = {"Value": value}
        return template

    @staticmethod
    def _upload_code(s3: Any, name: str, directory: Path) -> str:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(directory.rglob("*.py")):
                if "__pycache__" not in path.parts:
                    archive.write(path, path.relative_to(directory).as_posix())
        key = f"code/{name}.zip"
        s3.put_object(Bucket=ARTIFACTS_BUCKET, Key=key, Body=buffer.getvalue())
        return f"s3://{ARTIFACTS_BUCKET}/{key}"

    def _create_stack(self) -> None:
        from samtranslator.translator.transform import transform

        class _NoManagedPolicies:
            def load(self) -> dict[str, str]:
                return {}

        parameters = self._parameters()
        # EventBridge (and moto) start at one minute; tests may ask for seconds. moto gets a valid
        # expression and the local scheduler the real one.
        fast = {k: v for k, v in parameters.items() if SUB_MINUTE_RATE.fullmatch(v.strip())}
        parameters.update({k: "rate(1 minute)" for k in fast})
        translated = transform(self._deployable_template(), parameters, _NoManagedPolicies())
        # The tables live in DynamoDB Local under fixed names (its database outlives this process).
        self.tables = {
            name: f"{STACK_NAME}-{name}"
            for name, r in translated["Resources"].items()
            if r["Type"] == "AWS::DynamoDB::Table"
        }
        translated = _resolve_tables(translated, self.tables)
        # moto's CloudFormation has no API Gateway v2; the local gateway serves those routes.
        removed = {
            name
            for name, r in translated["Resources"].items()
            if r["Type"].startswith("AWS::ApiGatewayV2::")
            or r["Type"] in ("AWS::Lambda::Permission", "AWS::DynamoDB::Table")
        }
        translated["Resources"] = {
            name: r for name, r in translated["Resources"].items() if name not in removed
        }
        # What still names a removed API (the live-events WebSocket API in a function's variables
        # and policies) names a placeholder: the local gateway serves it (see _point_live_events_here).
        apis = {n for n in removed if n not in self.tables}
        translated["Resources"] = _without_references(translated["Resources"], apis)
        translated["Outputs"] = {
            name: o
            for name, o in (translated.get("Outputs") or {}).items()
            if "HttpApi" not in json.dumps(o) and not any(api in json.dumps(o) for api in apis)
        }
        cloudformation = aws.client("cloudformation")
        cloudformation.create_stack(
            StackName=STACK_NAME,
            TemplateBody=json.dumps(translated),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
        stack = cloudformation.describe_stacks(StackName=STACK_NAME)["Stacks"][0]
        if stack["StackStatus"] != "CREATE_COMPLETE":
            raise RuntimeError(
                f"local stack creation ended {stack['StackStatus']}: {stack.get('StackStatusReason')}"
            )
        self.outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        paginator = cloudformation.get_paginator("list_stack_resources")
        for page in paginator.paginate(StackName=STACK_NAME):
            for summary in page["StackResourceSummaries"]:
                self.resources[summary["LogicalResourceId"]] = summary["PhysicalResourceId"]
        self.resources.update(self.tables)
        for logical in self.registry.functions:
            self.registry.physical_to_logical[self.resources[logical]] = logical
        for owner, resource in self.template["Resources"].items():
            for event_name, event in ((resource.get("Properties") or {}).get("Events") or {}).items():
                schedule = (event.get("Properties") or {}).get("Schedule")
                if (
                    event.get("Type") == "Schedule"
                    and isinstance(schedule, dict)
                    and schedule.get("Ref") in fast
                ):
                    rule = self.resources.get(f"{owner}{event_name}")
                    if rule:
                        self.schedule_overrides[rule] = fast[schedule["Ref"]]

    def _create_tables(self) -> None:
        """Each table of the template in DynamoDB Local, as CloudFormation would make it: keys, GSIs
        and TTL. A table its database already holds is kept (that is the saved state)."""
        dynamodb = aws.client("dynamodb")
        existing = set(dynamodb.list_tables().get("TableNames", []))
        for logical, name in self.tables.items():
            props = self.template["Resources"][logical]["Properties"]
            if name not in existing:
                params = table_definition(self.template, logical)
                dynamodb.create_table(TableName=name, **params)
                dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.2})
                self.created_tables.add(name)
            else:
                added = add_missing_indexes(dynamodb, name, props)
                if "Status" in added:
                    index_saved_alerts(dynamodb, name)
            ttl = props.get("TimeToLiveSpecification") or {}
            if ttl.get("Enabled") in (True, "true", "True"):
                current = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
                if current.get("TimeToLiveStatus") != "ENABLED":
                    dynamodb.update_time_to_live(
                        TableName=name,
                        TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
                    )

    def delete_expired_items(self, now: float | None = None) -> int:
        """What DynamoDB's TTL does and DynamoDB Local does not: delete items whose TTL attribute
        (epoch seconds) has passed. Each delete is conditional on the item still being expired."""
        from botocore.exceptions import ClientError

        dynamodb = aws.client("dynamodb")
        moment = str(int(now if now is not None else time.time()))
        deleted = 0
        for logical, name in self.tables.items():
            props = self.template["Resources"][logical]["Properties"]
            ttl = props.get("TimeToLiveSpecification") or {}
            if ttl.get("Enabled") not in (True, "true", "True"):
                continue
            keys = [k["AttributeName"] for k in props["KeySchema"]]
            names = {"#ttl": ttl["AttributeName"], **{f"#k{i}": k for i, k in enumerate(keys)}}
            expired = {":now": {"N": moment}}
            pages = dynamodb.get_paginator("scan").paginate(  # a background sweep, as DynamoDB's own
                TableName=name,
                FilterExpression="#ttl < :now",
                ProjectionExpression=", ".join(f"#k{i}" for i in range(len(keys))),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=expired,
            )
            for page in pages:
                for item in page.get("Items", []):
                    try:
                        dynamodb.delete_item(
                            TableName=name,
                            Key=item,
                            ConditionExpression="#ttl < :now",
                            ExpressionAttributeNames={"#ttl": ttl["AttributeName"]},
                            ExpressionAttributeValues=expired,
                        )
                        deleted += 1
                    except ClientError as exc:
                        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                            raise
        self.expired_deleted += deleted
        return deleted

    def _maintenance_loop(self) -> None:
        """Every 30 s: forget finished state machine executions and moto's tracked instances; on its
        own interval: TTL; then give the C heap's free pages back to the system (what was freed
        stays mapped otherwise)."""
        swept = time.monotonic()
        while not self._stop.wait(30.0):
            interval = self.options.ttl_sweep_interval
            sweep = interval > 0 and time.monotonic() - swept >= interval
            if sweep:
                swept = time.monotonic()
            self.maintain(sweep_expired=sweep)

    def maintain(self, sweep_expired: bool = False) -> None:
        """One maintenance pass (the maintenance thread's, every 30 s)."""
        try:
            moto_adapter.prune_finished_executions()
        except Exception:
            log.exception("pruning finished executions failed; will retry")
        try:
            self.moto_instances_forgotten += moto_adapter.forget_tracked_instances()
        except Exception:
            log.exception("emptying moto's instance trackers failed; will retry")
        if sweep_expired:
            try:
                self.delete_expired_items()
            except Exception:
                log.exception("deleting expired items failed; will retry")
        if self.options.trim_native_heap:
            self.heap.trim()

    def _create_state_machines(self) -> None:
        """moto's CloudFormation keeps state machines where its interpreter cannot see them and
        ignores DefinitionSubstitutions; re-create each, resolved, under the same name and ARN."""
        sfn = aws.client("stepfunctions")
        for name, resource in resources_of_type(self.template, "AWS::Serverless::StateMachine").items():
            props = resource["Properties"]
            definition = (ROOT / props["DefinitionUri"]).read_text()
            for key in props.get("DefinitionSubstitutions") or {}:
                definition = definition.replace("${" + key + "}", self.outputs[f"SfnSub{name}X{key}"])
            arn = self.resources[name]
            sfn.create_state_machine(
                name=arn.split(":stateMachine:")[-1],
                definition=definition,
                roleArn=f"arn:aws:iam::{ACCOUNT}:role/sluice-local-state-machines",
                type=props.get("Type", "STANDARD"),
            )
            self.state_machines[name] = arn

    def _apply_function_environment(self) -> None:
        """One process hosts every function, so their variables must agree; set them here."""
        lambda_client = aws.client("lambda")
        merged: dict[str, tuple[str, str]] = {}
        for logical in self.registry.functions:
            config = lambda_client.get_function_configuration(FunctionName=self.resources[logical])
            for key, value in ((config.get("Environment") or {}).get("Variables") or {}).items():
                if key in merged and merged[key][1] != value:
                    raise RuntimeError(
                        f"{logical} sets {key}={value!r} but {merged[key][0]} sets {merged[key][1]!r}; "
                        "functions sharing one local process must agree (move it to Globals)."
                    )
                merged[key] = (logical, value)
        for key, (_, value) in merged.items():
            os.environ[key] = value

    def _physical_of(self, resource_type: str) -> dict[str, str]:
        raw = self.template["Resources"]
        return {
            k: self.resources[k] for k, r in raw.items() if r["Type"] == resource_type and k in self.resources
        }

    # ---------------------------------------------------------------- background work
    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _write_runtime_through(self, service: str, client: Any) -> None:
        """Secrets and schedules are rewritten to runtime.json after each change, before the caller
        sees the answer (they change rarely: connectors, pipeline schedules)."""
        if service not in RUNTIME_SERVICES:
            return

        def save(model: Any, **_: Any) -> None:
            if model.name.startswith(WRITE_PREFIXES) and self.snapshot is not None:
                try:
                    self.snapshot.save_runtime()
                except Exception:
                    log.exception("saving secrets and schedules failed")

        client.meta.events.register(f"after-call.{service}", save)

    def _start_queue_pollers(self) -> None:
        """Lambda's SQS event sources, done as Lambda does them: long-poll, invoke, delete."""
        lambda_client = aws.client("lambda")
        for mapping in lambda_client.list_event_source_mappings().get("EventSourceMappings", []):
            # moto would invoke synchronously inside SendMessage; the pollers below replace it.
            lambda_client.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
        for logical, resource in self.registry.functions.items():
            for event in (resource["Properties"].get("Events") or {}).values():
                if event.get("Type") != "SQS":
                    continue
                props = event["Properties"]
                queue_logical = props["Queue"]["Fn::GetAtt"][0]
                poller = _QueuePoller(
                    queue_url=self.resources[queue_logical],
                    queue_arn=f"arn:aws:sqs:{REGION}:{ACCOUNT}:{self.resources[queue_logical].rsplit('/', 1)[-1]}",
                    function=logical,
                    batch_size=int(props.get("BatchSize", 10)),
                    reports_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
                    invoke=self.invoke,
                    stop=self._stop,
                )
                self._spawn(poller.run, f"sluice-sqs-{logical}")

    def _bootstrap_admin_key(self) -> None:
        from sluice.domain.access import BOOTSTRAP_KEY_ID, bootstrap_admin_key
        from sluice.store.api_keys import ApiKeyRepository
        from sluice.store.table import Table

        repository = ApiKeyRepository(Table(self.resources["Table"]))
        supplied = self.options.admin_key or os.environ.get("SLUICE_ADMIN_KEY")
        if supplied:
            bootstrap_admin_key("default", supplied, repository)
        elif not repository.exists("default", BOOTSTRAP_KEY_ID):
            from sluice.auth.tokens import generate_api_key

            self.created_admin_key = generate_api_key()
            bootstrap_admin_key("default", self.created_admin_key, repository)


class HeapTrims:
    """The maintenance thread's `malloc_trim` passes: how many, and the RSS each gave back."""

    def __init__(self) -> None:
        self.count = 0
        self.returned_bytes = 0
        self.last_returned_bytes = 0
        self.seconds = 0.0

    def trim(self) -> None:
        before = _rss(os.getpid()) or 0
        started = time.perf_counter()
        native_heap.trim()
        self.seconds += time.perf_counter() - started
        returned = max(0, before - (_rss(os.getpid()) or 0))
        self.count += 1
        self.last_returned_bytes = returned
        self.returned_bytes += returned

    def summary(self) -> dict[str, Any]:
        return {
            "available": native_heap.available(),
            "count": self.count,
            "returned_bytes": self.returned_bytes,
            "last_returned_bytes": self.last_returned_bytes,
            "cpu_ms_total": round(self.seconds * 1000, 1),
        }


class BackgroundWork:
    """Asynchronous invocations (EventBridge targets, schedules): how many wait, and how long each
    took from its event to its end (the last `keep` per function, for p50/p99)."""

    def __init__(self, keep: int = 5000):
        self._lock = threading.Lock()
        self._keep = keep
        self.pending = 0
        self.finished = 0
        self.failed = 0
        self._lags: dict[str, Any] = {}

    def submitted(self) -> float:
        with self._lock:
            self.pending += 1
        return time.monotonic()

    def done(self, function: str, submitted: float, failed: bool) -> None:
        from collections import deque

        lag = time.monotonic() - submitted
        with self._lock:
            self.pending -= 1
            self.finished += 1
            self.failed += int(failed)
            self._lags.setdefault(function, deque(maxlen=self._keep)).append(lag)

    def summary(self, reset: bool = False) -> dict[str, Any]:
        with self._lock:
            lags = {name: sorted(values) for name, values in self._lags.items()}
            counts = {"pending": self.pending, "finished": self.finished, "failed": self.failed}
            if reset:
                self._lags.clear()

        def at(values: list[float], q: float) -> float:
            return round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 1)

        return {
            **counts,
            "lag_ms": {
                name: {"n": len(v), "p50": at(v, 0.5), "p99": at(v, 0.99), "max": round(v[-1] * 1000, 1)}
                for name, v in lags.items()
                if v
            },
        }


def _rss(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class _QueuePoller:
    def __init__(
        self,
        queue_url: str,
        queue_arn: str,
        function: str,
        batch_size: int,
        reports_failures: bool,
        invoke: Callable[[str, Any], Any],
        stop: threading.Event,
    ):
        self.queue_url, self.queue_arn, self.function = queue_url, queue_arn, function
        self.batch_size, self.reports_failures = max(1, min(batch_size, 10)), reports_failures
        self.invoke, self.stop = invoke, stop
        self.sqs = aws.client("sqs")

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                received = self.sqs.receive_message(
                    QueueUrl=self.queue_url,
                    MaxNumberOfMessages=self.batch_size,
                    WaitTimeSeconds=1,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
            except Exception:
                if self.stop.wait(1):
                    return
                continue
            if received:
                self._deliver(received)

    def _deliver(self, messages: list[dict[str, Any]]) -> None:
        records = [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": m.get("MessageAttributes", {}),
                "md5OfBody": m.get("MD5OfBody"),
                "eventSource": "aws:sqs",
                "eventSourceARN": self.queue_arn,
                "awsRegion": REGION,
            }
            for m in messages
        ]
        try:
            result = self.invoke(self.function, {"Records": records})
        except Exception:
            log.exception(
                "%s failed on a batch from its queue; messages return after their visibility timeout",
                self.function,
            )
            return
        failed: set[str] = set()
        if self.reports_failures and isinstance(result, dict):
            failed = {f.get("itemIdentifier") for f in result.get("batchItemFailures") or []}
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(done[start : start + 10])
                ],
            )


def _resolve_tables(template: dict[str, Any], tables: dict[str, str]) -> dict[str, Any]:
    """References to the tables (Ref, GetAtt, ${} in Sub) replaced by their fixed names and ARNs."""
    arns = {name: f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}" for name, table in tables.items()}

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if len(node) == 1 and node.get("Ref") in tables:
                return tables[node["Ref"]]
            getatt = node.get("Fn::GetAtt") if len(node) == 1 else None
            if isinstance(getatt, list) and getatt and getatt[0] in tables:
                if getatt[1] == "Arn":
                    return arns[getatt[0]]
                if getatt[1] == "StreamArn":
                    return f"{arns[getatt[0]]}/stream/local"
            if len(node) == 1 and "Fn::Sub" in node:
                sub = node["Fn::Sub"]
                text, variables = (sub, {}) if isinstance(sub, str) else (sub[0], sub[1])
                for name in tables:
                    if name not in variables:
                        text = text.replace("${" + name + ".Arn}", arns[name]).replace(
                            "${" + name + "}", tables[name]
                        )
                return {"Fn::Sub": text if isinstance(sub, str) else [text, walk(variables)]}
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(value) for value in node]
        return node

    return walk(template)


def add_missing_indexes(dynamodb: Any, name: str, props: dict[str, Any], timeout: float = 60) -> list[str]:
    """A saved table made before the template gained a GSI gets it, as a stack update would (one
    index per UpdateTable, each waited for). Items written before carry no keys for it."""
    described = dynamodb.describe_table(TableName=name)["Table"]
    have = {i["IndexName"] for i in described.get("GlobalSecondaryIndexes") or []}
    definitions = {a["AttributeName"]: a for a in props.get("AttributeDefinitions") or []}
    added = []
    for index in props.get("GlobalSecondaryIndexes") or []:
        if index["IndexName"] in have:
            continue
        dynamodb.update_table(
            TableName=name,
            AttributeDefinitions=[definitions[k["AttributeName"]] for k in index["KeySchema"]],
            GlobalSecondaryIndexUpdates=[
                {
                    "Create": {
                        "IndexName": index["IndexName"],
                        "KeySchema": index["KeySchema"],
                        "Projection": index["Projection"],
                    }
                }
            ],
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            current = dynamodb.describe_table(TableName=name)["Table"].get("GlobalSecondaryIndexes") or []
            if any(
                i["IndexName"] == index["IndexName"] and i.get("IndexStatus") == "ACTIVE" for i in current
            ):
                break
            time.sleep(0.2)
        added.append(index["IndexName"])
    return added


def index_saved_alerts(dynamodb: Any, name: str) -> int:
    """Alerts saved before the Status index existed get its keys, so the inbox lists them: once, when
    the index is added to a saved table (a start-up migration, not a request path, so a Scan)."""
    from sluice.store import keys

    indexed = 0
    for page in dynamodb.get_paginator("scan").paginate(
        TableName=name,
        FilterExpression="kind = :alert AND attribute_not_exists(StatusPK)",
        ExpressionAttributeValues={":alert": {"S": "alert"}},
    ):
        for item in page["Items"]:
            status = item.get("status", {}).get("S", "active")
            try:
                dynamodb.update_item(
                    TableName=name,
                    Key={"PK": item["PK"], "SK": item["SK"]},
                    UpdateExpression="SET StatusPK = :pk, StatusSK = :sk",
                    ConditionExpression="attribute_exists(PK) AND attribute_not_exists(StatusPK)",
                    ExpressionAttributeValues={
                        ":pk": {"S": keys.alerts_in_status(item["project"]["S"], status)},
                        ":sk": item["SK"],
                    },
                )
                indexed += 1
            except dynamodb.exceptions.ConditionalCheckFailedException:
                pass  # deleted or indexed meanwhile
    if indexed:
        log.info("%d saved alerts indexed by state for the inbox", indexed)
    return indexed


def _without_references(value: Any, names: set[str], placeholder: str = "local") -> Any:
    """`value` with every Ref, GetAtt and ${...} of one of `names` replaced by `placeholder`."""
    if not names:
        return value
    if isinstance(value, dict):
        if set(value) == {"Ref"} and value["Ref"] in names:
            return placeholder
        if set(value) == {"Fn::GetAtt"}:
            target = value["Fn::GetAtt"]
            first = target[0] if isinstance(target, list) else str(target).split(".")[0]
            if first in names:
                return placeholder
        if set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
            text = re.sub(
                r"\$\{(\w+)(\.\w+)?\}",
                lambda m: placeholder if m.group(1) in names else m.group(0),
                value["Fn::Sub"],
            )
            return {"Fn::Sub": text}
        return {k: _without_references(v, names, placeholder) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_references(v, names, placeholder) for v in value]
    return value
