"""Kernel layers for the sandbox child: a tmpfs work dir, no capabilities, Landlock and a seccomp filter.

This file runs *inside the child* before the audit hook and the code (the host
sends its source), and in the host to detect what the kernel offers. It uses
only ``posix`` and ``_ctypes`` (raw system calls; the ``ctypes`` package would
cost three more milliseconds per run). What it sets up is enforced by the
kernel, so it holds even if the code switches the audit hook off:

* ``mount_tmpfs``: the work dir becomes a size- and inode-limited tmpfs (only in
  the child's own mount namespace): the disk quota.
* ``drop_capabilities``: root in the namespace (or on the host) keeps its uid but
  no capability (no chroot, mknod, raw sockets, killing other users' processes).
* ``landlock``: the work dir read-write without execute (no devices, FIFOs,
  sockets or symlinks), the interpreter and system libraries read-only, nothing
  else; no TCP bind or connect; no signals or abstract Unix sockets beyond the
  child's own domain.
* ``seccomp``: the filter built by ``seccomp_filter.py`` (host side), which kills
  the process on system calls no sandboxed program needs (new processes, exec,
  sockets, chroot, mknod, mount, namespaces, ptrace, bpf, keyrings, io_uring...).
"""

from __future__ import annotations

import _ctypes
import posix
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

# System call numbers (Landlock's are the same on every architecture).
SYSCALLS = {
    "x86_64": {"prctl": 157, "mount": 165, "capset": 126, "seccomp": 317},
    "aarch64": {"prctl": 167, "mount": 40, "capset": 91, "seccomp": 277},
}
LANDLOCK_CREATE_RULESET, LANDLOCK_ADD_RULE, LANDLOCK_RESTRICT_SELF = 444, 445, 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
PR_SET_NO_NEW_PRIVS = 38
SECCOMP_SET_MODE_FILTER = 1
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
LINUX_CAPABILITY_VERSION_3 = 0x20080522

# Landlock file-system rights, by the ABI version that introduced them.
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_REMOVE_DIR, FS_REMOVE_FILE, FS_MAKE_CHAR, FS_MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
FS_MAKE_REG, FS_MAKE_SOCK, FS_MAKE_FIFO, FS_MAKE_BLOCK, FS_MAKE_SYM = 1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12
FS_REFER, FS_TRUNCATE, FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
FS_ABI1 = (1 << 13) - 1
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1

READ = FS_READ_FILE | FS_READ_DIR
WORKDIR = READ | FS_WRITE_FILE | FS_REMOVE_DIR | FS_REMOVE_FILE | FS_MAKE_DIR | FS_MAKE_REG | FS_REFER | FS_TRUNCATE
FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV  # all a rule on a file may hold
SYSTEM_READ_ROOTS = ("/usr/lib", "/usr/lib64", "/lib", "/lib64", "/usr/share/zoneinfo")
SYSTEM_READ_FILES = ("/etc/ld.so.cache", "/etc/localtime", "/dev/zero", "/dev/random", "/dev/urandom")
SYSTEM_WRITE_FILES = ("/dev/null",)


class LayerError(OSError):
    """A kernel layer could not be set up; ``layer`` names it."""

    def __init__(self, layer: str, message: str) -> None:
        super().__init__(f"{layer}: {message}")
        self.layer = layer


class _Long(_ctypes._SimpleCData):
    _type_ = "l"


class _Syscall(_ctypes.CFuncPtr):
    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = _Long


class _Char(_ctypes._SimpleCData):
    _type_ = "c"


class _Libc:
    _handle = _ctypes.dlopen(None, 2 | 256)  # the process itself: libc is already loaded (RTLD_NOW | RTLD_GLOBAL)


_syscall = _Syscall(("syscall", _Libc))
_get_errno = _ctypes.get_errno


def machine() -> str:
    return posix.uname().machine


def buffer(data: bytes) -> object:
    """A C buffer holding ``data`` (kept alive by the caller while the kernel reads it)."""

    class Buffer(_ctypes.Array):
        _type_ = _Char
        _length_ = max(1, len(data))

    return Buffer.from_buffer_copy(data.ljust(max(1, len(data)), b"\0"))


def syscall(layer: str, number: int, *args: object) -> int:
    """``syscall(number, *args)``; ints are passed as C longs. LayerError naming ``layer`` on failure."""
    result = _syscall(_Long(number), *(_Long(a) if type(a) is int else a for a in args))
    if result < 0:
        errno = _get_errno()
        raise LayerError(layer, f"system call {number} failed: {posix.strerror(errno)} (errno {errno})")
    return result


