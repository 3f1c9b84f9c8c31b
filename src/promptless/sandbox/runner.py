"""Sandbox: start the child interpreter, feed it the code, watch the clock and the output caps, read the report."""

from __future__ import annotations

import contextlib
import functools
import json
import marshal
import math
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptless.sandbox import seccomp_filter
from promptless.sandbox.cleanup import remove_tree
from promptless.sandbox.isolation import NAMESPACES, namespace_prefix
from promptless.sandbox.layers import (
    ALWAYS,
    KERNEL,
    SandboxUnavailable,
    normalize_required,
    refuse_missing,
    warn_missing,
)
from promptless.sandbox.policy import DENIED_EXIT, MARKER
from promptless.sandbox.result import RunError, SandboxResult

MAX_REPORT_BYTES = 1_000_000
UNSHARE_SIGNAL_NOTE = "unshare: sigprocmask unblock failed"
PYTHON_FLAGS = ("-I", "-S", "-B", "-u")  # isolated (no env, no user site, no cwd on sys.path), no site, no .pyc
LAYER_EXIT = 88  # child.LAYER_EXIT
TMPFS_INODES = 16_384
SECCOMP_KILLED = (
    f"a system call {MARKER} (starting a process, a socket, chroot, mknod, mount, ptrace...): "
    "the kernel's seccomp filter ended the process"
)
REPORT_LOST = f"an operation {MARKER}; the run was ended, and the code kept its report from arriving"

__all__ = ["Sandbox", "SandboxUnavailable"]


@dataclass(frozen=True)
class Sandbox:
    """Run Python code in a separate, locked-down interpreter process; one fresh process per ``run``.

    Limits: ``timeout_s`` of wall-clock time (then the whole process group is
    killed), ``memory_mb`` of address space, ``cpu_s`` of CPU time (default: the
    timeout, rounded up), ``max_file_mb`` per written file, ``max_disk_mb`` for
    the whole work dir (a tmpfs, where a mount namespace is available),
    ``max_open_files``, and ``max_output_bytes`` per stream (more output kills the run).
    ``namespaces``: True requires Linux namespaces, False skips them, None
    (default) uses them when this machine allows it. ``require``: layer names
    (``namespaces``, ``landlock``, ``seccomp``, ``no-capabilities``,
    ``disk-quota``) without which ``run`` refuses to run at all.

    Error contract: ``run`` returns a ``SandboxResult`` for everything the code
    does (errors, escape attempts, timeouts, crashes); it raises only
    ``TypeError`` for variables JSON cannot carry and ``SandboxUnavailable``
    when no interpreter can be started or a required layer is missing here.
    """

    timeout_s: float = 10.0
    memory_mb: int = 512
    cpu_s: int | None = None
    max_file_mb: int = 16
    max_open_files: int = 64
    max_output_bytes: int = 64 * 1024
    namespaces: bool | None = None
    python: str = field(default=sys.executable)
    max_disk_mb: int = 64
    require: Iterable[str] = frozenset()

    def __post_init__(self) -> None:
        if self.timeout_s <= 0 or self.memory_mb < 64 or self.max_open_files < 8 or self.max_output_bytes < 1:
            raise ValueError(f"sandbox limits out of range: {self}")
        if self.max_disk_mb < 1:
            raise ValueError(f"max_disk_mb must be at least 1, got {self.max_disk_mb}")
        required = normalize_required(self.require)
        if self.namespaces is False and required & {"namespaces", "disk-quota"}:
            raise ValueError(f"namespaces=False contradicts require={sorted(required)}")
        object.__setattr__(self, "require", required)

    @property
    def isolation(self) -> tuple[str, ...]:
        """The layers a run gets here (found by one trivial run per interpreter and setting, then cached)."""
        prefix = self._prefix()
        applied, _ = _kernel_layers(self.python, prefix)
        return _isolation(prefix, applied)

    def _prefix(self) -> tuple[str, ...]:
        if self.namespaces is False:
            return ()
        prefix = namespace_prefix(self.python)
        if (self.namespaces or "namespaces" in self.require) and not prefix:
            refuse_missing(frozenset({"namespaces"}), {"namespaces": _NO_NAMESPACES})
        if not prefix:
            warn_missing({"namespaces": _NO_NAMESPACES})
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
        required = frozenset(self.require)
        if required & set(KERNEL):  # say so before starting anything, naming what is missing
            refuse_missing(required, _kernel_layers(self.python, prefix)[1])
        streams, returncode, duration = self._launch(request, prefix, required)
        layers = streams.layers()
        if "failed" in layers:
            raise SandboxUnavailable(f"a required sandbox layer could not be set up: {layers['failed']}")
        warn_missing(layers.get("missing", {}))
        return self._result(streams, returncode, duration, _isolation(prefix, layers.get("applied", ())))

    def _launch(
        self, request: dict[str, Any], prefix: tuple[str, ...], required: frozenset[str]
    ) -> tuple[_Streams, int | None, float]:
        """Start the child in a fresh work dir, feed it, watch it until it ends, remove the work dir."""
        workdir = os.path.realpath(tempfile.mkdtemp(prefix="promptless-sandbox-"))
        quota = (self.max_disk_mb * 2**20, TMPFS_INODES) if "--mount" in prefix else None
        layers = {"quota": quota, "seccomp": seccomp_filter.build(), "require": sorted(required & set(KERNEL))}
        report_r, report_w = os.pipe()
        started = time.perf_counter()
        try:
            payload = marshal.dumps({**request, "workdir": workdir, "report_fd": report_w, "layers": layers})
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
            return streams, process.returncode, time.perf_counter() - started
        finally:
            os.close(report_r)
            if report_w >= 0:
                os.close(report_w)
            remove_tree(workdir)

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
        return {
            "code": code,
            "variables": variables,
            "rlimits": self.rlimits(),
            "policy": _shipped("policy.py"),
            "confine": _shipped("confine.py"),
        }

    def _result(
        self, streams: _Streams, returncode: int | None, duration: float, isolation: tuple[str, ...]
    ) -> SandboxResult:
        """Judge the run: what the host saw (deadline, caps, exit status) first, then the child's own report."""
        report, violations = streams.report()
        common = {
            "stdout": streams.text("stdout"),
            "stderr": streams.text("stderr"),
            "duration_s": duration,
            "isolation": isolation,
        }
        value: dict[str, Any] = {}
        if streams.timed_out:
            error = RunError("timeout", "Timeout", f"killed after {self.timeout_s:g} s of wall-clock time")
        elif streams.overflow is not None:
            message = f"more than {self.max_output_bytes} bytes on {streams.overflow}; the run was stopped"
            error = RunError("output_limit", "OutputLimitExceeded", message)
        elif _killed_by_seccomp(returncode, common["stderr"], bool(isolation and "seccomp" in isolation)):
            violations = [*violations, SECCOMP_KILLED]
            error = None
        elif returncode == DENIED_EXIT:  # the hook ends the process after a denial, whatever the code did
            violations = violations or [REPORT_LOST]
            error = None
        elif report is None:
            error = _no_report(returncode, common["stderr"], "user-namespace" in isolation)
        else:
            error = _run_error(report["error"]) if isinstance(report.get("error"), Mapping) else None
            if error is None and not report.get("ok"):
                error = RunError("exception", "Error", "the run reported a failure without saying why")
            value = {"value": report.get("value"), "value_repr": report.get("value_repr")}
        if violations and (error is None or error.kind != "violation"):  # also when the code caught the denial
            error = RunError("violation", "SandboxViolation", violations[0], str(error) if error else "")
        return SandboxResult(ok=error is None, error=error, violations=tuple(violations), **value, **common)


