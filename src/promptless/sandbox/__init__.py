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
* **Namespaces** (Linux, when ``unshare --user --net --pid`` works here; detected
  once): no network interface, no view of host processes, and every process
  the code could start dies with it. ``SandboxResult.isolation`` says whether
  they were in force.
* **Audit hook** (``sys.addaudithook``, cannot be removed), sealed so the code
  cannot reach or redirect it: denies sockets, starting or signalling processes,
  files outside the working directory (the standard library is readable), links,
  changing limits, sub-interpreters, heap introspection, and imports of ctypes,
  subprocess, socket and similar modules. Every denial is reported, even one the
  code catches. See ``policy.py``.

``Sandbox.run`` returns a ``SandboxResult`` for everything the code does; only a
host that cannot start an interpreter raises (``SandboxUnavailable``).

Known limits. The audit hook is a policy layer inside the same interpreter as
the code: crafted bytecode (``code.replace``, ``marshal``) can corrupt that
interpreter, and unaudited calls still work (``os.stat`` reveals that a host
file exists and its size; ``_imp.create_builtin`` hands out fresh copies of
builtin modules). The backstop is what the operating system enforces: the
process boundary, the resource limits and, where available, the namespaces
(no network, no host processes). Files are *not* isolated by the operating
system: the child runs as the host's user (root here), so code that gets past
the hook can read and write what that user can; without namespaces it also
keeps that user's privileges towards devices and host processes
(``Sandbox(namespaces=True)`` refuses to run without them). Disk use inside the
working directory is bounded only by the per-file limit times the time limit.
"""

from promptless.sandbox.layers import SandboxUnavailable
from promptless.sandbox.policy import BLOCKED_MODULES
from promptless.sandbox.result import ErrorKind, RunError, SandboxResult
from promptless.sandbox.runner import Sandbox

__all__ = ["BLOCKED_MODULES", "ErrorKind", "RunError", "Sandbox", "SandboxResult", "SandboxUnavailable"]
