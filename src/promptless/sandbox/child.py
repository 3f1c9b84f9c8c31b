"""The sandbox child's bootstrap: ``python -I -S -B -u -c <this source>``, standard library only.

It reads one request from stdin (code, variables, limits, the kernel layers'
and the policy's code; ``marshal`` format, written by the host), sets the
resource limits, asks the kernel for its layers (``confine.py``: tmpfs quota, no
capabilities, Landlock, seccomp) and says which it got in one line ``L <json>``,
installs the audit hook, runs the code in a fresh globals dict and writes its
report to the report pipe as one line ``R <json>``, then exits at once with
``os._exit``. A denial by the hook is written to the same pipe (``V <hex>``)
and ends the process with ``policy.DENIED_EXIT``; a system call the seccomp
filter forbids ends it with SIGSYS. The code's stdout and stderr go straight to
the host's own pipes, so nothing the code prints can pose as a report; the host
treats the report as the code's word about itself, and judges denials,
timeouts, output caps and crashes by what it observes (the exit status).

Start-up time is most of a run's cost, so this imports only C modules on the
way to running the code (``_ast`` not ``ast``, ``_json`` not ``json``, no
``linecache``); ``traceback`` is imported only when there is an error to show.
"""

import _ast
import _json
import _signal
import builtins
import gc
import marshal
import os
import resource
import sys

FILENAME = "<code>"
MARKER = "is not allowed in the sandbox"  # policy.MARKER
MAX_REPR = 4000
MAX_VALUE_JSON = 64_000
MAX_TRACEBACK = 3000
LAYER_EXIT = 88  # runner.LAYER_EXIT: a required kernel layer could not be set up
KERNEL_LAYERS = ("disk-quota", "no-capabilities", "landlock", "seccomp")  # layers.KERNEL


class CPUTimeExceeded(BaseException):
    """The CPU-time limit's warning signal arrived; a BaseException, so ``except Exception`` does not hide it."""


def _on_sigxcpu(signum, frame):
    raise CPUTimeExceeded("the CPU time limit was reached")


def set_limits(rlimits):
    """Soft = hard, so the code cannot raise them back (the hook denies setrlimit too). CPU is the exception:
    a warning signal at the soft limit becomes an exception in the code; the kernel's SIGKILL follows at hard."""
    for name, value in rlimits.items():
        limit = getattr(resource, name)
        resource.setrlimit(limit, (value, value + 1) if limit == resource.RLIMIT_CPU else (value, value))
    if "RLIMIT_CPU" in rlimits:
        _signal.signal(_signal.SIGXCPU, _on_sigxcpu)


def compile_code(code):
    """The code as a module, and its last line separately when it is an expression (its value is the result)."""
    tree = compile(code, FILENAME, "exec", _ast.PyCF_ONLY_AST)
    last = None
    if tree.body and isinstance(tree.body[-1], _ast.Expr):
        last = _ast.Expression(body=tree.body.pop().value)
    body = compile(tree, FILENAME, "exec")
    return body, (compile(last, FILENAME, "eval") if last is not None else None)


def to_json(value, depth=0):
    """JSON text for plain values (tuples become lists); ValueError for anything else."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    kind = type(value)
    if kind is str:
        return _json.encode_basestring_ascii(value)
    if kind is int:
        return int.__repr__(value)  # ValueError past the int-to-str digit limit
    if kind is float:
        if value != value:
            return "NaN"
        if value in (float("inf"), float("-inf")):
            return "Infinity" if value > 0 else "-Infinity"
        return float.__repr__(value)
    if depth < 20 and kind in (list, tuple):
        return "[" + ", ".join(to_json(item, depth + 1) for item in value) + "]"
    if depth < 20 and kind is dict and all(type(key) is str for key in value):
        items = (f"{_json.encode_basestring_ascii(k)}: {to_json(v, depth + 1)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    raise ValueError("not a JSON value")


def describe_value(value):
    """JSON for (the value itself, or its repr when JSON cannot carry it; the repr), both bounded in size."""
    try:
        text = repr(value)
    except BaseException as error:  # a huge int, a broken __repr__
        text = f"<{type(value).__name__} value: repr failed with {type(error).__name__}>"
    if len(text) > MAX_REPR:
        text = text[: MAX_REPR - 3] + "..."
    shown = _json.encode_basestring_ascii(text)
    try:
        plain = to_json(value)
    except (ValueError, RecursionError):
        plain = shown
    return (plain if len(plain) <= MAX_VALUE_JSON else shown), shown


def describe_error(error, code=""):
    """Kind, type, message and the traceback from the first frame of the user's code on."""
    kind = "exception"
    if isinstance(error, MemoryError):
        kind = "memory"
    elif isinstance(error, CPUTimeExceeded):
        kind = "timeout"
    message = _safe_str(error)
    if type(error) is PermissionError and MARKER in message:
        kind = "violation"
    if kind == "memory" and not message:
        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        message = f"out of memory (the limit is {limit // 2**20} MB of address space)"
    try:
        import linecache
        import traceback

        linecache.cache[FILENAME] = (len(code), None, code.splitlines(True), FILENAME)
        if isinstance(error, SyntaxError):
            lines = traceback.format_exception_only(type(error), error)
        else:  # the code's frames and what they called, not this bootstrap's
            frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename != "<string>"]
            lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames[-8:])]
            lines += traceback.format_exception_only(type(error), error)
        text = "".join(lines)
    except BaseException:
        text = f"{type(error).__name__}: {message}\n"
    if len(text) > MAX_TRACEBACK:
        text = "...\n" + text[-MAX_TRACEBACK:]
    name = "SandboxViolation" if kind == "violation" else type(error).__name__
    return {"kind": kind, "type": name, "message": message, "traceback": text}


