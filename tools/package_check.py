"""Does what `sam build` built run on Lambda's runtime? (`make package-check`, issue 16)

For the built template (.aws-sam/build/template.yaml) this checks:

1. contents: the layer holds python/sluice (no sluice/local, no __pycache__ under sluice, no
   tests) and its dependencies at the versions the dev venv runs; each function's folder holds only
   its handler modules; the handler's module file exists;
2. sizes: each function's folder plus its layers, unzipped, under Lambda's 250 MB;
3. running: every function, in a fresh interpreter of the runtime's Python with only its built
   folder and the built layers on sys.path (tools/lambda_probe.py), with the template's environment
   resolved, tracing off and then on, imports its handler and is invoked with an event of its
   trigger type against moto's server (run from the dev venv in another process). The events chain
   where a trigger needs one: an API key made by PlatformFunction authorizes the authorizer's
   event; a pipeline made by PipelinesFunction is triggered by RunsFunction, whose queued message
   is the dispatcher's SQS record; the run's tasks are driven level by level as the Run state
   machine would, so ExecuteNodeFunction runs DuckDB for real; RunsFunction reads the run back.

A failure names the function, the handler, the phase (import or invoke) and, for a missing
module, the module. Exit status 1 on any failure.

    .venv/bin/python -m tools.package_check [--build-dir .aws-sam/build] [--runtime-python PY]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import re
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROBE = Path(__file__).resolve().with_name("lambda_probe.py")
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024  # function code + all its layers, unzipped
REGION, ACCOUNT = "us-east-1", "123456789012"
PROJECT = "pkgcheck"
TRACE_HEADER = "Root=1-6700f00d-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1"
NO_VALUE = object()


# ---------------------------------------------------------------- the built template
def load_built_template(build_dir: Path) -> dict[str, Any]:
    from sluice.local.template import load_template

    path = build_dir / "template.yaml"
    if not path.is_file():
        raise SystemExit(f"package-check: no {path}; run `make build` (sam build) first")
    return load_template(path)


def functions_of(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template["Resources"].items() if r.get("Type") == "AWS::Serverless::Function"}


def global_function(template: dict[str, Any]) -> dict[str, Any]:
    return (template.get("Globals") or {}).get("Function") or {}


def function_setting(template: dict[str, Any], logical: str, key: str, default: Any = None) -> Any:
    props = template["Resources"][logical].get("Properties") or {}
    return props.get(key, global_function(template).get(key, default))


def layer_ids(template: dict[str, Any], logical: str) -> list[str]:
    """Logical ids of a function's layers (SAM puts Globals' layers before the function's own)."""
    props = template["Resources"][logical].get("Properties") or {}
    listed = [*(global_function(template).get("Layers") or []), *(props.get("Layers") or [])]
    return [entry["Ref"] for entry in listed if isinstance(entry, dict) and "Ref" in entry]


# ---------------------------------------------------------------- intrinsic functions
class Resolver:
    """Resolves the template's intrinsics as CloudFormation would for this check's resources."""

    def __init__(self, template: dict[str, Any], parameters: dict[str, str], physical: dict[str, Any]):
        self.template = template
        declared = template.get("Parameters") or {}
        self.parameters = {k: str(v.get("Default", "")) for k, v in declared.items()}
        self.parameters.update(parameters)
        self.physical = physical  # logical id -> {"Ref": ..., "Arn": ..., "Name": ...}

    def condition(self, name: str) -> bool:
        return bool(self.value(self.template["Conditions"][name]))

    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.value(item) for item in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.attribute(logical, attribute)
            if key == "Fn::Sub":
                text, names = (arg, {}) if isinstance(arg, str) else (arg[0], self.value(arg[1]))
                return re.sub(r"\$\{([^}]+)\}", lambda m: str(self._sub(m.group(1), names)), text)
            if key == "Fn::If":
                return self.value(arg[1] if self.condition(arg[0]) else arg[2])
            if key == "Fn::Equals":
                left, right = self.value(arg)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self.value(arg[0])
            if key == "Fn::And":
                return all(self.value(arg))
            if key == "Fn::Or":
                return any(self.value(arg))
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::Join":
                return str(arg[0]).join(str(v) for v in self.value(arg[1]))
        return {k: v for k, v in ((k, self.value(v)) for k, v in node.items()) if v is not NO_VALUE}

    def _sub(self, name: str, names: dict[str, Any]) -> Any:
        if name in names:
            return names[name]
        if "." in name and not name.startswith("AWS::"):
            return self.attribute(*name.split(".", 1))
        return self.ref(name)

    def ref(self, name: str) -> Any:
        pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": "sluice-pkgcheck",
            "AWS::NoValue": NO_VALUE,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.physical:
            return self.physical[name]["Ref"]
        raise KeyError(f"template.yaml refers to {name}, which is neither a parameter nor a resource")

    def attribute(self, logical: str, attribute: str) -> Any:
        try:
            return self.physical[logical][attribute]
        except KeyError:
            raise KeyError(f"the package check cannot resolve !GetAtt {logical}.{attribute}") from None


