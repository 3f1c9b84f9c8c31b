"""The audit-hook policy the sandbox child installs before it runs any user code.

This file runs *inside the child*: the host sends it along with the code, and the
child executes it with only the standard library (``python -I -S``). It is
importable in the host too, for its constants and for tests.

``sys.addaudithook`` hooks cannot be removed once added. The policy allows:
  * reading, writing and listing inside the working directory;
  * reading and listing the standard library (so ``import json`` works) and a few
    harmless device files; native code only from the standard library's own
    extension modules, by name, from its ``lib-dynload`` directory;
and denies network access, starting or signalling processes, links, changing
resource limits, sub-interpreters (they would run without this hook), heap
introspection and tracers, every ``ctypes`` operation, and importing modules
whose purpose is one of those (ctypes, subprocess, socket...).

A denial ends the run: the hook writes it to the report pipe and exits the
process with ``DENIED_EXIT`` at once, so no code can catch it, and the host
knows of it from the exit status even when the code redirected the pipe.

The hook holds no state the code could reach and change. It is one function
with no closure and no helper functions (a frame's locals, reachable from a
signal handler or a traceback, would hand out function objects whose
``__code__`` or closure cells can be rewritten); everything it uses is a
default argument holding an immutable value or a C function (the frame's
locals are a snapshot: changing them changes nothing); it reads no global or
builtin name; it calls no method the code could define (paths must be exact
``str``, ``bytes`` or file descriptors). Path checks are lexical and exact
because the working directory can never hold a link, and a relative path may
not climb above its directory with ``..``. It is still a layer inside the
interpreter it polices: the kernel layers (``confine.py``) hold without it.
"""

from __future__ import annotations

import posix
import sys

TYPE_CHECKING = False  # not ``typing.TYPE_CHECKING``: the child should not pay for importing typing
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

BLOCKED_MODULES = frozenset(
    {
        # native code and memory access
        "ctypes",
        "_ctypes",
        "_ctypes_test",
        "_testcapi",
        "_testinternalcapi",
        "_testmultiphase",
        "_testbuffer",
        "_testimportmultiple",
        "_testsinglephase",
        "_testclinic",
        "_xxtestfuzz",
        "xxlimited",
        "xxlimited_35",
        # processes, shared memory and sub-interpreters (not audited all the way down)
        "_posixsubprocess",
        "subprocess",
        "multiprocessing",
        "_multiprocessing",
        "_posixshmem",
        "_xxsubinterpreters",
        "_xxinterpchannels",
        # network and the host's logs
        "socket",
        "_socket",
        "ssl",
        "_ssl",
        "syslog",
        # C code that opens files without an audited ``open``
        "sqlite3",
        "_sqlite3",
        "dbm",
        "_dbm",
        "_gdbm",
        "readline",
        "ossaudiodev",
        "curses",
        "_curses",
        "_curses_panel",
        "tkinter",
        "_tkinter",
        "pwd",
        "grp",
        "spwd",
        "nis",
        # loaded before the hook: a fresh copy would bring back what the child removed
        "_signal",
        "posix",
        "_imp",
    }
)

