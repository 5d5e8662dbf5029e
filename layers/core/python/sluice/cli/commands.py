"""The API commands of `sluice`: argparse wiring, each command a function over `sluice.client`.

Results go to stdout (a table, or with `--output json` the API's objects as JSON for scripts);
progress and errors go to stderr. The SDK and rich are imported when a command runs, so
`sluice dev` never pays for them.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from sluice.cli import (
    EXIT_AUTH,
    EXIT_BAD_INPUT,
    EXIT_CONFLICT,
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_UNREACHABLE,
)

API_COMMANDS = ("login", "pipelines", "run", "runs", "backfill", "alerts")


class InputError(Exception):
    """Bad input found before any call (exit 2)."""


# -- wiring ----------------------------------------------------------------------------------------
def _variable(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--var wants KEY=VALUE, not '{text}'")
    return key, value


def add_commands(commands: Any) -> None:
    """Add the API commands to `sluice`'s subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="Sluice's URL (default: SLUICE_URL, then `sluice login`'s)")
    common.add_argument("--api-key", help="API key (default: SLUICE_API_KEY, then `sluice login`'s)")
    common.add_argument(
        "--output",
        "-o",
        choices=["table", "json"],
        default="table",
        help="json: the API's objects, for scripts",
    )

    login = commands.add_parser("login", parents=[common], help="store the URL and API key (file mode 0600)")
    login.add_argument("--no-verify", action="store_true", help="store without checking the key")
    login.set_defaults(handler=cmd_login)

    pipelines = commands.add_parser("pipelines", help="list, get, apply, delete pipelines")
    actions = pipelines.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", parents=[common])
    listing.add_argument("--status", choices=["active", "paused", "error", "draft"])
    listing.set_defaults(handler=cmd_pipelines_list)
    get = actions.add_parser("get", parents=[common])
    get.add_argument("name")
    get.set_defaults(handler=cmd_pipelines_get)
    apply = actions.add_parser("apply", parents=[common], help="create or update from a YAML or JSON file")
    apply.add_argument("-f", "--file", required=True, help="pipeline file (YAML or JSON; - for stdin)")
    apply.set_defaults(handler=cmd_pipelines_apply)
    delete = actions.add_parser("delete", parents=[common], help="delete a pipeline and all its runs")
    delete.add_argument("name")
    delete.add_argument("--yes", action="store_true", help="confirm: the run history goes too")
    delete.set_defaults(handler=cmd_pipelines_delete)

    run = commands.add_parser("run", parents=[common], help="trigger a pipeline run")
    run.add_argument("name")
    run.add_argument("--wait", action="store_true", help="wait for the end, showing each node's progress")
    run.add_argument("--timeout", type=float, default=300, help="seconds to wait (default 300)")
    run.add_argument("--var", type=_variable, action="append", default=[], metavar="KEY=VALUE")
    run.add_argument("--full-refresh", action="store_true")
    run.add_argument("--dry-run", action="store_true", help="run each node on 10 rows, persist nothing")
    run.add_argument("--no-progress", action="store_true", help="no live display while waiting")
    run.set_defaults(handler=cmd_run)

    runs = commands.add_parser("runs", help="list, read, follow, cancel, resume runs")
    run_actions = runs.add_subparsers(dest="action", required=True)
    runs_list = run_actions.add_parser("list", parents=[common])
    runs_list.add_argument("name", help="the pipeline")
    runs_list.add_argument("--limit", type=int, default=10)
    runs_list.set_defaults(handler=cmd_runs_list)
    runs_get = run_actions.add_parser("get", parents=[common])
    runs_get.add_argument("run_id")
    runs_get.set_defaults(handler=cmd_runs_get)
    logs = run_actions.add_parser("logs", parents=[common])
    logs.add_argument("run_id")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing until the run ends")
    logs.add_argument("--node", dest="node_id")
    logs.add_argument("--level", choices=["debug", "info", "warning", "error"])
    logs.set_defaults(handler=cmd_runs_logs)
    cancel = run_actions.add_parser("cancel", parents=[common])
    cancel.add_argument("run_id")
    cancel.set_defaults(handler=cmd_runs_cancel)
    resume = run_actions.add_parser("resume", parents=[common])
    resume.add_argument("run_id")
    resume.add_argument("--wait", action="store_true")
    resume.add_argument("--timeout", type=float, default=300)
    resume.add_argument("--no-progress", action="store_true")
    resume.set_defaults(handler=cmd_runs_resume)

    backfill = commands.add_parser("backfill", parents=[common], help="one run per date, inclusive")
    backfill.add_argument("name")
    backfill.add_argument("--from", dest="start_date", required=True, metavar="YYYY-MM-DD")
    backfill.add_argument("--to", dest="end_date", required=True, metavar="YYYY-MM-DD")
    backfill.add_argument("--dry-run", action="store_true", help="list the dates, create nothing")
    backfill.add_argument("--reprocess", choices=["all", "failed", "missing"])
    backfill.set_defaults(handler=cmd_backfill)

    alerts = commands.add_parser("alerts", help="active alerts")
    alert_actions = alerts.add_subparsers(dest="action", required=True)
    alerts_list = alert_actions.add_parser("list", parents=[common])
    alerts_list.add_argument("--type")
    alerts_list.add_argument("--severity")
    alerts_list.add_argument("--pipeline-id")
    alerts_list.add_argument("--dataset-name")
    alerts_list.set_defaults(handler=cmd_alerts_list)


def run_command(args: argparse.Namespace) -> int:
    """Run the parsed command; every failure becomes a sentence on stderr and its exit code."""
    from sluice.client import errors

    try:
        return args.handler(args)
    except InputError as exc:
        return _fail(str(exc), EXIT_BAD_INPUT)
    except ValueError as exc:  # the Client's "no URL" and similar
        return _fail(str(exc), EXIT_BAD_INPUT)
    except errors.RunTimeout as exc:
        return _fail(str(exc), EXIT_TIMEOUT)
    except errors.RunFailed as exc:
        return _fail(str(exc), EXIT_FAILED)
    except errors.ConnectionFailed as exc:
        return _fail(str(exc), EXIT_UNREACHABLE)
    except errors.ApiError as exc:
        return _fail(exc.message, _exit_of(exc))
    except KeyboardInterrupt:
        return _fail("interrupted", 130)


def _exit_of(error: Any) -> int:
    status = error.status_code
    if status in (401, 403):
        return EXIT_AUTH
    if status == 404:
        return EXIT_NOT_FOUND
    if status == 409:
        return EXIT_CONFLICT
    if status in (400, 413, 422):
        return EXIT_BAD_INPUT
    if status >= 500:
        return EXIT_UNREACHABLE
    return EXIT_FAILED


def _fail(message: str, code: int) -> int:
    print(f"sluice: {message}", file=sys.stderr)
    return code


def _client(args: argparse.Namespace) -> Any:
    from sluice.client import Client

    return Client(args.url, args.api_key)


def _plain(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _emit_json(value: Any) -> None:
    print(json.dumps(_plain(value), indent=2))


def _table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in columns:
        table.add_column(column.upper())
    for row in rows:
        table.add_row(*["" if row.get(c) is None else str(row.get(c)) for c in columns])
    Console().print(table)


# -- commands --------------------------------------------------------------------------------------
def cmd_login(args: argparse.Namespace) -> int:
    from sluice.client import Client
    from sluice.client.config import save_config

    url = args.url or os.environ.get("SLUICE_URL") or input("Sluice URL: ").strip()
    key = args.api_key or os.environ.get("SLUICE_API_KEY") or getpass.getpass("API key: ").strip()
    if not url or not key:
        raise InputError("login needs a URL and an API key.")
    if not args.no_verify:
        with Client(url, key, retries=1) as client:
            client.transport.json("GET", "/api/v1/pipelines", params={"per_page": 1})
    path = save_config(url, key)
    if args.output == "json":
        _emit_json({"url": url.rstrip("/"), "config": str(path)})
    else:
        print(f"Logged in to {url.rstrip('/')}; key stored in {path} (mode 0600).")
    return EXIT_OK


def cmd_pipelines_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        pipelines = client.pipelines.list(status=args.status)
    if args.output == "json":
        _emit_json(pipelines)
        return EXIT_OK
    rows = []
    for p in pipelines:
        last = p.last_run
        rows.append(
            {
                "name": p.name,
                "status": p.status,
                "schedule": p.schedule,
                "last run": f"{last.status} {last.started_at}" if last and last.status else None,
                "rows": last.rows_loaded if last else None,
            }
        )
    _table(rows, ["name", "status", "schedule", "last run", "rows"])
    return EXIT_OK


def cmd_pipelines_get(args: argparse.Namespace) -> int:
    with _client(args) as client:
        pipeline = client.pipelines.get(args.name)
    if args.output == "json":
        _emit_json(pipeline)
        return EXIT_OK
    import yaml

    print(yaml.safe_dump(_plain(pipeline), sort_keys=False).rstrip())
    return EXIT_OK


def read_pipeline_file(path: str) -> dict[str, Any] | str:
    """The file as a dict (JSON) or as YAML text once it is known to parse to a mapping."""
    import yaml

    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    if path.endswith(".json"):
        try:
            loaded = json.loads(text)
        except ValueError as exc:
            raise InputError(f"{path} is not valid JSON: {exc}.") from exc
        if not isinstance(loaded, dict):
            raise InputError(f"{path} must hold one pipeline: a JSON object with a name.")
        return loaded
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or "it does not parse"
        raise InputError(f"{path} is neither YAML nor JSON{where}: {problem}.") from exc
    if not isinstance(loaded, dict):
        raise InputError(f"{path} is neither a YAML mapping nor a JSON object; a pipeline file holds one.")
    return text


def cmd_pipelines_apply(args: argparse.Namespace) -> int:
    definition = read_pipeline_file(args.file)
    with _client(args) as client:
        pipeline, created = client.pipelines.apply(definition)
    if args.output == "json":
        _emit_json({"created": created, "pipeline": _plain(pipeline)})
    else:
        print(f"pipeline {pipeline.name} {'created' if created else 'updated'}")
    return EXIT_OK


def cmd_pipelines_delete(args: argparse.Namespace) -> int:
    if not args.yes:
        raise InputError(f"deleting {args.name} removes its definition and all run history; add --yes.")
    with _client(args) as client:
        client.pipelines.delete(args.name)
    if args.output == "json":
        _emit_json({"deleted": args.name})
    else:
        print(f"pipeline {args.name} deleted")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    variables = dict(args.var)
    with _client(args) as client:
        triggered = client.pipelines.run(
            args.name, full_refresh=args.full_refresh, dry_run=args.dry_run, variables=variables
        )
        if args.dry_run:
            if args.output == "json":
                _emit_json(triggered)
            else:
                nodes = (_plain(triggered).get("nodes") or {}).values()
                _table(list(nodes), ["node_id", "status", "row_count", "error"])
            return EXIT_OK
        if not args.wait:
            if args.output == "json":
                _emit_json(triggered.info)
            else:
                print(f"run {triggered.id} {triggered.status}")
            return EXIT_OK
        return _wait_and_report(triggered, args)


def _wait_and_report(run: Any, args: argparse.Namespace) -> int:
    from sluice.cli.progress import NodeProgress
    from sluice.client import errors

    live = not args.no_progress and args.output != "json" and sys.stderr.isatty()
    with NodeProgress(run.id, enabled=live) as progress:
        try:
            info = run.wait(timeout=args.timeout, on_update=progress.update)
        except errors.RunFailed as exc:
            progress.update(exc.run)
            if args.output == "json":
                _emit_json(exc.run)
            raise
    if args.output == "json":
        _emit_json(info)
    else:
        seconds = f" in {info.seconds:.1f} s" if info.seconds is not None else ""
        print(f"run {info.id} {info.status}{seconds}, {info.rows_loaded or 0} rows loaded")
        if not live:
            _table(_plain(info.node_runs or []), ["node_id", "status", "row_count", "duration_ms"])
    return EXIT_OK


def cmd_runs_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        runs = client.pipelines.runs(args.name, limit=args.limit)
    if args.output == "json":
        _emit_json(runs)
    else:
        _table(_plain(runs), ["id", "status", "started_at", "duration_ms", "rows_loaded"])
    return EXIT_OK


def cmd_runs_get(args: argparse.Namespace) -> int:
    with _client(args) as client:
        info = client.runs.get(args.run_id)
    if args.output == "json":
        _emit_json(info)
    else:
        print(f"run {info.id} {info.status} (pipeline {info.pipeline_id}, started {info.started_at})")
        if info.error:
            print(f"error: {info.error}")
        _table(_plain(info.node_runs or []), ["node_id", "status", "row_count", "duration_ms", "error"])
    return EXIT_OK


def _print_log(line: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(_plain(line)), flush=True)
    else:
        print(
            f"{line.timestamp or '':24} {(line.level or '').upper():7} {line.node_id or '':12} {line.message}",
            flush=True,
        )


def cmd_runs_logs(args: argparse.Namespace) -> int:
    """Print the run's log lines; with --follow, keep polling until the run ends (NDJSON with -o json)."""
    as_json = args.output == "json"
    with _client(args) as client:
        printed = 0
        while True:
            finished = client.runs.get(args.run_id).finished if args.follow else True
            lines = client.runs.logs(args.run_id, node_id=args.node_id, level=args.level)
            for line in lines[printed:]:
                _print_log(line, as_json)
            printed = max(printed, len(lines))
            if finished:
                return EXIT_OK
            time.sleep(1.0)


def cmd_runs_cancel(args: argparse.Namespace) -> int:
    with _client(args) as client:
        answer = client.runs.cancel(args.run_id)
    if args.output == "json":
        _emit_json(answer)
    else:
        print(f"run {args.run_id} {answer.get('status')}")
    return EXIT_OK


def cmd_runs_resume(args: argparse.Namespace) -> int:
    with _client(args) as client:
        run = client.runs.resume(args.run_id)
        if args.wait:
            return _wait_and_report(run, args)
    if args.output == "json":
        _emit_json(run.info)
    else:
        print(f"run {run.id} {run.status} (resumes {args.run_id})")
    return EXIT_OK


def cmd_backfill(args: argparse.Namespace) -> int:
    from sluice.client import errors

    with _client(args) as client:
        client.pipelines.get(args.name)  # a 404 here: no such pipeline (exit 3 with the server's sentence)
        try:
            answer = client.pipelines.backfill(
                args.name, args.start_date, args.end_date, dry_run=args.dry_run, reprocess=args.reprocess
            )
        except errors.NotFound:  # the pipeline exists, so the route does not
            return _fail(
                "this Sluice has no backfill endpoint (POST /api/pipelines/{id}/backfill); upgrade the server.",
                EXIT_NOT_FOUND,
            )
    if args.output == "json":
        _emit_json(answer)
    else:
        count = answer.get("count", len(answer.get("runs") or answer.get("dates") or []))
        print(f"backfill of {args.name}: {count} {'dates' if args.dry_run else 'runs'}")
    return EXIT_OK


def cmd_alerts_list(args: argparse.Namespace) -> int:
    from sluice.client import errors

    filters = {
        "type": args.type,
        "severity": args.severity,
        "pipeline_id": args.pipeline_id,
        "dataset_name": args.dataset_name,
    }
    with _client(args) as client:
        try:
            alerts = client.alerts.list(**{k: v for k, v in filters.items() if v is not None})
        except errors.NotFound:  # a list has no object to miss: the route is what is missing
            return _fail(
                "this Sluice has no alerts endpoint (GET /api/pipeline/anomalies); upgrade the server.",
                EXIT_NOT_FOUND,
            )
    if args.output == "json":
        _emit_json(alerts)
    else:
        _table(alerts, ["id", "type", "severity", "dataset_name", "pipeline_id", "created_at"])
    return EXIT_OK