def physical_ids(template: dict[str, Any], parameters: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Names and ARNs the check's resources get, unique to the stage (queues' URLs are filled in
    when they are created)."""
    found: dict[str, dict[str, Any]] = {}
    naming = Resolver(template, parameters, found)
    arn = f"arn:aws:{{service}}:{REGION}:{ACCOUNT}:{{resource}}"
    for logical, resource in template["Resources"].items():
        kind, props = resource["Type"], resource.get("Properties") or {}
        default = f"{parameters['Stage']}-{logical.lower()}"
        if kind == "AWS::Serverless::Function":
            found[logical] = {
                "Ref": logical,
                "Arn": arn.format(service="lambda", resource=f"function:{logical}"),
            }
        elif kind == "AWS::DynamoDB::Table":
            found[logical] = {
                "Ref": default,
                "Arn": arn.format(service="dynamodb", resource=f"table/{default}"),
            }
        elif kind == "AWS::S3::Bucket":
            found[logical] = {"Ref": default, "Arn": f"arn:aws:s3:::{default}"}
        elif kind == "AWS::SQS::Queue":
            name = naming.value(props.get("QueueName")) or (
                default + (".fifo" if props.get("FifoQueue") else "")
            )
            found[logical] = {"QueueName": name, "Arn": arn.format(service="sqs", resource=name), "Ref": None}
        elif kind == "AWS::Events::EventBus":
            name = naming.value(props.get("Name")) or default
            found[logical] = {
                "Ref": name,
                "Name": name,
                "Arn": arn.format(service="events", resource=f"event-bus/{name}"),
            }
        elif kind == "AWS::Serverless::StateMachine":
            state_machine = arn.format(service="states", resource=f"stateMachine:{default}")
            found[logical] = {"Ref": state_machine, "Arn": state_machine, "Name": default}
        elif kind == "AWS::Serverless::LayerVersion":
            found[logical] = {"Ref": arn.format(service="lambda", resource=f"layer:{logical}:1")}
        else:
            found[logical] = {
                "Ref": default,
                "Arn": f"arn:aws:iam::{ACCOUNT}:role/{default}",
                "Name": default,
            }
    return found


# ---------------------------------------------------------------- contents and sizes
@dataclass
class Problems:
    found: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.found.append(text)


def tree_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def check_layer(name: str, folder: Path, problems: Problems) -> None:
    python = folder / "python"
    if (python / "python").exists():
        problems.add(
            f"{name}: the layer nests python/python/ (ContentUri points at the folder above python/)"
        )
    if not (python / "sluice" / "__init__.py").is_file():
        problems.add(
            f"{name}: the layer has no python/sluice package (Lambda puts only /opt/python on sys.path)"
        )
        return
    if (python / "sluice" / "local").exists():
        problems.add(f"{name}: the layer holds sluice/local (the local stack; it needs moto)")
    if next((python / "sluice").rglob("__pycache__"), None) is not None:
        problems.add(f"{name}: the layer holds __pycache__ under python/sluice (a developer's bytecode)")
    if (python / "tests").exists() or (python / "sluice" / "tests").exists():
        problems.add(f"{name}: the layer holds tests")


def check_pins(name: str, folder: Path, problems: Problems, cpython: str = "cp312") -> None:
    """Every distribution in the layer at the version the dev venv (and so the test suite) runs, as
    a wheel Lambda's runtime (CPython `cpython`, x86_64, AL2023's glibc) can load."""
    for dist in importlib.metadata.distributions(path=[str(folder / "python")]):
        wanted = dist.metadata["Name"]
        try:
            local = importlib.metadata.version(wanted)
        except importlib.metadata.PackageNotFoundError:
            problems.add(f"{name}: the layer has {wanted} {dist.version}, which the dev venv does not have")
            continue
        if local != dist.version:
            problems.add(
                f"{name}: the layer has {wanted} {dist.version}, the dev venv {local} "
                "(layers/core/requirements.txt or constraints.txt and pyproject.toml disagree)"
            )
        tags = [
            line[5:].strip()
            for line in (dist.read_text("WHEEL") or "").splitlines()
            if line.startswith("Tag: ")
        ]
        if tags and not any(wheel_runs_on_lambda(tag, cpython) for tag in tags):
            problems.add(
                f"{name}: {wanted} {dist.version} is a wheel for {', '.join(tags)}, not Lambda's "
                f"CPython {cpython[2]}.{cpython[3:]}, {LAMBDA_PLATFORM}"
            )


LAMBDA_PLATFORM = "x86_64, glibc 2.34 (Amazon Linux 2023)"
LAMBDA_GLIBC = (2, 34)
LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


def wheel_runs_on_lambda(tag: str, cpython: str = "cp312") -> bool:
    """Whether a wheel tag (python-abi-platform) loads on the x86_64 runtime of CPython `cpython`. This
    machine's glibc may be newer than Amazon Linux 2023's, so importing here does not prove it."""
    python, abi, platform = tag.split("-")
    stable_abi = abi == "abi3" and re.fullmatch(r"cp3\d+", python) and int(python[3:]) <= int(cpython[3:])
    if python not in ("py3", "py2.py3", cpython) and not stable_abi:
        return False
    if platform == "any":
        return abi in ("none", "abi3", cpython)
    if not platform.endswith("x86_64"):
        return False
    legacy = LEGACY_MANYLINUX.get(platform.removesuffix("_x86_64"))
    if legacy:
        return legacy <= LAMBDA_GLIBC
    found = re.fullmatch(r"manylinux_(\d+)_(\d+)_x86_64", platform)
    return bool(found) and (int(found.group(1)), int(found.group(2))) <= LAMBDA_GLIBC


def check_function_folder(name: str, folder: Path, handler: str, problems: Problems) -> None:
    module = handler.rpartition(".")[0]
    if not folder.is_dir():
        problems.add(f"{name}: no built folder {folder}")
        return
    if not (folder / f"{module.replace('.', '/')}.py").is_file():
        problems.add(f"{name}: handler {handler}: module '{module}' is not in its package ({folder.name}/)")
    extra = sorted(
        str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.suffix != ".py"
    ) + sorted(str(p.relative_to(folder)) for p in folder.iterdir() if p.is_dir())
    if extra:
        problems.add(f"{name}: its package holds more than handler modules: {', '.join(extra[:5])}")


# ---------------------------------------------------------------- moto
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """moto's server from the dev venv, in its own process, on a free port."""
    port = free_port()
    command = [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("package-check: moto_server did not start")
            time.sleep(0.1)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def aws_client(service: str, endpoint: str) -> Any:
    import boto3

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="pkgcheck",
        aws_secret_access_key="pkgcheck",
    )


