"""The `sluice` command: `sluice dev` runs the whole system on this machine, `sluice openapi` prints
the API's OpenAPI document, and the API commands (login, pipelines, run, runs, backfill, alerts;
sluice.cli.commands) call a Sluice through the SDK."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from sluice import __version__


def _parameter(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--param wants Key=Value, not '{text}'")
    return key, value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sluice", description="Sluice data-pipeline backend.")
    parser.add_argument("--version", action="version", version=f"sluice {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    dev = commands.add_parser(
        "dev", help="run the local stack: moto, the functions, the gateway, the scheduler"
    )
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8080)
    dev.add_argument(
        "--data-dir", type=Path, default=Path(".sluice"), help="where state is saved (default .sluice)"
    )
    dev.add_argument("--ephemeral", action="store_true", help="keep state in memory only")
    dev.add_argument(
        "--param",
        type=_parameter,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a template parameter",
    )
    dev.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    dev.add_argument(
        "--from-build",
        nargs="?",
        const=Path(".aws-sam/build"),
        default=None,
        type=Path,
        metavar="DIR",
        help="run what `sam build` left in DIR (default .aws-sam/build): each function's built folder "
        "and the layer's sluice package, instead of the source tree",
    )
    openapi = commands.add_parser(
        "openapi", help="print the OpenAPI document of the whole HTTP API (commit it as openapi.json)"
    )
    openapi.add_argument("--check", action="store_true", help="exit 1 when openapi.json is stale")
    from sluice.cli.commands import add_commands

    add_commands(commands)
    return parser


def use_build(build_dir: Path) -> Path:
    """Make this process run `sam build`'s output: handler modules from each function's built folder
    (SLUICE_CODE_ROOT, read by the function registry) and sluice's modules from the built layer
    only, so a module the layer lacks fails here as it would on Lambda. sluice.local, which the
    layer leaves out, is already imported and keeps finding its own modules in the source tree (so is
    sluice.cli, whose API commands `sluice dev` never runs).
    Must run before anything of sluice but sluice.local is imported; returns the layer's package."""
    import sluice
    from sluice.local.functions import CODE_ROOT_VARIABLE

    build_dir = build_dir.resolve()
    packages = sorted(build_dir.glob("*/python/sluice/__init__.py"))
    if not packages:
        raise FileNotFoundError(
            f"no built layer with python/sluice under {build_dir}; run `make build` first"
        )
    # sluice.local and sluice.cli (the parser's commands: standard library only) are not in the layer.
    early = sorted(
        m for m in sys.modules if m.startswith("sluice.") and not m.startswith(("sluice.local", "sluice.cli"))
    )
    if early:
        raise RuntimeError(f"{', '.join(early)} already imported from the source tree")
    layer_package = packages[0].parent
    sys.dont_write_bytecode = True  # leave the build as sam built it (Lambda's /opt is read-only)
    sluice.__path__[:] = [str(layer_package)]
    os.environ[CODE_ROOT_VARIABLE] = str(build_dir)
    return layer_package


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(args, "log_level", "WARNING"), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.command == "dev":
        return run_dev(args)
    if args.command == "openapi":
        return run_openapi(args)
    from sluice.cli.commands import run_command

    return run_command(args)


def run_openapi(args: argparse.Namespace) -> int:
    from sluice.local.openapi import COMMITTED_PATH, assemble, committed, render

    logging.getLogger().setLevel(logging.ERROR)  # the areas' loggers must not mix into the document
    document = assemble()
    if args.check:
        if committed() != document:
            print(f"{COMMITTED_PATH.name} is stale: run `sluice openapi > openapi.json`", file=sys.stderr)
            return 1
        return 0
    sys.stdout.write(render(document))
    return 0


def run_dev(args: argparse.Namespace) -> int:
    if args.from_build is not None:
        try:
            layer_package = use_build(args.from_build)
        except (FileNotFoundError, RuntimeError) as exc:
            print(f"sluice dev: cannot run the build: {exc}", file=sys.stderr)
            return 1
        print(
            f"Running the build: handlers from {args.from_build.resolve()}/<Function>/, "
            f"sluice from {layer_package}",
            flush=True,
        )
    from sluice.local.stack import LocalStack, StackOptions

    options = StackOptions(
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        ephemeral=args.ephemeral,
        parameters=dict(args.param),
        log_level=args.log_level,
    )
    try:
        stack = LocalStack(options).start()
    except Exception as exc:
        print(f"sluice dev: could not start the local stack: {exc}", file=sys.stderr)
        return 1
    # uvicorn answers Ctrl-C itself; SIGTERM is turned into the same clean shutdown.
    signal.signal(signal.SIGTERM, lambda *_: signal.raise_signal(signal.SIGINT))
    url = f"http://{args.host}:{args.port}"
    print(
        f"Sluice {__version__} local stack on {url}  (moto at {stack.endpoint}, "
        f"DynamoDB Local at {stack.dynamodb_endpoint})",
        flush=True,
    )
    if stack.created_admin_key:
        print(
            f"Admin API key of project 'default' (shown once, keep it): {stack.created_admin_key}", flush=True
        )
    else:
        print(
            "Admin key: the one in SLUICE_ADMIN_KEY, or the one printed when this data dir was created.",
            flush=True,
        )
    print(
        f"State: {'in memory only' if args.ephemeral else args.data_dir.resolve()}. Ctrl-C stops.", flush=True
    )
    try:
        stack.serve()
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it has already handled gracefully
        pass
    finally:
        stack.stop()
        print(
            "Sluice local stack stopped; state saved."
            if not args.ephemeral
            else "Sluice local stack stopped."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
