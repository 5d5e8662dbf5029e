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
  (stricter than DynamoDB, which is fine for one developer's machine).

Everything else the local stack does goes through moto's public HTTP API with boto3.
"""

from __future__ import annotations

import json
import threading
import traceback
from collections.abc import Callable
from typing import Any

import requests
from moto.awslambda.models import LambdaFunction
from moto.dynamodb.models import DynamoDBBackend
from moto.events.models import EventTemplateParser, Rule
from moto.server import ThreadedMotoServer
from moto.utilities.arns import parse_arn

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
_invoker: LambdaInvoker | None = None
_dispatcher: TargetDispatcher | None = None


def check_version() -> None:
    import moto

    if moto.__version__ != MOTO_VERSION:
        raise RuntimeError(
            f"sluice.local.moto_adapter is written against moto {MOTO_VERSION}, found {moto.__version__}; "
            "re-check the two patched methods before changing the pin."
        )


def start_server(host: str = "127.0.0.1") -> tuple[ThreadedMotoServer, int]:
    """moto's server on a free port, in a daemon thread."""
    server = ThreadedMotoServer(ip_address=host, port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    return server, port


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


def uninstall() -> None:
    global _invoker, _dispatcher
    with _lock:
        _invoker, _dispatcher = None, None
        LambdaFunction._invoke_lambda = _original_invoke_lambda
        Rule.send_to_targets = _original_send_to_targets
        for name, original in _original_dynamodb.items():
            setattr(DynamoDBBackend, name, original)