def stage_parameters(tracing: bool) -> dict[str, str]:
    return {"Stage": f"{PROJECT}-{'on' if tracing else 'off'}", "EnableTracing": str(tracing).lower()}


def provision(
    template: dict[str, Any], physical: dict[str, dict[str, Any]], endpoint: str, parameters: dict[str, str]
) -> None:
    """The template's tables, buckets, queues, buses and state machines, on moto."""
    from sluice.local.template import table_definition

    resolver = Resolver(template, parameters, physical)
    for logical, resource in template["Resources"].items():
        kind, props = resource["Type"], resource.get("Properties") or {}
        ids = physical[logical]
        if kind == "AWS::DynamoDB::Table":
            aws_client("dynamodb", endpoint).create_table(
                TableName=ids["Ref"], **table_definition(template, logical)
            )
        elif kind == "AWS::S3::Bucket":
            aws_client("s3", endpoint).create_bucket(Bucket=ids["Ref"])
        elif kind == "AWS::SQS::Queue":
            attributes = {"FifoQueue": "true"} if props.get("FifoQueue") else {}
            url = aws_client("sqs", endpoint).create_queue(QueueName=ids["QueueName"], Attributes=attributes)
            ids["Ref"] = url["QueueUrl"]
        elif kind == "AWS::Events::EventBus":
            aws_client("events", endpoint).create_event_bus(Name=ids["Name"])
        elif kind == "AWS::Serverless::StateMachine":
            definition = (ROOT / str(props["DefinitionUri"]).lstrip("./")).read_text()
            for key, value in (props.get("DefinitionSubstitutions") or {}).items():
                definition = definition.replace("${" + key + "}", str(resolver.value(value)))
            aws_client("stepfunctions", endpoint).create_state_machine(
                name=ids["Name"], definition=definition, roleArn=f"arn:aws:iam::{ACCOUNT}:role/pkgcheck"
            )


