"""Sandbox: start the child interpreter, feed it the code, watch the clock and the output caps, read the report."""

from __future__ import annotations

import contextlib
import functools
import json
import marshal
import math
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptless.sandbox.isolation import NAMESPACES, namespace_prefix
from promptless.sandbox.result import RunError, SandboxResult

MAX_REPORT_BYTES = 1_000_000
UNSHARE_SIGNAL_NOTE = "unshare: sigprocmask unblock failed"
PYTHON_FLAGS = ("-I", "-S", "-B", "-u")  # isolated (no env, no user site, no cwd on sys.path), no site, no .pyc


class SandboxUnavailable(RuntimeError):
    """The child interpreter could not be started at all: a problem of the host, not of the code."""


@dataclass(frozen=True)
class Sandbox:
    """Run Python code in a separate, locked-down interpreter process; one fresh process per ``run``.

    Limits: ``timeout_s`` of wall-clock time (then the whole process group is
    killed), ``memory_mb`` of address space, ``cpu_s`` of CPU time (default: the
    timeout, rounded up), ``max_file_mb`` per written file, ``max_open_files``,
    and ``max_output_bytes`` per stream (more output kills the run).
    ``namespaces``: True requires Linux namespaces, False skips them, None
    (default) uses them when this machine allows it.

    Error contract: ``run`` returns a ``SandboxResult`` for everything the code
    does (errors, escape attempts, timeouts, crashes); it raises only
    ``TypeError`` for variables JSON cannot carry and ``SandboxUnavailable``
    when no interpreter can be started.
    """

    timeout_s: float = 10.0
    memory_mb: int = 512
    cpu_s: int | None = None
    max_file_mb: int = 16
    max_open_files: int = 64
    max_output_bytes: int = 64 * 1024
    namespaces: bool | None = None
    python: str = field(default=sys.executable)

    def __post_init__(self) -> None:
        if self.timeout_s <= 0 or self.memory_mb < 64 or self.max_open_files < 8 or self.max_output_bytes < 1:
            raise ValueError(f"sandbox limits out of range: {self}")

    @property
    def isolation(self) -> tuple[str, ...]:
        """The layers a run gets here: always process, rlimits and the audit hook; namespaces when available."""
        return _isolation(self._prefix())

    def _prefix(self) -> tuple[str, ...]:
        if self.namespaces is False:
            return ()
        prefix = namespace_prefix(self.python)
        if self.namespaces and not prefix:
            raise SandboxUnavailable("namespaces=True, but `unshare --user --net --pid` does not work on this machine")
        return prefix

    def rlimits(self) -> dict[str, int]:
        cpu = self.cpu_s if self.cpu_s is not None else math.ceil(self.timeout_s)
        return {
            "RLIMIT_AS": self.memory_mb * 2**20,
            "RLIMIT_CPU": max(1, cpu),
            "RLIMIT_FSIZE": self.max_file_mb * 2**20,
            "RLIMIT_NOFILE": self.max_open_files,
            "RLIMIT_CORE": 0,
            "RLIMIT_NPROC": 0,  # ignored for root; for anyone else a second backstop against fork
        }

    # -- running ----------------------------------------------------------------------------------------
    def run(self, code: str, variables: Mapping[str, Any] | None = None) -> SandboxResult:
        """Run ``code`` with ``variables`` (JSON values) as globals, in a fresh process and working directory."""
        request = self._request(code, variables)
        prefix = self._prefix()
        workdir = os.path.realpath(tempfile.mkdtemp(prefix="promptless-sandbox-"))
        report_r, report_w = os.pipe()
        started = time.perf_counter()
        try:
            payload = marshal.dumps({**request, "workdir": workdir, "report_fd": report_w})
            try:
                process = subprocess.Popen(
                    [*prefix, self.python, *PYTHON_FLAGS, "-c", _child_source()],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    pass_fds=(report_w,),
                    cwd=workdir,
                    env={},
                    start_new_session=True,  # its own process group, so one killpg ends everything it started
                )
            except OSError as error:
                raise SandboxUnavailable(f"cannot start the sandbox interpreter {self.python!r}: {error}") from error
            os.close(report_w)
            report_w = -1
            streams = _Streams(process, report_r, self.max_output_bytes)
            try:
                streams.pump(payload, deadline=started + self.timeout_s)
            finally:
                _kill_group(process)
            return self._result(streams, process.returncode, time.perf_counter() - started, prefix)
        finally:
            os.close(report_r)
            if report_w >= 0:
                os.close(report_w)
            shutil.rmtree(workdir, ignore_errors=True)

    def _request(self, code: str, variables: Mapping[str, Any] | None) -> dict[str, Any]:
        if not isinstance(code, str):
            raise TypeError(f"code must be a str, got {type(code).__name__}")
        variables = dict(variables or {})
        bad = [name for name in variables if not (isinstance(name, str) and name.isidentifier())]
        if bad:
            raise TypeError(f"variable names must be identifiers, got {bad}")
        try:  # plain JSON values only, which marshal carries to the child as they are
            variables = json.loads(json.dumps(variables, allow_nan=True))
        except (TypeError, ValueError) as error:
            raise TypeError(f"sandbox variables must be JSON values: {error}") from None
        return {"code": code, "variables": variables, "rlimits": self.rlimits(), "policy": _policy_source()}

    def _result(
        self, streams: _Streams, returncode: int | None, duration: float, prefix: tuple[str, ...]
    ) -> SandboxResult:
        """Judge the run: what the host saw (deadline, caps, exit) first, then the child's own report."""
        report, violations = streams.report()
        common = {
            "stdout": streams.text("stdout"),
            "stderr": streams.text("stderr"),
            "duration_s": duration,
            "violations": tuple(violations),
            "isolation": _isolation(prefix),
        }
        value: dict[str, Any] = {}
        if streams.timed_out:
            error = RunError("timeout", "Timeout", f"killed after {self.timeout_s:g} s of wall-clock time")
        elif streams.overflow is not None:
            message = f"more than {self.max_output_bytes} bytes on {streams.overflow}; the run was stopped"
            error = RunError("output_limit", "OutputLimitExceeded", message)
        elif report is None:
            error = _no_report(returncode, common["stderr"], bool(prefix))
        else:
            error = _run_error(report["error"]) if isinstance(report.get("error"), Mapping) else None
            if error is None and not report.get("ok"):
                error = RunError("exception", "Error", "the run reported a failure without saying why")
            value = {"value": report.get("value"), "value_repr": report.get("value_repr")}
        if violations and (error is None or error.kind != "violation"):  # also when the code caught the denial
            error = RunError("violation", "SandboxViolation", violations[0], str(error) if error else "")
        return SandboxResult(ok=error is None, error=error, **value, **common)