def numbers() -> dict[str, int]:
    table = SYSCALLS.get(machine())
    if table is None:
        raise LayerError("seccomp", f"no system call table for the {machine()} architecture")
    return table


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, or 0 when Landlock is not there or not enabled."""
    try:
        return syscall("landlock", LANDLOCK_CREATE_RULESET, None, 0, LANDLOCK_CREATE_RULESET_VERSION)
    except LayerError:
        return 0


def no_new_privs() -> None:
    syscall("no-new-privs", numbers()["prctl"], PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def mount_tmpfs(workdir: str, size_bytes: int, inodes: int) -> None:
    """Mount a tmpfs over ``workdir`` (needs a mount namespace) and move into it."""
    options = f"size={size_bytes},nr_inodes={inodes},mode=0700".encode()
    source, target, opts = buffer(b"tmpfs\0"), buffer(workdir.encode() + b"\0"), buffer(options + b"\0")
    kind = source
    syscall("disk-quota", numbers()["mount"], source, target, kind, MS_NOSUID | MS_NODEV | MS_NOEXEC, opts)
    posix.chdir(workdir)  # the old cwd is the directory underneath


def drop_capabilities() -> None:
    """Empty effective, permitted and inheritable sets (the process never execs, so they stay empty)."""
    header = buffer(LINUX_CAPABILITY_VERSION_3.to_bytes(4, "little") + b"\0" * 4)
    data = buffer(b"\0" * 24)
    syscall("no-capabilities", numbers()["capset"], header, data)


def landlock(abi: int, workdir: str, read_roots: Iterable[str]) -> None:
    """Restrict this process (and threads started later) to ``workdir`` read-write and ``read_roots`` read-only."""
    if abi < 1:
        raise LayerError("landlock", "this kernel has no Landlock (or it is not enabled)")
    fs = FS_ABI1 | (FS_REFER if abi >= 2 else 0) | (FS_TRUNCATE if abi >= 3 else 0) | (FS_IOCTL_DEV if abi >= 5 else 0)
    net = NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    attr = buffer((fs.to_bytes(8, "little") + net.to_bytes(8, "little") + scoped.to_bytes(8, "little"))[:size])
    no_new_privs()  # without it, restricting oneself needs CAP_SYS_ADMIN
    ruleset = syscall("landlock", LANDLOCK_CREATE_RULESET, attr, size, 0)
    try:
        rules = [(workdir, WORKDIR & fs, True)]
        rules += [(path, READ, False) for path in read_roots]
        rules += [(path, FS_READ_FILE, False) for path in SYSTEM_READ_FILES]
        rules += [(path, FS_READ_FILE | FS_WRITE_FILE, False) for path in SYSTEM_WRITE_FILES]
        for path, access, required in rules:
            _add_rule(ruleset, path, access, required)
        syscall("landlock", LANDLOCK_RESTRICT_SELF, ruleset, 0)
    finally:
        posix.close(ruleset)


def _add_rule(ruleset: int, path: str, access: int, required: bool) -> None:
    try:
        fd = posix.open(path, posix.O_PATH | posix.O_CLOEXEC)
    except OSError:
        if required:
            raise
        return
    try:
        if not _is_dir(fd):
            access &= FILE_RIGHTS
        attr = buffer(access.to_bytes(8, "little") + fd.to_bytes(4, "little", signed=True))
        syscall("landlock", LANDLOCK_ADD_RULE, ruleset, LANDLOCK_RULE_PATH_BENEATH, attr, 0)
    finally:
        posix.close(fd)


def _is_dir(fd: int) -> bool:
    return (posix.fstat(fd).st_mode & 0o170000) == 0o040000


def read_roots(extra: Iterable[str] = ()) -> list[str]:
    """What the interpreter may read: its standard library, every file it has mapped, the system libraries."""
    roots = [path for path in sys.path if path.startswith("/")]
    try:
        fd = posix.open("/proc/self/maps", posix.O_RDONLY)
        try:
            chunks = []
            while chunk := posix.read(fd, 65536):
                chunks.append(chunk)
        finally:
            posix.close(fd)
        for line in b"".join(chunks).decode("utf-8", "replace").splitlines():
            fields = line.split(None, 5)
            if len(fields) == 6 and fields[5].startswith("/"):
                roots.append(fields[5].rsplit("/", 1)[0] or "/")
    except OSError:
        pass
    roots += [*SYSTEM_READ_ROOTS, *extra]
    return sorted({root for root in roots if root not in ("/", "")})


def seccomp(program: bytes) -> None:
    """Install a classic-BPF seccomp filter (``program``: packed ``struct sock_filter`` entries)."""
    no_new_privs()
    filters = buffer(program)
    address = _ctypes.addressof(filters)
    fprog = buffer((len(program) // 8).to_bytes(2, "little") + b"\0" * 6 + address.to_bytes(8, "little"))
    syscall("seccomp", numbers()["seccomp"], SECCOMP_SET_MODE_FILTER, 0, fprog)


def apply(
    workdir: str, quota: tuple[int, int] | None, program: bytes | None, required: Iterable[str]
) -> tuple[list[str], dict[str, str]]:
    """Set up every layer this kernel allows, in the order they need: (applied layers, {missing layer: why}).

    ``quota`` is (bytes, inodes) for the tmpfs, or None without a mount namespace;
    ``program`` the seccomp filter, or None where there is none for this machine.
    A layer in ``required`` that fails raises LayerError.
    """
    applied: list[str] = []
    missing: dict[str, str] = {}
    steps = (
        ("disk-quota", None if quota is None else lambda: mount_tmpfs(workdir, *quota), "no mount namespace"),
        ("no-capabilities", drop_capabilities, ""),
        ("landlock", lambda: landlock(landlock_abi(), workdir, read_roots()), ""),
        ("seccomp", None if program is None else lambda: seccomp(program), f"no filter for {machine()}"),
    )
    for layer, step, absent in steps:
        try:
            if step is None:
                raise LayerError(layer, absent)
            step()
            applied.append(layer)
        except Exception as error:  # an old kernel, a missing constant: this layer is missing, the others may work
            if layer in required:
                raise LayerError(layer, str(error)) from None
            missing[layer] = str(error)
    return applied, missing