# ---------------------------------------------------------------- running one function
@dataclass
class Built:
    template: dict[str, Any]
    build_dir: Path
    runtime_python: str
    endpoint: str
    physical: dict[str, dict[str, Any]]
    workdir: Path

    def function_dir(self, logical: str) -> Path:
        return self.build_dir / str(self.template["Resources"][logical]["Properties"]["CodeUri"])

    def layer_dirs(self, logical: str) -> list[Path]:
        return [
            self.build_dir / str(self.template["Resources"][layer]["Properties"]["ContentUri"])
            for layer in layer_ids(self.template, logical)
        ]

    def environment(self, logical: str, tracing: bool) -> dict[str, str]:
        """The template's variables resolved, and those Lambda's runtime sets; nothing inherited."""
        resolver = Resolver(self.template, stage_parameters(tracing), self.physical)
        props = self.template["Resources"][logical].get("Properties") or {}
        variables = {
            **((global_function(self.template).get("Environment") or {}).get("Variables") or {}),
            **((props.get("Environment") or {}).get("Variables") or {}),
        }
        env = {key: str(resolver.value(value)) for key, value in variables.items()}
        task = self.function_dir(logical)
        env.update(
            PATH="/usr/local/bin:/usr/bin:/bin",
            LANG="en_US.UTF-8",
            TZ=":UTC",
            TMPDIR=str(self.workdir / "tmp"),
            PYTHONDONTWRITEBYTECODE="1",  # /var/task and /opt are read-only on Lambda
            LAMBDA_TASK_ROOT=str(task),
            LAMBDA_RUNTIME_DIR="/var/runtime",
            _HANDLER=str(props["Handler"]),
            AWS_EXECUTION_ENV=f"AWS_Lambda_{function_setting(self.template, logical, 'Runtime')}",
            AWS_LAMBDA_FUNCTION_NAME=logical,
            AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
            AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(function_setting(self.template, logical, "MemorySize", 128)),
            AWS_LAMBDA_LOG_GROUP_NAME=f"/aws/lambda/{logical}",
            AWS_LAMBDA_LOG_STREAM_NAME="package-check",
            AWS_REGION=REGION,
            AWS_DEFAULT_REGION=REGION,
            AWS_ACCESS_KEY_ID="pkgcheck",
            AWS_SECRET_ACCESS_KEY="pkgcheck",
            AWS_SESSION_TOKEN="pkgcheck",
            AWS_ENDPOINT_URL=self.endpoint,
            AWS_XRAY_CONTEXT_MISSING="LOG_ERROR",
            AWS_XRAY_DAEMON_ADDRESS="127.0.0.1:2000",
        )
        if tracing:
            env["_X_AMZN_TRACE_ID"] = TRACE_HEADER
        return env

    def run(self, logical: str, events: list[Any], tracing: bool) -> dict[str, Any]:
        props = self.template["Resources"][logical]["Properties"]
        out = self.workdir / f"{logical}-{uuid.uuid4().hex[:8]}.json"
        spec = {
            "function": logical,
            "handler": props["Handler"],
            "task_dir": str(self.function_dir(logical)),
            "layer_dirs": [str(d) for d in self.layer_dirs(logical)],
            "events": events,
            "memory_mb": int(function_setting(self.template, logical, "MemorySize", 128)),
            "timeout_s": int(function_setting(self.template, logical, "Timeout", 3)),
            "out": str(out),
        }
        spec_path = out.with_suffix(".spec.json")
        spec_path.write_text(json.dumps(spec))
        (self.workdir / "tmp").mkdir(exist_ok=True)
        try:
            done = subprocess.run(
                [self.runtime_python, "-I", "-S", "-B", str(PROBE), str(spec_path)],
                cwd=spec["task_dir"] if Path(spec["task_dir"]).is_dir() else self.workdir,
                env=self.environment(logical, tracing),
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return {"ok": False, "phase": "invoke", "error_type": "Timeout", "error": "no answer in 300 s"}
        if not out.exists():
            return {
                "ok": False,
                "phase": "start",
                "error_type": "Crashed",
                "error": f"the interpreter exited {done.returncode}: {done.stderr.strip()[-1500:]}",
            }
        outcome = json.loads(out.read_text())
        outcome["logs"] = (done.stdout + done.stderr)[-20000:]
        return outcome


def describe_failure(logical: str, handler: str, tracing: bool, outcome: dict[str, Any]) -> str:
    where = f"{logical} (handler {handler}, tracing {'on' if tracing else 'off'})"
    if outcome.get("missing_module"):
        return (
            f"{where}: {outcome['phase']} failed: module '{outcome['missing_module']}' is missing "
            f"({outcome['error_type']}: {outcome['error']})"
        )
    return f"{where}: {outcome.get('phase')} failed: {outcome.get('error_type')}: {outcome.get('error')}"


# ---------------------------------------------------------------- events of each trigger type
def http_event(
    method: str,
    path: str,
    route: str,
    body: Any = None,
    role: str | None = "admin",
    project: str = PROJECT,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event, after the authorizer when `role` is given."""
    raw_path, _, query = path.partition("?")
    route_segments = route.split(" ", 1)[-1].strip("/").split("/")
    params = {
        segment.strip("{}+"): value
        for segment, value in zip(route_segments, raw_path.strip("/").split("/"), strict=False)
        if segment.startswith("{")
    }
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route,
        "rawPath": raw_path,
        "rawQueryString": query,
        "headers": {"content-type": "application/json", "host": "pkgcheck.local", **(headers or {})},
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "pkgcheck",
            "domainName": "pkgcheck.local",
            "domainPrefix": "pkgcheck",
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "package-check",
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
            "timeEpoch": int(time.time() * 1000),
        },
        "isBase64Encoded": False,
    }
    if params:
        event["pathParameters"] = params
    if query:
        event["queryStringParameters"] = dict(pair.partition("=")[::2] for pair in query.split("&"))
    if body is not None:
        event["body"] = json.dumps(body)
    if role:
        event["requestContext"]["authorizer"] = {
            "lambda": {"project": project, "role": role, "sub": "pkgcheck"}
        }
    return event


def scheduled_event(
    detail: dict[str, Any] | None = None, detail_type: str = "Scheduled Event", source: str = "aws.events"
) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": ACCOUNT,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": REGION,
        "resources": [],
        "detail": detail or {},
    }


def sqs_event(queue_arn: str, bodies: list[str]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": "pkgcheck",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(int(time.time() * 1000))},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for body in bodies
        ]
    }


def default_event(template: dict[str, Any], logical: str, physical: dict[str, dict[str, Any]]) -> Any:
    """A minimal event of the function's first trigger, for a function the chain below does not know."""
    events = (template["Resources"][logical]["Properties"].get("Events") or {}).values()
    for trigger in events:
        kind, props = trigger.get("Type"), trigger.get("Properties") or {}
        if kind == "HttpApi":
            route_path = str(props.get("Path", "/"))
            path = re.sub(r"\{\w+\+?\}", "999999", route_path)
            return http_event(
                str(props.get("Method", "GET")).upper(),
                path,
                f"{props.get('Method', 'GET').upper()} {route_path}",
            )
        if kind == "SQS":
            queue = props["Queue"]["Fn::GetAtt"][0]
            return sqs_event(physical[queue]["Arn"], ["{}"])
        if kind == "Schedule":
            return json.loads(props["Input"]) if props.get("Input") else scheduled_event()
        if kind == "EventBridgeRule":
            pattern = props.get("Pattern") or {}
            return scheduled_event(
                {}, (pattern.get("detail-type") or ["Event"])[0], (pattern.get("source") or ["aws.events"])[0]
            )
    return {}


def answered_without_error(response: Any) -> str | None:
    """What any handler must do with a minimal event: no 5xx, no failed batch item."""
    if isinstance(response, dict):
        if int(response.get("statusCode") or 200) >= 500:
            return f"it answered {response['statusCode']}"
        if response.get("batchItemFailures"):
            return "it reported the batch item as failed"
    return None


def sqs_source(template: dict[str, Any], logical: str) -> str | None:
    """The logical id of the queue a function consumes, if it has an SQS event."""
    resource = template["Resources"].get(logical) or {}
    for trigger in ((resource.get("Properties") or {}).get("Events") or {}).values():
        if trigger.get("Type") == "SQS":
            return trigger["Properties"]["Queue"]["Fn::GetAtt"][0]
    return None


# ---------------------------------------------------------------- the chain
class Chain:
    """Invokes every function once per tracing mode, in an order where each event is a real one."""

    def __init__(
        self,
        built: Built,
        tracing: bool,
        report: Callable[[str, str, dict[str, Any]], None],
        only: set[str] | None = None,
    ):
        self.built, self.tracing, self.report, self.only = built, tracing, report, only
        self.mode = "on" if tracing else "off"
        self.project = f"{PROJECT}-{self.mode}"
        self.done: set[str] = set()
        self.failed = False

    def invoke(self, logical: str, event: Any, expect: Callable[[Any], str | None] | None = None) -> Any:
        if logical not in functions_of(self.built.template) or (self.only and logical not in self.only):
            return None
        try:
            outcome = self.built.run(logical, [event], self.tracing)
        except KeyError as exc:  # an intrinsic of its environment this check cannot resolve
            outcome = {"ok": False, "phase": "environment", "error_type": "Unresolved", "error": exc.args[0]}
        self.done.add(logical)
        if outcome.get("ok") and expect is not None:
            response = outcome["invocations"][-1]["response"]
            complaint = expect(response)
            if complaint:
                outcome = {
                    **outcome,
                    "ok": False,
                    "phase": "invoke",
                    "error_type": "UnexpectedResponse",
                    "error": f"{complaint}: {json.dumps(response, default=str)[:400]}",
                }
        if not outcome.get("ok") and not outcome.get("missing_module"):
            # A handler that catches errors (an HTTP 500, a batch item failure) still logged why.
            found = re.search(r"No module named '([^']+)'", outcome.get("logs") or "")
            if found:
                outcome["missing_module"] = found.group(1)
        self.report(logical, self.mode, outcome)
        if not outcome.get("ok"):
            self.failed = True
            return None
        return outcome["invocations"][-1]["response"]

    def http(
        self, logical: str, method: str, path: str, route: str, body: Any = None, ok: tuple[int, ...] = (200,)
    ) -> Any:
        def expect(response: Any) -> str | None:
            status = response.get("statusCode") if isinstance(response, dict) else None
            return None if status in ok else f"{method} {path} answered {status}, not {ok}"

        response = self.invoke(logical, http_event(method, path, route, body, project=self.project), expect)
        return json.loads(response.get("body") or "null") if response else None

    def run(self) -> None:
        template, physical = self.built.template, self.built.physical
        created = self.http(
            "PlatformFunction",
            "POST",
            "/api/v1/api-keys",
            "POST /api/v1/api-keys",
            {"name": "package-check", "role": "viewer"},
            ok=(201,),
        )
        key = (created or {}).get("key", "df_key_unknown")

        def authorized(response: Any) -> str | None:
            context = (response or {}).get("context") or {}
            return None if context.get("project") == self.project else "the API key was not accepted"

        authorizer = http_event(
            "GET", "/pipeline", "GET /pipeline", role=None, headers={"authorization": f"Bearer {key}"}
        )
        authorizer.update(
            type="REQUEST",
            identitySource=[f"Bearer {key}"],
            routeArn=f"arn:aws:execute-api:{REGION}:{ACCOUNT}:pkgcheck/$default/GET/pipeline",
        )
        self.invoke("AuthorizerFunction", authorizer, authorized)

        nodes = [
            {
                "id": "src",
                "nodeType": "source",
                "config": {"kind": "inline", "rows": [{"id": 1, "amount": 10}, {"id": 2, "amount": 25}]},
            },
            {
                "id": "shape",
                "nodeType": "transform",
                "config": {"sql": "SELECT id, amount * 2 AS doubled FROM src WHERE amount > 8"},
            },
            {
                "id": "out",
                "nodeType": "target",
                "config": {"kind": "dataset", "name": "pkgcheck_doubled", "mode": "overwrite"},
            },
        ]
        edges = [{"source": "src", "target": "shape"}, {"source": "shape", "target": "out"}]
        pipeline = self.http(
            "PipelinesFunction",
            "POST",
            "/api/v1/pipelines",
            "POST /api/v1/pipelines",
            {"name": "package-check", "nodes": nodes, "edges": edges},
            ok=(201,),
        )
        pipeline_id = ((pipeline or {}).get("data") or {}).get("id")
        self.http("LineageFunction", "GET", "/api/lineage", "GET /api/lineage")
        self.http("MonitorFunction", "GET", "/anomaly_detection_rule", "GET /anomaly_detection_rule")
        run_id = None
        if pipeline_id is not None:
            triggered = self.http(
                "RunsFunction",
                "POST",
                f"/api/pipelines/{pipeline_id}/run",
                "POST /api/pipelines/{pipeline_id}/run",
                {"params": {}},
                ok=(202,),
            )
            run_id = (triggered or {}).get("id")
        if run_id:
            self.drive_run(run_id)
        if pipeline_id is not None:
            self.drive_backfill(pipeline_id)
            self.invoke(
                "PipelineScheduleFunction",
                {
                    "project": self.project,
                    "pipeline_id": int(re.sub(r"\D", "", str(pipeline_id)) or 0),
                    "scheduled_time": time.strftime("%Y-%m-%dT%H:%M:00Z", time.gmtime()),
                },
            )
        detail = {"project": self.project, "execution_id": 1}
        self.invoke("AnomalyDetectionFunction", scheduled_event(detail, "execution.ended", "sluice"))
        check_queue = sqs_source(template, "CheckWorkerFunction")
        if check_queue:
            self.invoke(
                "CheckWorkerFunction",
                sqs_event(
                    physical[check_queue]["Arn"],
                    [json.dumps({"check": "freshness", "project": self.project})],
                ),
                lambda r: "the check failed" if (r or {}).get("batchItemFailures") else None,
            )
        for logical in functions_of(template):
            if logical not in self.done:
                self.invoke(logical, default_event(template, logical, physical), answered_without_error)

    def drive_backfill(self, pipeline_id: str) -> None:
        """The Backfill state machine's work, done here: one child released, checked, then the end."""
        day = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 86400))
        answer = self.http(
            "RunsFunction",
            "POST",
            f"/api/pipelines/{pipeline_id}/backfill",
            "POST /api/pipelines/{pipeline_id}/backfill",
            {"start_date": day, "end_date": day},
            ok=(202,),
        )
        if not answer or not answer.get("id") or not answer.get("runs"):
            return
        parent = int(str(answer["id"]).rsplit("-", 1)[-1])
        child = int(str(answer["runs"][0]).rsplit("-", 1)[-1])
        item = {"project": self.project, "parent_id": parent, "run_id": child, "poll_seconds": 1}

        def answered_done(response: Any) -> str | None:
            return None if isinstance(response, dict) and "done" in response else "no done in the answer"

        self.invoke("BackfillReleaseFunction", item, answered_done)
        self.invoke("BackfillCheckFunction", item, answered_done)
        self.invoke(
            "BackfillFinishFunction",
            {"project": self.project, "parent_id": parent},
            lambda r: None if isinstance(r, dict) else "no answer",
        )

    def drive_run(self, run_id: str) -> None:
        """The Run state machine's work, done here: dispatch, plan, level by level, finish."""
        template, physical = self.built.template, self.built.physical
        queue = sqs_source(template, "RunDispatcherFunction")
        number = int(str(run_id).rsplit("-", 1)[-1])
        if not queue:
            return
        sqs = aws_client("sqs", self.built.endpoint)
        received = sqs.receive_message(QueueUrl=physical[queue]["Ref"], WaitTimeSeconds=1).get("Messages", [])
        if not received:
            failure = f"the run queue holds no message for {run_id}"
            self.report(
                "RunsFunction",
                self.mode,
                {"ok": False, "phase": "invoke", "error_type": "NoMessage", "error": failure},
            )
            self.failed = True
            return
        event = sqs_event(physical[queue]["Arn"], [received[0]["Body"]])
        event["Records"][0]["receiptHandle"] = received[0]["ReceiptHandle"]
        dispatched = self.invoke(
            "RunDispatcherFunction",
            event,
            lambda r: "the run was not dispatched" if (r or {}).get("batchItemFailures") else None,
        )
        if dispatched is not None:  # done, so deleted, as Lambda's SQS event source does
            sqs.delete_message(QueueUrl=physical[queue]["Ref"], ReceiptHandle=received[0]["ReceiptHandle"])
        if dispatched is None:
            return
        state = self.invoke("PlanRunFunction", {"project": self.project, "run_id": number})
        outcome = "failed"
        for _ in range(20):
            if state is None:
                break
            step = self.invoke(
                "NextStepFunction",
                {"project": self.project, "run_id": number, "level": state.get("level", 0)},
            )
            if step is None:
                break
            if step.get("action") != "run":
                outcome = "success" if step.get("action") == "finish" else "cancelled"
                break
            for node in step.get("nodes") or []:
                executed = self.invoke(
                    "ExecuteNodeFunction",
                    {"project": self.project, "run_id": number, "node_id": node},
                    lambda r: None if (r or {}).get("status") == "success" else "the node did not succeed",
                )
                if executed is None:
                    state = None
                    break
            else:
                state = step
        self.invoke(
            "FinishRunFunction",
            {"project": self.project, "run_id": number, "outcome": outcome},
            lambda r: None if (r or {}).get("status") == "success" else "the run did not end in success",
        )
        self.http("RunsFunction", "GET", f"/api/runs/{run_id}", "GET /api/runs/{run_id}")