_NO_NAMESPACES = "`unshare --user --net --pid --ipc --mount` does not work on this machine"


@functools.cache
def _kernel_layers(python: str, prefix: tuple[str, ...]) -> tuple[tuple[str, ...], dict[str, str]]:
    """The kernel layers a child gets here, as (applied, {missing: why}), from one trivial run."""
    sandbox = Sandbox(python=python, namespaces=bool(prefix), timeout_s=10)
    streams, _, _ = sandbox._launch(sandbox._request("None", None), prefix, frozenset())
    layers = streams.layers()
    if "applied" not in layers:
        why = "the probe run did not say (stderr: " + streams.text("stderr")[-300:] + ")"
        missing = dict.fromkeys(KERNEL, why)
        return (), missing
    warn_missing(layers["missing"])
    return tuple(layers["applied"]), dict(layers["missing"])


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

    def layers(self) -> dict[str, Any]:
        """The child's first ``L`` line: which kernel layers it set up. Written before the code runs, so it is first."""
        for line in bytes(self.data["report"]).split(b"\n"):
            tag, _, body = line.partition(b" ")
            if tag == b"L":
                with contextlib.suppress(ValueError, RecursionError):
                    layers = json.loads(body)
                    if isinstance(layers, dict):
                        return layers
                return {}
        return {}

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


def _isolation(prefix: tuple[str, ...], applied: Iterable[str]) -> tuple[str, ...]:
    namespaces = tuple(f"{ns}-namespace" for ns in NAMESPACES) if prefix else ()
    return ALWAYS + namespaces + tuple(layer for layer in KERNEL if layer in applied)


def _killed_by_seccomp(returncode: int | None, stderr: str, seccomp: bool) -> bool:
    """SIGSYS: the filter's ``SECCOMP_RET_KILL_PROCESS`` (unshare passes the signal on as its own)."""
    return seccomp and returncode == -signal.SIGSYS


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
def _shipped(filename: str) -> tuple[str, bytes, str]:
    """A module the child executes: (this Python's version, its marshalled code object, its source).

    The child uses the code object when it runs the same Python (no compile per run), else compiles the source.
    """
    source = Path(__file__).with_name(filename).read_text(encoding="utf-8")
    code = compile(source, f"<sandbox-{filename}>", "exec", dont_inherit=True)
    return sys.version, marshal.dumps(code), source