_PROCESSES = "starting processes"
_NETWORK = "network access"
_SIGNALS = "signalling processes"
_LINKS = "creating links"
_LIMITS = "changing resource limits"
_INTROSPECTION = "heap introspection and tracers could reach the sandbox's own checks"
DENIED_EVENTS: dict[str, str] = {
    "os.system": _PROCESSES,
    "os.fork": _PROCESSES,
    "os.forkpty": _PROCESSES,
    "os.posix_spawn": _PROCESSES,
    "os.spawn": _PROCESSES,
    "os.exec": _PROCESSES,
    "os.startfile": _PROCESSES,
    "subprocess.Popen": _PROCESSES,
    "pty.spawn": _PROCESSES,
    "os.kill": _SIGNALS,
    "os.killpg": _SIGNALS,
    "os.link": _LINKS,
    "os.symlink": _LINKS,
    "resource.setrlimit": _LIMITS,
    "resource.prlimit": _LIMITS,
    "cpython.PyInterpreterState_New": "sub-interpreters, which would run without this policy",
    "gc.get_objects": _INTROSPECTION,
    "gc.get_referrers": _INTROSPECTION,
    "gc.get_referents": _INTROSPECTION,
    "sys.settrace": _INTROSPECTION,
    "sys.setprofile": _INTROSPECTION,
}
DENIED_PREFIXES: dict[str, str] = {
    "socket.": _NETWORK,
    "urllib.": _NETWORK,
    "http.client.": _NETWORK,
    "ftplib.": _NETWORK,
    "smtplib.": _NETWORK,
    "poplib.": _NETWORK,
    "imaplib.": _NETWORK,
    "nntplib.": _NETWORK,
    "telnetlib.": _NETWORK,
    "webbrowser.": _PROCESSES,
    "ctypes.": "native code",
    "sqlite3.": "databases, which open files behind this policy's back",
    "syslog.": "logging to the host",
}
# Path events: which arguments are paths, and what the event does with them.
PATH_EVENTS: dict[str, tuple[str, tuple[int, ...]]] = {
    "os.listdir": ("list", (0,)),
    "os.scandir": ("list", (0,)),
    "os.chdir": ("chdir", (0,)),
    "os.getxattr": ("read", (0,)),
    "os.listxattr": ("read", (0,)),
    "os.rename": ("write", (0, 1)),
    **{
        event: ("write", (0,))
        for event in (
            "os.mkdir",
            "os.remove",
            "os.rmdir",
            "os.truncate",
            "os.chmod",
            "os.chown",
            "os.utime",
            "os.chflags",
            "os.lchflags",
            "os.setxattr",
            "os.removexattr",
        )
    },
}
# Device files that leak nothing: readable (and /dev/null writable) from anywhere.
DEVICES_READ = frozenset({"/dev/null", "/dev/zero", "/dev/random", "/dev/urandom"})
DEVICES_WRITE = frozenset({"/dev/null"})
EXTRA_READ_ROOTS = ("/usr/share/zoneinfo",)
WRITE_FLAGS = posix.O_WRONLY | posix.O_RDWR | posix.O_APPEND | posix.O_CREAT | posix.O_TRUNC
MARKER = "is not allowed in the sandbox"
DENIED_EXIT = 87  # the child's exit status after a denial; runner.py reads it
CODE_FILENAME = "<code>"  # child.FILENAME: the frames a denial's line number is taken from


def native_modules() -> frozenset[str]:
    """Extension modules the code may load from a file: the standard library's, minus the blocked ones."""
    return frozenset(getattr(sys, "stdlib_module_names", ())) - BLOCKED_MODULES


def _normalize(text: str) -> str:
    parts: list[str] = []
    for part in text.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part and part != ".":
            parts.append(part)
    return "/" + "/".join(parts)


def build_hook(
    workdir: str,
    read_roots: Iterable[str],
    report_fd: int,
    suffixes: Iterable[str] | None = None,
) -> Callable[[str, tuple[Any, ...]], None]:
    """The audit hook for ``workdir``. Install it with ``sys.addaudithook`` and drop every reference to it.

    ``read_roots`` are the readable directories (the child's ``sys.path``); the
    one named ``lib-dynload`` is where extension modules may come from, with one
    of ``suffixes`` (default: this interpreter's).
    """
    if suffixes is None:
        import _imp

        suffixes = _imp.extension_suffixes()
    roots = []
    for root in (*read_roots, *EXTRA_READ_ROOTS):
        if type(root) is str and root.startswith("/") and _normalize(root) != "/":
            roots.append(_normalize(root))
    native_files = frozenset(
        f"{root}/{name}{suffix}"
        for root in roots
        if root.rsplit("/", 1)[-1] == "lib-dynload"
        for name in native_modules()
        for suffix in suffixes
    )
    return _make_hook(_normalize(workdir), tuple(roots), native_files, report_fd)