# ---------------------------------------------------------------- main
def summarize(response: Any) -> str:
    """A few words of what a function answered, for the report."""
    if not isinstance(response, dict):
        return json.dumps(response, default=str)[:60]
    if "statusCode" in response:
        return f"HTTP {response['statusCode']}"
    if "isAuthorized" in response:
        context = response.get("context") or {}
        return "denied" if context.get("denied") else f"authorized ({context.get('role')})"
    shown = {k: v for k, v in response.items() if not isinstance(v, dict)}
    return json.dumps(shown, default=str)[:90].replace("|", "/")


def check(
    build_dir: Path,
    runtime_python: str,
    endpoint: str | None = None,
    out: Callable[[str], None] = print,
    only: set[str] | None = None,
) -> list[str]:
    """Every check on a build; returns the failures (empty: the build is deployable). `only`
    runs just those functions (the contents and sizes of all are still checked)."""
    build_dir = build_dir.resolve()
    template = load_built_template(build_dir)
    problems = Problems()
    runtime = str(global_function(template).get("Runtime", ""))
    version = subprocess.run(
        [runtime_python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    functions = functions_of(template)
    for logical in functions:
        declared = str(function_setting(template, logical, "Runtime", ""))
        if declared.startswith("python") and declared != f"python{version}":
            problems.add(
                f"{logical}: runtime {declared}, but the check runs Python {version} ({runtime_python})"
            )
    layers = {lid for f in functions for lid in layer_ids(template, f)}
    for layer in sorted(layers):
        folder = build_dir / str(template["Resources"][layer]["Properties"]["ContentUri"])
        check_layer(layer, folder, problems)
        check_pins(layer, folder, problems, "cp" + version.replace(".", ""))
    sizes: dict[str, tuple[int, int]] = {}
    for logical, resource in functions.items():
        folder = build_dir / str(resource["Properties"]["CodeUri"])
        check_function_folder(logical, folder, str(resource["Properties"]["Handler"]), problems)
        layer_bytes = sum(
            tree_size(build_dir / str(template["Resources"][lid]["Properties"]["ContentUri"]))
            for lid in layer_ids(template, logical)
        )
        sizes[logical] = (tree_size(folder) if folder.is_dir() else 0, layer_bytes)
        if sum(sizes[logical]) > LAMBDA_UNZIPPED_LIMIT:
            problems.add(
                f"{logical}: {sum(sizes[logical]) / 2**20:.1f} MB unzipped with its layers, over Lambda's 250 MB"
            )
    out(f"Runtime {runtime}, checked on Python {version} ({runtime_python}); {len(functions)} functions.")
    out("\n| function | package | with layers (unzipped) |\n|---|---|---|")
    for logical, (own, layer_bytes) in sorted(sizes.items()):
        out(f"| {logical} | {own / 1024:.0f} KB | {(own + layer_bytes) / 2**20:.1f} MB |")

    rows: list[str] = []

    def report(logical: str, tracing: str, outcome: dict[str, Any]) -> None:
        handler = str(functions[logical]["Properties"]["Handler"])
        if outcome.get("ok"):
            calls = outcome.get("invocations") or [{}]
            answer = summarize(calls[-1].get("response"))
            rows.append(
                f"| {logical} | {tracing} | ok | {outcome.get('import_ms', 0):.0f} "
                f"| {calls[-1].get('ms', 0):.0f} | {answer} |"
            )
        else:
            problems.add(describe_failure(logical, handler, tracing == "on", outcome))
            rows.append(f"| {logical} | {tracing} | **{outcome.get('phase')} failed** | | | |")

    with (
        tempfile.TemporaryDirectory(prefix="sluice-package-check-") as tmp,
        contextlib.nullcontext(endpoint) if endpoint else moto_server() as moto,
    ):
        for tracing in (False, True):
            # Each mode is its own stage, with its own resources, project and run.
            physical = physical_ids(template, stage_parameters(tracing))
            if not endpoint:
                provision(template, physical, moto, stage_parameters(tracing))
            built = Built(template, build_dir, runtime_python, moto, physical, Path(tmp))
            Chain(built, tracing, report, only).run()
    out("\n| function | tracing | outcome | import ms | invocation ms | answer |\n|---|---|---|---|---|---|")
    for row in rows:
        out(row)
    return problems.found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", type=Path, default=ROOT / ".aws-sam" / "build")
    parser.add_argument("--runtime-python", default="python3.12", help="the Lambda runtime's Python")
    parser.add_argument(
        "--only", action="append", metavar="FUNCTION", help="run only this function (repeatable)"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    failures = check(args.build_dir, args.runtime_python, only=set(args.only) if args.only else None)
    print(f"\npackage-check: {len(failures)} problem(s) in {time.perf_counter() - started:.0f} s")
    for failure in failures:
        print(f"FAIL {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