class _Streams:
    """Feed stdin and drain stdout, stderr and the report pipe together, within a deadline and the caps."""

    def __init__(self, process: subprocess.Popen[bytes], report_fd: int, cap: int) -> None:
        assert process.stdin and process.stdout and process.stderr
        self.process = process
        self.names = {process.stdout.fileno(): "stdout", process.stderr.fileno(): "stderr", report_fd: "report"}
        self.caps = {"stdout": cap, "stderr": cap, "report": MAX_REPORT_BYTES}
        self.data = {name: bytearray() for name in self.caps}
        self.overflow: str | None = None
        self.timed_out = False

    def pump(self, payload: bytes, deadline: float) -> None:
        """Until the child has exited and closed every pipe, the deadline passes, or a cap is exceeded."""
        stdin = self.process.stdin
        assert stdin is not None
        stdin_fd = stdin.fileno()
        pending = memoryview(payload)
        exit_fd = _exit_watch(self.process.pid)
        with selectors.DefaultSelector() as selector:
            for fd in self.names:
                os.set_blocking(fd, False)
                selector.register(fd, selectors.EVENT_READ)
            os.set_blocking(stdin_fd, False)
            selector.register(stdin_fd, selectors.EVENT_WRITE)
            if exit_fd is not None:
                selector.register(exit_fd, selectors.EVENT_READ)
            try:
                while selector.get_map():
                    remaining = deadline - time.perf_counter()
                    if remaining <= 0:
                        self.timed_out = True
                        return
                    for key, _ in selector.select(remaining):
                        if key.fd == stdin_fd:
                            pending = self._feed(selector, stdin, pending)
                        elif key.fd == exit_fd:
                            selector.unregister(exit_fd)  # exited; not reaped, so its group id stays ours
                        elif not self._drain(selector, key.fd):
                            return
            finally:
                if exit_fd is not None:
                    os.close(exit_fd)
        if exit_fd is None:
            self.timed_out = not _wait_unreaped(self.process.pid, deadline)

    def _feed(self, selector: selectors.BaseSelector, stdin: Any, pending: memoryview) -> memoryview:
        try:
            pending = pending[os.write(stdin.fileno(), pending) :]
        except BlockingIOError:
            return pending
        except OSError:  # the child is gone already; its exit status will say why
            pending = pending[len(pending) :]
        if not pending:
            selector.unregister(stdin.fileno())
            stdin.close()
        return pending

    def _drain(self, selector: selectors.BaseSelector, fd: int) -> bool:
        """Read what is there; False once a stream went over its cap."""
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return True
        if not chunk:
            selector.unregister(fd)
            return True
        name = self.names[fd]
        buffer = self.data[name]
        buffer += chunk
        if len(buffer) > self.caps[name]:
            del buffer[self.caps[name] :]
            self.overflow = name
            return False
        return True

    def text(self, name: str) -> str:
        return self.data[name].decode("utf-8", errors="replace")

    def report(self) -> tuple[dict[str, Any] | None, list[str]]:
        """The child's final report (``R <json>``, the last one wins) and the hook's denials (``V <hex>``)."""
        report, violations = None, []
        for line in bytes(self.data["report"]).split(b"\n"):
            tag, _, body = line.partition(b" ")
            try:
                if tag == b"V":
                    violations.append(bytes.fromhex(body.decode("ascii")).decode("utf-8", errors="replace"))
                elif tag == b"R":
                    report = json.loads(body)
            except (ValueError, RecursionError):
                continue  # the code can write to this pipe too; what it cannot do is take a line back
        return (report if isinstance(report, dict) else None), violations