def _safe_str(error):
    try:
        return str(error)[:MAX_REPR]
    except BaseException:
        return f"<{type(error).__name__}>"


def run(code, variables, request):
    """Run the code; every outcome becomes a report (JSON text), nothing escapes as an exception."""
    namespace = {"__name__": "__main__", "__builtins__": builtins, **variables}
    value_json = value_repr = "null"
    ok, error = False, None
    try:
        body, last = compile_code(code)
        install_policy(request)
        exec(body, namespace)
        value = eval(last, namespace) if last is not None else None
        if value is None:
            value = namespace.get("answer", namespace.get("result"))
        if value is not None:
            value_json, value_repr = describe_value(value)
        ok = True
    except SystemExit as stop:
        ok = stop.code in (None, 0)
        if not ok:
            error = {"kind": "exception", "type": "SystemExit", "message": str(stop.code), "traceback": ""}
    except MemoryError as exc:
        namespace.clear()  # free what the code held before describing anything
        error = describe_error(exc, code)
    except BaseException as exc:
        error = describe_error(exc, code)
    error_json = to_json(error) if error is not None else "null"
    return f'{{"ok": {to_json(ok)}, "value": {value_json}, "value_repr": {value_repr}, "error": {error_json}}}'


def load_module(name, shipped):
    """Execute a module the host sent: its code object when this is the host's Python, else its source."""
    version, code, source = shipped
    if version != sys.version or code is None:
        code = compile(source, f"<{name}>", "exec")
    module = {"__name__": name, "__builtins__": builtins}
    exec(marshal.loads(code) if type(code) is bytes else code, module)
    return module


def install_policy(request):
    """Build the hook from the policy and install it, keeping no reference to it anywhere."""
    module = load_module("promptless_sandbox_policy", request["policy"])
    sys.addaudithook(module["build_hook"](request["workdir"], sys.path, request["report_fd"]))
    module.clear()


def confine(request):
    """Ask the kernel for its layers, say which were set up (``L`` line), then forget ``_ctypes`` again."""
    layers = request["layers"]
    module = {}
    try:
        module = load_module("promptless_sandbox_confine", request["confine"])
        applied, missing = module["apply"](request["workdir"], layers["quota"], layers["seccomp"], layers["require"])
        line = {"applied": applied, "missing": missing}
    except OSError as error:  # a required layer: refuse to run the code at all
        line = {"applied": [], "missing": {}, "failed": _safe_str(error)}
    except Exception as error:  # no _ctypes, not Linux: no kernel layer at all
        why = f"the kernel layers cannot be set up here: {type(error).__name__}: {_safe_str(error)}"
        line = {"applied": [], "missing": dict.fromkeys(KERNEL_LAYERS, why)}
        if layers["require"]:
            line["failed"] = f"{', '.join(layers['require'])}: {why}"
    module.clear()
    sys.modules.pop("_ctypes", None)
    gc.collect()  # the ctypes classes confine.py defined, so __subclasses__() no longer lists them
    write_line(request["report_fd"], b"L " + to_json(line).encode())
    if "failed" in line:
        os._exit(LAYER_EXIT)


def write_line(fd, data):
    view = memoryview(data + b"\n")
    while view:
        view = view[os.write(fd, view) :]


def main():
    request = marshal.loads(sys.stdin.buffer.read())
    # The report pipe keeps the host's fd number, which is high in a host with many files open;
    # move it to the lowest free one, so the child sees the same fds (below max_open_files)
    # whatever the host holds.
    report_fd = os.dup(request["report_fd"])
    os.close(request["report_fd"])
    request["report_fd"] = report_fd
    try:
        set_limits(request["rlimits"])
        confine(request)
        sys.dont_write_bytecode = True
        os.environ.clear()
        os.environ.update(TMPDIR=request["workdir"], HOME=request["workdir"])
        for name in ("pidfd_open", "mknod", "mkfifo", "chroot"):  # unaudited; best effort, the kernel layers hold
            for module in (os, sys.modules.get("posix")):
                if module is not None and hasattr(module, name):
                    delattr(module, name)
        report = run(request["code"], request["variables"], request)
        _signal.signal(_signal.SIGXCPU, _signal.SIG_IGN)  # the report must not be interrupted
    except BaseException as error:  # a broken request or limit: still answer
        crash = {"kind": "crashed", "type": type(error).__name__, "message": _safe_str(error)}
        report = to_json({"ok": False, "error": crash})
    write_line(report_fd, b"R " + report.encode())
    os._exit(0)


if __name__ == "__main__":
    main()
