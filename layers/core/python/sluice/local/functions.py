"""In-process Lambda functions: the handlers template.yaml names, loaded from their code directories."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sluice.local.template import function_handler, resources_of_type

ACCOUNT = "123456789012"
REGION = "us-east-1"
CODE_ROOT_VARIABLE = "SLUICE_CODE_ROOT"


@dataclass
class LambdaContext:
    """What a Lambda handler may read from its context object (Powertools reads these)."""

    function_name: str
    memory_limit_in_mb: int = 1024
    timeout_seconds: int = 29
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = ""

    def __post_init__(self) -> None:
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class FunctionRegistry:
    """Maps logical ids (and, once the stack exists, physical names) to loaded handlers."""

    def __init__(self, template: dict[str, Any], code_root: Path | str | None = None):
        self.template = template
        # Where handler modules load from: the source tree, or `sam build`'s output (`sluice dev
        # --from-build` sets SLUICE_CODE_ROOT, which the stack's registry reads).
        found = code_root if code_root is not None else os.environ.get(CODE_ROOT_VARIABLE)
        self.code_root = Path(found) if found else None
        self.functions = resources_of_type(template, "AWS::Serverless::Function")
        self.physical_to_logical: dict[str, str] = {}
        self._handlers: dict[str, Callable[[Any, Any], Any]] = {}
        self._lock = threading.Lock()

    def logical_id(self, name_or_arn: str) -> str:
        name = name_or_arn.split(":function:")[-1].split(":")[0]
        if name in self.functions:
            return name
        try:
            return self.physical_to_logical[name]
        except KeyError:
            raise LookupError(f"no function named {name_or_arn} in template.yaml") from None

    def handler(self, logical_id: str) -> Callable[[Any, Any], Any]:
        found = self._handlers.get(logical_id)
        if found is not None:
            return found
        with self._lock:
            found = self._handlers.get(logical_id)
            if found is None:
                found = self._load(logical_id)
                self._handlers[logical_id] = found
            return found

    def _load(self, logical_id: str) -> Callable[[Any, Any], Any]:
        code_dir, module_name, attribute = function_handler(self.template, logical_id, self.code_root)
        path = Path(code_dir) / f"{module_name.replace('.', '/')}.py"
        if not path.is_file():
            raise LookupError(f"{logical_id}: handler module {path} does not exist")
        unique = f"sluice_fn_{logical_id}_{module_name.replace('.', '_')}"
        spec = importlib.util.spec_from_file_location(unique, path)
        if spec is None or spec.loader is None:
            raise LookupError(f"cannot load {path} for {logical_id}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[unique] = module
        spec.loader.exec_module(module)
        return getattr(module, attribute)

    def invoke(self, name_or_arn: str, event: Any) -> Any:
        logical = self.logical_id(name_or_arn)
        props = self.functions[logical]["Properties"]
        globals_ = (self.template.get("Globals") or {}).get("Function") or {}
        context = LambdaContext(
            function_name=logical,
            memory_limit_in_mb=int(props.get("MemorySize", globals_.get("MemorySize", 1024))),
            timeout_seconds=int(props.get("Timeout", globals_.get("Timeout", 29))),
        )
        _ensure_event_loop()
        return self.handler(logical)(event, context)


def _ensure_event_loop() -> None:
    """Lambda runs a handler on its one thread; the local stack calls handlers from many threads,
    and Mangum wants the calling thread's event loop, which only the loading thread has."""
    try:
        asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())
