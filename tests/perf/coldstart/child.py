"""One cold start, in the fresh interpreter bench_cold_start starts: import a handler module as
Lambda does (its code directory first on sys.path, the module by name), optionally serve one
request, and write what was measured as JSON.

Only the standard library is imported before the clock starts, so nothing is imported for the
handler ahead of time. Two things make this interpreter look like a Lambda one:
- Sluice's own modules and the function's code are compiled from source, ignoring any
  __pycache__ a developer's runs left behind: Lambda's /opt (the layer) and /var/task are read-only
  and the layer ships sources, so that compile happens at every cold start. Installed
  packages load their .pyc as pip left them, as in the layer.
- Packages listed as `blocked` (dev-only in this venv: the X-Ray SDK's patch_all would import
  them, the Lambda layer does not have them) cannot be imported.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import json
import os
import sys
import time

WATCHED = ("duckdb", "sqlglot", "boto3", "botocore", "aws_xray_sdk", "pendulum", "moto", "requests", "httpx")


class _SourceOnlyLoader(importlib.machinery.SourceFileLoader):
    def path_stats(self, path: str) -> dict:  # no stats: the cached bytecode is never trusted
        raise OSError("compile from source, as on Lambda's read-only file system")


class _LambdaLikeFinder:
    def __init__(self, source_roots: list[str], blocked: list[str]):
        # Plain prefixes (no realpath): this runs for every import and must cost next to nothing.
        self.source_roots = tuple(os.path.join(os.path.abspath(r), "") for r in source_roots)
        self.blocked = set(blocked)

    def find_spec(self, name: str, path: object = None, target: object = None) -> object:
        if name.partition(".")[0] in self.blocked:
            raise ModuleNotFoundError(f"No module named {name!r} (not in the Lambda layer)", name=name)
        spec = importlib.machinery.PathFinder.find_spec(name, path)  # type: ignore[arg-type]
        if (
            spec is not None
            and isinstance(spec.loader, importlib.machinery.SourceFileLoader)
            and spec.origin
            and spec.origin.startswith(self.source_roots)
        ):
            spec.loader = _SourceOnlyLoader(spec.loader.name, spec.loader.path)
        return spec


class _Context:
    """The Lambda context attributes Powertools and Mangum read."""

    def __init__(self, name: str):
        self.function_name = name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 1024
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
        self.aws_request_id = "c0ffee00-0000-4000-8000-000000000001"
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = "perf"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def _present() -> dict[str, bool]:
    return {name: name in sys.modules for name in WATCHED}


def _compile_ms(source_roots: list[str]) -> float:
    """How long compiling the loaded modules of the source roots takes (their share of the import)."""
    roots = tuple(os.path.realpath(r) + os.sep for r in source_roots)
    files = {
        os.path.realpath(m.__file__)
        for m in list(sys.modules.values())
        if getattr(m, "__file__", None) and os.path.realpath(m.__file__).startswith(roots)
    }
    started = time.perf_counter()
    for path in files:
        with open(path, encoding="utf-8") as handle:
            compile(handle.read(), path, "exec")
    return (time.perf_counter() - started) * 1000


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as handle:
        spec = json.load(handle)
    # Just before the standard PathFinder: built-in and frozen modules resolve as usual.
    position = next(
        (i for i, f in enumerate(sys.meta_path) if f is importlib.machinery.PathFinder), len(sys.meta_path)
    )
    sys.meta_path.insert(position, _LambdaLikeFinder(spec["source_roots"], spec.get("blocked", [])))
    sys.path.insert(0, spec["code_dir"])
    event = spec.get("event")
    result: dict = {}

    started, cpu = time.perf_counter(), time.process_time()
    module = importlib.import_module(spec["module"])
    handler = getattr(module, spec["attribute"])
    result["import_ms"] = (time.perf_counter() - started) * 1000
    result["import_cpu_ms"] = (time.process_time() - cpu) * 1000
    result["after_import"] = _present()

    if event is not None:
        context = _Context(spec["function"])
        started, cpu = time.perf_counter(), time.process_time()
        response = handler(event, context)
        result["request_ms"] = (time.perf_counter() - started) * 1000
        result["request_cpu_ms"] = (time.process_time() - cpu) * 1000
        result["after_request"] = _present()
        result["status"] = response.get("statusCode", "authorized" if response.get("isAuthorized") else None)
        result["response"] = str(response.get("body", response.get("context", "")))[:200]
    if spec.get("measure_compile"):
        result["compile_ms"] = _compile_ms(spec["source_roots"])
    with open(spec["out"], "w", encoding="utf-8") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main()
