"""One function's cold start as Lambda's Python runtime does it, in a fresh interpreter.

Run with the runtime's Python as `python3.12 -I -S -B lambda_probe.py SPEC.json` (-I: no PYTHONPATH,
no user site, not this file's folder; -S: not that Python's site-packages; -B: no bytecode
written, as /var/task and /opt are read-only). sys.path becomes what
Lambda gives a function: its folder (/var/task), each layer's python/lib/python3.X/site-packages
and python/ (/opt/...), then the standard library. The handler `module.attribute` is imported
by name and invoked with each event of the spec; the outcome goes to the spec's `out` file as JSON.

Only the standard library is used here, so nothing is imported for the handler ahead of time.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from typing import Any


class LambdaContext:
    """The context attributes Powertools and Mangum read."""

    def __init__(self, name: str, memory_mb: int, timeout_s: int):
        self.function_name = name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory_mb
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
        self.aws_request_id = "c0ffee00-0000-4000-8000-000000000016"
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = "package-check"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def lambda_sys_path(task_dir: str, layer_dirs: list[str]) -> list[str]:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    paths = [task_dir]
    for layer in layer_dirs:
        paths += [
            os.path.join(layer, "python", "lib", version, "site-packages"),
            os.path.join(layer, "python"),
        ]
    return paths + [p for p in sys.path if p]


def failure(phase: str, exc: BaseException) -> dict[str, Any]:
    found: dict[str, Any] = {
        "ok": False,
        "phase": phase,
        "error_type": type(exc).__name__,
        "error": str(exc),
        "trace": "".join(traceback.format_exception(exc))[-3000:],
    }
    if isinstance(exc, ModuleNotFoundError):
        found["missing_module"] = exc.name
    return found


def probe(spec: dict[str, Any]) -> dict[str, Any]:
    sys.path[:] = lambda_sys_path(spec["task_dir"], spec["layer_dirs"])
    module_name, _, attribute = spec["handler"].rpartition(".")
    result: dict[str, Any] = {"ok": True, "python": sys.version.split()[0], "invocations": []}
    started = time.perf_counter()
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # Lambda's Runtime.ImportModuleError
        return failure("import", exc)
    handler = getattr(module, attribute, None)
    if not callable(handler):  # Lambda's Runtime.HandlerNotFound
        return {
            "ok": False,
            "phase": "import",
            "error_type": "HandlerNotFound",
            "error": f"module '{module_name}' ({module.__file__}) has no handler '{attribute}'",
        }
    result["import_ms"] = (time.perf_counter() - started) * 1000
    for event in spec["events"]:
        context = LambdaContext(spec["function"], spec.get("memory_mb", 1024), spec.get("timeout_s", 29))
        started = time.perf_counter()
        try:
            response = handler(event, context)
        except Exception as exc:
            return {**result, **failure("invoke", exc)}
        result["invocations"].append({"ms": (time.perf_counter() - started) * 1000, "response": response})
    result["sluice_from"] = getattr(sys.modules.get("sluice"), "__file__", None)
    result["loaded_from_outside"] = sorted(
        {
            name.partition(".")[0]
            for name, mod in list(sys.modules.items())
            if getattr(mod, "__file__", None)
            and not any(mod.__file__.startswith(root) for root in (spec["task_dir"], *spec["layer_dirs"]))
            and not mod.__file__.startswith(sys.base_prefix)
        }
    )
    return result


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as handle:
        spec = json.load(handle)
    outcome = probe(spec)
    with open(spec["out"], "w", encoding="utf-8") as handle:
        json.dump(outcome, handle, default=str)


if __name__ == "__main__":
    main()
