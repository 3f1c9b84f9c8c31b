"""The seccomp filter the sandbox child installs: a classic-BPF program built here, in the host.

Why a hand-built filter: it needs nothing installed (libseccomp's Python binding
is not on PyPI as a wheel), the program is short enough to read, and it is
enforced by the kernel even if the code inside the child switches the audit
hook off. Any system call below that no sandboxed program needs kills the whole
process (``SECCOMP_RET_KILL_PROCESS``): the host sees ``SIGSYS`` and reports a
violation the code cannot hide. Threads are allowed (``clone`` with
``CLONE_THREAD``; ``clone3`` answers ``ENOSYS`` so the C library falls back to
``clone``, whose flags a filter can read); new processes are not.

Only x86_64 has a table here (the architecture this was tested on); elsewhere
``build`` returns None and the sandbox says the layer is missing.
"""

from __future__ import annotations

import platform

RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
RET_ALLOW = 0x7FFF0000
ENOSYS = 38
CLONE_THREAD = 0x00010000
AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000

# BPF opcodes (linux/bpf_common.h).
LD_W_ABS = 0x20
JEQ_K = 0x15
JGE_K = 0x35
JSET_K = 0x45
RET_K = 0x06
# struct seccomp_data offsets: nr, arch, instruction_pointer, args[6].
NR, ARCH, ARG0_LOW = 0, 4, 16

DENIED_X86_64: dict[str, int] = {
    # new processes and programs
    "fork": 57,
    "vfork": 58,
    "execve": 59,
    "execveat": 322,
    # the network, and sockets of any family (a host Unix socket file included)
    "socket": 41,
    "socketpair": 53,
    # the file system's shape and special files
    "chroot": 161,
    "pivot_root": 155,
    "mount": 165,
    "umount2": 166,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "mount_setattr": 442,
    "mknod": 133,
    "mknodat": 259,
    "open_by_handle_at": 304,
    "name_to_handle_at": 303,
    "quotactl": 179,
    "acct": 163,
    "swapon": 167,
    "swapoff": 168,
    # namespaces, other processes' memory and descriptors
    "unshare": 272,
    "setns": 308,
    "ptrace": 101,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "pidfd_getfd": 438,
    "kcmp": 312,
    # kernel interfaces with a history of escapes
    "bpf": 321,
    "perf_event_open": 298,
    "userfaultfd": 323,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "keyctl": 250,
    "add_key": 248,
    "request_key": 249,
    "fanotify_init": 300,
    "personality": 135,
    "uselib": 134,
    # the machine itself
    "init_module": 175,
    "finit_module": 313,
    "delete_module": 176,
    "kexec_load": 246,
    "kexec_file_load": 320,
    "reboot": 169,
    "iopl": 172,
    "ioperm": 173,
    "settimeofday": 164,
    "clock_settime": 227,
    "clock_adjtime": 305,
    "adjtimex": 159,
    "sethostname": 170,
    "setdomainname": 171,
    "syslog": 103,
    "vhangup": 153,
    "lookup_dcookie": 212,
}
CLONE_X86_64, CLONE3_X86_64 = 56, 435


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return code.to_bytes(2, "little") + bytes((jt, jf)) + k.to_bytes(4, "little")


def build(machine: str | None = None) -> bytes | None:
    """The filter as packed ``struct sock_filter`` entries, or None where there is no table for this machine."""
    if (machine or platform.machine()) != "x86_64":
        return None
    denied = sorted(set(DENIED_X86_64.values()))
    program = [
        _insn(LD_W_ABS, 0, 0, ARCH),
        _insn(JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        _insn(RET_K, 0, 0, RET_KILL_PROCESS),
        _insn(LD_W_ABS, 0, 0, NR),
        _insn(JGE_K, 0, 1, X32_SYSCALL_BIT),  # x32 numbers alias the x86_64 ones
        _insn(RET_K, 0, 0, RET_KILL_PROCESS),
        _insn(JEQ_K, 0, 1, CLONE3_X86_64),
        _insn(RET_K, 0, 0, RET_ERRNO | ENOSYS),
        _insn(JEQ_K, 0, 4, CLONE_X86_64),
        _insn(LD_W_ABS, 0, 0, ARG0_LOW),
        _insn(JSET_K, 1, 0, CLONE_THREAD),
        _insn(RET_K, 0, 0, RET_KILL_PROCESS),
        _insn(RET_K, 0, 0, RET_ALLOW),
    ]
    # Each denied number: "nr == k ? kill : next"; the accumulator still holds nr here.
    for number in denied:
        program.append(_insn(JEQ_K, 0, 1, number))
        program.append(_insn(RET_K, 0, 0, RET_KILL_PROCESS))
    program.append(_insn(RET_K, 0, 0, RET_ALLOW))
    return b"".join(program)
