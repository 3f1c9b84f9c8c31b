"""Isolated execution of LM-written Python: ``Sandbox().run(code) -> SandboxResult``.

Why a separate interpreter process. ``exec`` in the host shares its memory, files,
sockets, threads and fate: one ``while True`` or ``os.system`` and the host is
gone. Deno + Pyodide (DSPy's choice) isolates well but needs a JS runtime and a
WebAssembly CPython download, with a cold start of seconds. A fresh
``python -I -S`` is already installed, starts in tens of milliseconds, and gets
its isolation from the operating system:

* **Process boundary**: an empty environment, a throwaway working directory
  (removed afterwards), its own session; whatever the code does, the host
  process lives on and reads a report from a pipe of its own (stdout and
  stderr are separate pipes, so printing cannot forge a report).
* **Resource limits** (set in the child before the code runs; it cannot raise them):
  address space (``memory_mb``), CPU seconds, file size, open files, no core
  dumps; plus a wall-clock timeout after which the host SIGKILLs the whole
  process group, and output caps enforced by the host.
* **Namespaces** (Linux, when ``unshare --user --net --pid --ipc --mount`` works
  here; detected once): no network interface, no view of host processes, every
  process the code could start dies with it, and the work dir is a tmpfs of
  ``max_disk_mb`` (the disk quota).
* **Kernel layers** set up in the child before the code runs (``confine.py``),
  enforced by the kernel whatever the code does to its own interpreter: no
  capabilities; Landlock (the work dir read-write without execute, the
  interpreter and system libraries read-only, nothing else; no TCP; signals and
  abstract Unix sockets only within the sandbox); a seccomp filter that kills
  the process on new processes, exec, sockets, chroot, mknod, mount,
  namespaces, ptrace, bpf, keyrings, io_uring and the like (``seccomp_filter.py``).
* **Audit hook** (``sys.addaudithook``, cannot be removed), with no state the
  code can reach (``policy.py``): denies sockets, starting or signalling
  processes, files outside the working directory (the standard library is
  readable), links, changing limits, sub-interpreters, heap introspection,
  ctypes, native code other than the standard library's own extension modules,
  and imports of subprocess, socket and similar modules. A denial ends the run
  at once with a distinctive exit status, so it is reported even if the code
  redirected its report pipe; a seccomp kill is reported from ``SIGSYS``.

``SandboxResult.isolation`` names the layers in force for a run. A layer this
machine lacks is logged once per process (logger ``promptless.sandbox``), and
``Sandbox(require={"landlock", "seccomp", "namespaces", ...})`` refuses to run
without it (``SandboxUnavailable`` naming the layer). ``Sandbox.run`` returns a
``SandboxResult`` for everything the code does; only a host that cannot start
an interpreter, or lacks a required layer, raises. The work dir is removed by an
iterative walk that survives any tree the code leaves (``cleanup.py``).

Known limits. Inside the child the code can still corrupt its own interpreter
(crafted bytecode, or the ctypes types that stay loaded after the kernel layers
were set up; every ctypes call and symbol lookup is denied by the hook, but
union and pointer tricks need neither), and so switch the hook off or forge its
own report of success and value: what it can then do is what the kernel layers
allow, and a denial by Landlock is an ordinary ``PermissionError`` the host does
not see. ``os.stat`` reveals that a host file exists and its size. Landlock
lets the child read the system library directories (``/usr/lib``...) and the
interpreter's installation, site-packages included. The seccomp filter has a
table for x86_64 only; elsewhere that layer is reported missing. Without a
mount namespace there is no disk quota (only the per-file limit), and without
namespaces the child runs as the host's user (root here), without capabilities
but with that user's file ownership, confined by Landlock.
"""

from promptless.sandbox.layers import SandboxUnavailable
from promptless.sandbox.policy import BLOCKED_MODULES
from promptless.sandbox.result import ErrorKind, RunError, SandboxResult
from promptless.sandbox.runner import Sandbox

__all__ = ["BLOCKED_MODULES", "ErrorKind", "RunError", "Sandbox", "SandboxResult", "SandboxUnavailable"]