def _isolation(prefix: tuple[str, ...]) -> tuple[str, ...]:
    layers = ("process", "rlimits", "audit-hook")
    return layers + tuple(f"{ns}-namespace" for ns in NAMESPACES) if prefix else layers


def _exit_watch(pid: int) -> int | None:
    """A pidfd that becomes readable when ``pid`` exits (Linux 5.3+), or None where there is none."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _wait_unreaped(pid: int, deadline: float) -> bool:
    """Without pidfds: poll until ``pid`` has exited, leaving it unreaped. False at the deadline."""
    while time.perf_counter() < deadline:
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        time.sleep(0.002)
    return False


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child's process group, then reap it: the leader is still unreaped, so the id is still ours."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def _run_error(error: Mapping[str, Any]) -> RunError:
    kind = error.get("kind")
    known = ("exception", "violation", "timeout", "memory", "output_limit", "crashed")
    return RunError(
        kind if kind in known else "exception",  # type: ignore[arg-type]
        str(error.get("type", "Error")),
        str(error.get("message", "")),
        str(error.get("traceback", "")),
    )


def _no_report(returncode: int | None, stderr: str, namespaced: bool) -> RunError:
    """The process ended without a report: killed by a limit, crashed, or the code ended it early."""
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        how = f"was killed by {name}"
        if -returncode in (signal.SIGXCPU, signal.SIGKILL):
            how += " (the CPU time limit, or memory)"
    elif namespaced and UNSHARE_SIGNAL_NOTE in stderr:  # unshare could not re-raise its child's signal
        how = "was killed by a signal (the CPU time limit, memory, or a crash)"
        stderr = "\n".join(line for line in stderr.splitlines() if UNSHARE_SIGNAL_NOTE not in line)
    else:
        how = f"exited with status {returncode}"
    tail = stderr.strip()[-1500:]
    message = f"the sandboxed process {how} without reporting a result" + (f"; stderr:\n{tail}" if tail else "")
    return RunError("crashed", "SandboxCrash", message)


@functools.cache
def _child_source() -> str:
    return Path(__file__).with_name("child.py").read_text(encoding="utf-8")


@functools.cache
def _policy_source() -> str:
    return Path(__file__).with_name("policy.py").read_text(encoding="utf-8")
