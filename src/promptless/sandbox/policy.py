"""The audit-hook policy the sandbox child installs before it runs any user code.

This file runs *inside the child*: the host sends its source along with the code,
and the child executes it with only the standard library (``python -I -S``). It
is importable in the host too, for its constants and for tests.

``sys.addaudithook`` hooks cannot be removed once added, and a hook that raises
stops the audited operation. The policy allows:
  * reading, writing and listing inside the working directory;
  * reading and listing the standard library (so ``import json`` works) and a few
    harmless device files;
and denies network access, starting or signalling processes, links, changing
resource limits, sub-interpreters (they would run without this hook), heap
introspection and tracers, loading native code from outside the standard library,
and importing modules whose purpose is one of those (ctypes, subprocess, socket...).

The hook is sealed against the code it polices: ``build_hook`` binds everything
it uses (builtins, ``posix.getcwd``, the limits) as closure constants, so later
changes to modules, builtins or globals do not reach it; nothing refers to it
once installed; it calls no user-defined method (paths must be exact ``str``,
``bytes`` or file descriptors: a path object could answer differently at the
check and at the use). Path checks are lexical and exact because the working
directory can never hold a link, and a relative path may not climb above its
directory with ``..`` (so a directory descriptor cannot anchor an escape).
It is still a policy layer: the process boundary, the resource limits and the
namespaces are the backstop.
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
MAX_RECORDED = 20
MARKER = "is not allowed in the sandbox"


def build_hook(workdir: str, read_roots: Iterable[str], report_fd: int) -> Callable[[str, tuple[Any, ...]], None]:
    """The audit hook for ``workdir``. Install it with ``sys.addaudithook`` and drop every reference to it.

    A denial raises ``PermissionError`` (so code that copes with OSError copes)
    with a message containing ``MARKER``, and is written at once to ``report_fd``
    as a line ``V <hex of the message>``: a pipe is append-only, so a denial the
    code catches, or state it tampers with later, cannot un-report it.
    """
    # Everything the hook touches is bound here, once: builtins, C functions, immutable data.
    type_, str_, bytes_, int_, tuple_, len_, repr_ = type, str, bytes, int, tuple, len, repr
    denied_error, base_exception = PermissionError, BaseException
    getcwd = posix.getcwd
    decode = bytes.decode
    fs_encoding = sys.getfilesystemencoding()
    blocked = BLOCKED_MODULES
    denied_events = dict(DENIED_EVENTS)
    denied_prefixes = tuple(DENIED_PREFIXES.items())
    prefix_tuple = tuple(DENIED_PREFIXES)
    path_events = dict(PATH_EVENTS)
    devices_read, devices_write = DEVICES_READ, DEVICES_WRITE
    write_flags, max_recorded, marker = WRITE_FLAGS, MAX_RECORDED, MARKER
    write, encode, to_hex = posix.write, str.encode, bytes.hex
    recorded = 0

    def normalize(text: str) -> tuple[str, bool]:
        """Collapse ``.``, ``..`` and repeated slashes; also say whether ``..`` went above the start."""
        parts: list[str] = []
        climbed = False
        for part in text.split("/"):
            if part == "" or part == ".":
                continue
            if part == "..":
                if parts:
                    parts.pop()
                else:
                    climbed = True
                continue
            parts.append(part)
        return "/" + "/".join(parts), climbed

    home, _ = normalize(workdir)
    roots_list = []
    for root in (*read_roots, *EXTRA_READ_ROOTS):
        if type_(root) is str_ and root.startswith("/"):
            normal, _ = normalize(root)
            if normal != "/":
                roots_list.append(normal)
    roots = tuple_(roots_list)

    def show(value: Any) -> str:
        """A value for a message, without calling any method the code could have defined."""
        kind = type_(value)
        if kind is str_ or kind is bytes_ or kind is int_:
            text = repr_(value)
            return text if len_(text) <= 120 else text[:117] + "..."
        return "<object>"

    def deny(what: str, why: str) -> None:
        nonlocal recorded
        message = f"{what} {marker} ({why})"
        if recorded < max_recorded:
            recorded += 1
            try:  # noqa: SIM105 - contextlib would be looked up at call time
                write(report_fd, b"V " + encode(to_hex(encode(message, "utf-8", "replace")), "ascii") + b"\n")
            except base_exception:  # the code closed the pipe: the denial still stands
                pass
        raise denied_error(message)

    def resolve(path: Any, what: str, climbing_ok: bool) -> str | None:
        """The absolute path ``path`` names, or None for a file descriptor. Lexical and exact here."""
        kind = type_(path)
        if kind is int_:
            return None
        if path is None:
            path = "."
        elif kind is bytes_:
            path = decode(path, fs_encoding, "surrogateescape")
        elif kind is not str_:
            deny(what, "paths must be str or bytes: a path object could name another file when it is used")
        if "\0" in path:
            deny(what, "a NUL byte in a path")
        if path.startswith("/"):
            return normalize(path)[0]
        relative, climbed = normalize(path)
        if climbed and not climbing_ok:
            deny(what, "a relative path that climbs above its directory with '..'")
        return normalize(getcwd() + relative)[0]

    def inside(path: str, root: str) -> bool:
        return path == root or path.startswith(root + "/")

    def readable(path: str) -> bool:
        if path in devices_read or inside(path, home):
            return True
        for root in roots:  # noqa: SIM110 - any() would be looked up at call time
            if inside(path, root):
                return True
        return False

    def check_open(args: tuple[Any, ...]) -> None:
        path = args[0] if len_(args) > 0 else None
        mode = args[1] if len_(args) > 1 else None
        flags = args[2] if len_(args) > 2 else None
        if type_(path) is int_:
            return  # an already open file descriptor
        what = f"open({show(path)}, {show(mode) if mode is not None else 'os.open'})"
        if type_(flags) is int_:
            writing = (flags & write_flags) != 0
        else:
            writing = type_(mode) is not str_ or "w" in mode or "a" in mode or "x" in mode or "+" in mode
        where = resolve(path, what, False)
        if where is None or inside(where, home) or where in (devices_write if writing else devices_read):
            return
        if mode is None:  # os.open: a directory fd from outside could anchor dir_fd= paths
            deny(what, "os.open outside the working directory")
        if writing:
            deny(what, "writing outside the working directory")
        if not readable(where):
            deny(what, "reading outside the working directory")

    def check_import(args: tuple[Any, ...]) -> None:
        name = args[0] if len_(args) > 0 else None
        filename = args[1] if len_(args) > 1 else None
        if type_(name) is not str_:
            deny("import <object>", "module names must be str")
        for part in name.split("."):
            if part in blocked:
                deny(f"import {name}", "this module gives access to what the sandbox denies")
        if filename is None:
            return
        where = resolve(filename, f"import {name}", False)
        if where is None:
            deny(f"import {name}", "native code from a file descriptor")
        if where.rsplit("/", 1)[-1].split(".")[0] in blocked:
            deny(f"import {name} from {show(filename)}", "this module gives access to what the sandbox denies")
        for root in roots:
            if inside(where, root):
                return
        deny(f"import {name} from {show(filename)}", "native code from outside the standard library")

    def check_path(event: str, access: str, positions: tuple[int, ...], args: tuple[Any, ...]) -> None:
        for position in positions:
            path = args[position] if len_(args) > position else None
            what = f"{event}({show(path)})"
            where = resolve(path, what, access == "list" or access == "chdir")
            if where is None or inside(where, home):
                continue
            if access == "chdir":
                deny(what, "leaving the working directory")
            if access == "write":
                if where not in devices_write:
                    deny(what, "changing files outside the working directory")
            elif not readable(where):
                deny(what, f"{'listing' if access == 'list' else 'reading'} outside the working directory")

    def hook(event: str, args: tuple[Any, ...]) -> None:
        try:
            if event == "open":
                check_open(args)
            elif event == "import":
                check_import(args)
            elif event in path_events:
                access, positions = path_events[event]
                check_path(event, access, positions, args)
            elif event in denied_events:
                first = show(args[0]) if type_(args) is tuple_ and len_(args) > 0 else ""
                deny(f"{event}({first})", denied_events[event])
            elif event.startswith(prefix_tuple):
                for prefix, reason in denied_prefixes:
                    if event.startswith(prefix):
                        deny(event, reason)
        except denied_error as error:
            if type_(error) is denied_error and len_(error.args) == 1 and marker in str_(error.args[0]):
                raise
            deny(f"{event}(...)", "its arguments could not be checked")  # fail closed
        except base_exception:
            deny(f"{event}(...)", "its arguments could not be checked")

    return hook