def _make_hook(home: str, roots: tuple[str, ...], native_files: frozenset[str], report_fd: int) -> Any:
    """The hook itself; see the module docstring for why it is written as one function with default arguments."""

    def hook(  # one function on purpose: helpers would be reachable state
        event: str,
        args: tuple[Any, ...],
        *,
        _home: str = home,
        _roots: tuple[str, ...] = roots,
        _native: frozenset[str] = native_files,
        _fd: int = report_fd,
        _blocked: frozenset[str] = BLOCKED_MODULES,
        _denied: tuple[tuple[str, str], ...] = tuple(DENIED_EVENTS.items()),
        _denied_names: frozenset[str] = frozenset(DENIED_EVENTS),
        _prefixes: tuple[tuple[str, str], ...] = tuple(DENIED_PREFIXES.items()),
        _prefix_tuple: tuple[str, ...] = tuple(DENIED_PREFIXES),
        _path_events: tuple[tuple[str, str, tuple[int, ...]], ...] = tuple(
            (name, access, positions) for name, (access, positions) in PATH_EVENTS.items()
        ),
        _path_names: frozenset[str] = frozenset(PATH_EVENTS),
        _devices_read: frozenset[str] = DEVICES_READ,
        _devices_write: frozenset[str] = DEVICES_WRITE,
        _write_flags: int = WRITE_FLAGS,
        _marker: str = MARKER,
        _code_file: str = CODE_FILENAME,
        _exit_status: int = DENIED_EXIT,
        _encoding: str = sys.getfilesystemencoding(),
        _type: Any = type,
        _str: Any = str,
        _bytes: Any = bytes,
        _int: Any = int,
        _tuple: Any = tuple,
        _len: Any = len,
        _repr: Any = repr,
        _base_exception: Any = BaseException,
        _getcwd: Any = posix.getcwd,
        _write: Any = posix.write,
        _exit: Any = posix._exit,
        _getframe: Any = sys._getframe,
        _decode: Any = bytes.decode,
        _encode: Any = str.encode,
        _hex: Any = bytes.hex,
        _split: Any = str.split,
        _rsplit: Any = str.rsplit,
        _join: Any = str.join,
        _startswith: Any = str.startswith,
    ) -> None:
        if _type(event) is not _str:
            return  # only sys.audit() from the code can raise such an event, and it does nothing
        what = why = None
        try:
            # 1. Which paths this event touches, and how: (path, access, what) with access in read/write/list/chdir.
            checks: tuple[tuple[Any, str, str], ...] = ()
            if event == "open":
                path = args[0] if _len(args) > 0 else None
                mode = args[1] if _len(args) > 1 else None
                flags = args[2] if _len(args) > 2 else None
                if _type(flags) is _int:
                    writing = (flags & _write_flags) != 0
                else:
                    writing = _type(mode) is not _str or "w" in mode or "a" in mode or "x" in mode or "+" in mode
                shown_mode = "os.open" if mode is None else _repr(mode) if _type(mode) is _str else "<object>"
                if _type(path) is not _int:
                    access = "os.open" if mode is None else "write" if writing else "read"
                    checks = ((path, access, f"open({{}}, {shown_mode})"),)
            elif event == "import":
                name = args[0] if _len(args) > 0 else None
                filename = args[1] if _len(args) > 1 else None
                if _type(name) is not _str:
                    what, why = "import <object>", "module names must be str"
                else:
                    for part in _split(name, "."):
                        if part in _blocked:
                            what, why = f"import {name}", "this module gives access to what the sandbox denies"
                            break
                    if why is None and filename is not None:
                        checks = ((filename, "native:" + name, f"import {name} from {{}}"),)
            elif event in _path_names:
                for known, access, positions in _path_events:
                    if known == event:
                        for position in positions:
                            checks += ((args[position] if _len(args) > position else None, access, event + "({})"),)
            elif event in _denied_names:
                first = args[0] if _type(args) is _tuple and _len(args) > 0 else None
                shown = "" if first is None else _repr(first) if _type(first) in (_str, _bytes, _int) else "<object>"
                for known, reason in _denied:
                    if known == event:
                        what, why = f"{event}({shown[:120]})", reason
            elif _startswith(event, _prefix_tuple):
                for prefix, reason in _prefixes:
                    if why is None and _startswith(event, prefix):
                        what, why = event, reason

            # 2. Each path: exact str or bytes, resolved lexically, then judged.
            for path, access, template in checks:
                if why is not None:
                    break
                kind = _type(path)
                shown = _repr(path) if kind in (_str, _bytes, _int) else "<object>"
                what = template.replace("{}", shown if _len(shown) <= 120 else shown[:117] + "...")
                if kind is _int:
                    if _startswith(access, "native:"):
                        why = "native code from a file descriptor"
                    continue  # an already open file descriptor
                if path is None:
                    path = "."
                elif kind is _bytes:
                    path = _decode(path, _encoding, "surrogateescape")
                elif kind is not _str:
                    why = "paths must be str or bytes: a path object could name another file when it is used"
                    break
                if "\0" in path:
                    why = "a NUL byte in a path"
                    break
                absolute = _startswith(path, "/")
                where = ""
                climbed = False
                for text in (path,) if absolute else (path, _getcwd() + "/" + path):
                    kept: tuple[str, ...] = ()
                    climbed = False
                    for part in _split(text, "/"):
                        if part == "..":
                            if kept:
                                kept = kept[:-1]
                            else:
                                climbed = True
                        elif part and part != ".":
                            kept += (part,)
                    where = "/" + _join("/", kept)
                    if not absolute and text is path and climbed and access not in ("list", "chdir"):
                        why = "a relative path that climbs above its directory with '..'"
                        break
                if why is not None:
                    break
                home_inside = where == _home or _startswith(where, _home + "/")
                if _startswith(access, "native:"):
                    if where not in _native or _rsplit(where, "/", 1)[-1].split(".")[0] != access[7:]:
                        why = "native code from outside the standard library (only its own extension modules)"
                    continue
                if home_inside:
                    continue
                if access == "os.open":  # a directory fd from outside could anchor dir_fd= paths
                    if where not in (_devices_write if writing else _devices_read):
                        why = "os.open outside the working directory"
                    continue
                if access == "write":
                    if where not in _devices_write:
                        why = f"{'writing' if event == 'open' else 'changing files'} outside the working directory"
                    continue
                if access == "chdir":
                    why = "leaving the working directory"
                    continue
                readable = where in _devices_read
                for root in _roots:
                    if where == root or _startswith(where, root + "/"):
                        readable = True
                if not readable:
                    why = f"{'listing' if access == 'list' else 'reading'} outside the working directory"
        except _base_exception as error:  # fail closed: what cannot be checked is denied
            what, why = f"{event}(...)", f"its arguments could not be checked: {_type(error).__name__}"
        if why is None:
            return
        # 3. A denial: say where in the code, write it to the report pipe, end the process.
        try:
            line = ""
            frame = _getframe(1)
            depth = 0
            while frame is not None and depth < 64:
                filename = frame.f_code.co_filename
                if _type(filename) is _str and filename == _code_file:
                    line = f" at line {frame.f_lineno} of the code"
                    break
                frame = frame.f_back
                depth += 1
            frame = None
            message = f"{what} {_marker} ({why}){line}"
            _write(_fd, b"V " + _encode(_hex(_encode(message, "utf-8", "replace")), "ascii") + b"\n")
        finally:
            _exit(_exit_status)

    return hook
