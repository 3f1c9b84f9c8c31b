"""A catalogue of attacks on the sandbox, each run twice: as it is, and with the audit hook switched off.

The second mode is the point of the kernel layers: whatever the code does to the
hook inside its own interpreter, Landlock, seccomp, the dropped capabilities and
the namespaces still confine it. Every attack asserts that it failed (the code
never got to say ``escaped``), that the host lives, and that nothing outside the
work dir changed: a canary directory must be byte-for-byte the same, a TCP
listener on 127.0.0.1 and a Unix socket listener must receive no connection, a
canary process must survive.
"""

from __future__ import annotations

import glob
import os
import socket
import subprocess
import sys
import sysconfig
import threading
from pathlib import Path

import pytest

from promptless.sandbox import Sandbox, SandboxResult, runner

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox relies on Linux")

KERNEL_LAYERS = {"landlock", "seccomp", "no-capabilities"}
HOOK_OFF = "def build_hook(*args, **kwargs):\n    return lambda event, args: None\n"


def _fresh_posix() -> str:
    """Code that gets an unaudited, complete ``posix`` module, as ``_imp.create_builtin`` hands it out."""
    return (
        "import sys\nbootstrap = sys.modules['_frozen_importlib']\n"
        "px = bootstrap._imp.create_builtin(bootstrap.ModuleSpec('posix', None, origin='built-in'))\n"
    )


ATTACKS = {
    "read a host file": "answer = 'escaped' if open(canary_file).read() else ''",
    "read /etc/shadow": "answer = 'escaped' if open('/etc/shadow').read(1) is not None else ''",
    "write a host file": "open(canary_dir + '/pwned', 'w').write('x')\nanswer = 'escaped'",
    "os.system": "import os\nos.system('touch ' + canary_dir + '/pwned')\nanswer = 'escaped'",
    "connect to a host Unix socket": (
        "import _socket\ns = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)\n"
        "s.connect(unix_path)\nanswer = 'escaped'"
    ),
    "TCP to 127.0.0.1": (
        "import _socket\ns = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)\n"
        "s.settimeout(1)\ns.connect(('127.0.0.1', tcp_port))\nanswer = 'escaped'"
    ),
    "kill a host process": "import os\nos.kill(victim_pid, 9)\nanswer = 'escaped'",
    "chroot with a fresh posix": _fresh_posix() + "px.chroot('.')\nanswer = 'escaped'",
    "mkfifo outside with a fresh posix": _fresh_posix() + "px.mkfifo(canary_dir + '/fifo')\nanswer = 'escaped'",
    "mknod outside with a fresh posix": (
        _fresh_posix() + "px.mknod(canary_dir + '/node', 0o600 | 0o10000)\nanswer = 'escaped'"
    ),
    "fork with a fresh posix": _fresh_posix() + "if px.fork() == 0:\n    px._exit(0)\nanswer = 'escaped'",
    "ctypes types left in the interpreter call system()": (
        "import _ctypes\nclass I(_ctypes._SimpleCData):\n    _type_ = 'i'\n"
        "class F(_ctypes.CFuncPtr):\n    _flags_ = _ctypes.FUNCFLAG_CDECL\n    _restype_ = I\n"
        "class Libc:\n    _handle = 0\n"
        "F(('system', Libc()))(('touch ' + canary_dir + '/pwned').encode())\nanswer = 'escaped'"
    ),
    "_cffi_backend from site-packages calls system()": (
        "import importlib.machinery, importlib.util\n"
        "loader = importlib.machinery.ExtensionFileLoader('_cffi_backend', cffi_path)\n"
        "b = importlib.util.module_from_spec(importlib.util.spec_from_loader('_cffi_backend', loader))\n"
        "loader.exec_module(b)\nchar_p = b.new_pointer_type(b.new_primitive_type('char'))\n"
        "system = b.load_library(None).load_function(b.new_function_type((char_p,), b.new_primitive_type('int')), "
        "'system')\nsystem(('touch ' + canary_dir + '/pwned').encode())\nanswer = 'escaped'"
    ),
    "clear the hook's state from a caught denial's traceback": (
        "try:\n    open('/etc/passwd')\nexcept PermissionError as error:\n    tb = error.__traceback__\n"
        "    while tb.tb_next:\n        tb = tb.tb_next\n    for value in list(tb.tb_frame.f_locals.values()):\n"
        "        if isinstance(value, (dict, list)):\n            value.clear()\n"
        "open(canary_dir + '/pwned', 'w').write('x')\nanswer = 'escaped'"
    ),
    "rewrite the hook from its frame, caught by a signal handler": (
        "import signal, sys\nfound = []\n"
        "def grab(signum, frame):\n    while frame is not None:\n"
        "        if frame.f_code.co_name == 'hook':\n            found.append(frame.f_locals)\n"
        "            for value in frame.f_locals.values():\n"
        "                if hasattr(value, '__code__'):\n"
        "                    value.__code__ = (lambda *a, **k: None).__code__\n"
        "                if isinstance(value, (dict, list, set)):\n                    value.clear()\n"
        "            frame.f_locals['_home'] = '/'\n"
        "        frame = frame.f_back\n"
        "signal.signal(signal.SIGALRM, grab)\nsignal.setitimer(signal.ITIMER_REAL, 0.0005, 0.0005)\n"
        "for i in range(200000):\n    open('inside', 'w').close()\n    if found:\n        break\n"
        "signal.setitimer(signal.ITIMER_REAL, 0)\nprint('found the hook frame' if found else 'no hook frame')\n"
        "open(canary_dir + '/pwned', 'w').write('x')\nanswer = 'escaped'"
    ),
    "hide a denial by pointing the report fd elsewhere": (
        "import os, sys\nfd = sys._getframe(1).f_locals['request']['report_fd']\n"
        'os.write(fd, b\'R {"ok": true, "value": "all fine", "value_repr": "all fine", "error": null}\\n\')\n'
        "os.dup2(os.open('/dev/null', os.O_WRONLY), fd)\n"
        "try:\n    answer = 'escaped' if open(canary_file).read() else ''\nexcept OSError:\n    pass"
    ),
}

CAUGHT = {"hide a denial by pointing the report fd elsewhere"}  # catches the kernel's EACCES and forges its report


# -- canaries -------------------------------------------------------------------------------------------------
class Listener:
    """A listening socket that counts the connections it receives."""

    def __init__(self, family: int, address: object) -> None:
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.bind(address)
        self.socket.listen(8)
        self.socket.settimeout(0.05)
        self.connections = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.socket.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.socket.close()


def snapshot(root: Path) -> dict[str, tuple[int, int, bytes]]:
    state = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        content = path.read_bytes() if path.is_file() and not path.is_socket() else b""
        state[str(path)] = (info.st_mode, info.st_mtime_ns, content)
    return state


@pytest.fixture(scope="module")
def canaries(tmp_path_factory):
    root = tmp_path_factory.mktemp("canary")
    (root / "secret.txt").write_text("the host's own file")
    (root / "sub").mkdir()
    (root / "sub" / "deeper.txt").write_text("also the host's")
    tcp = Listener(socket.AF_INET, ("127.0.0.1", 0))
    unix = Listener(socket.AF_UNIX, str(root / "host.sock"))
    victim = subprocess.Popen(["sleep", "600"])
    values = {
        "canary_dir": str(root),
        "canary_file": str(root / "secret.txt"),
        "tcp_port": tcp.socket.getsockname()[1],
        "unix_path": str(root / "host.sock"),
        "victim_pid": victim.pid,
        "cffi_path": _cffi_backend_path(),
    }
    try:
        yield values, lambda: (snapshot(root), tcp.connections, unix.connections, victim.poll())
    finally:
        tcp.close()
        unix.close()
        victim.kill()
        victim.wait()


def _cffi_backend_path() -> str | None:
    """A native module outside the standard library that sits under its directory (site-packages), if any."""
    for base in {sysconfig.get_paths()["stdlib"], sysconfig.get_paths(vars={"base": sys.base_prefix})["stdlib"]}:
        found = glob.glob(os.path.join(base, "site-packages", "_cffi_backend*.so"))
        if found:
            return found[0]
    return None


@pytest.fixture
def hook_off(monkeypatch):
    """The child runs with an audit hook that allows everything: only the kernel layers are left."""
    shipped = runner._shipped

    def without_policy(filename: str) -> tuple[str, bytes | None, str]:
        if filename == "policy.py":
            return (sys.version, None, HOOK_OFF)
        return shipped(filename)

    monkeypatch.setattr(runner, "_shipped", without_policy)


def kernel_layers_missing(sandbox: Sandbox) -> set[str]:
    return KERNEL_LAYERS - set(sandbox.isolation)


def attack(canaries, code: str, sandbox: Sandbox) -> SandboxResult:
    values, observe = canaries
    before = observe()
    result = sandbox.run(code, values)
    after = observe()
    assert result.value != "escaped", result
    assert after[0] == before[0], "something outside the work dir changed"
    assert after[1:3] == (0, 0), "a host listener received a connection"
    assert after[3] is None, "the canary process was killed"
    assert threading.main_thread().is_alive() and os.getpid() > 0
    return result


# -- the catalogue --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("namespaces", [None, False], ids=["default", "no-namespaces"])
@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_fails_with_the_hook_and_is_reported(canaries, name, namespaces):
    if "cffi" in name and canaries[0]["cffi_path"] is None:
        pytest.skip("no _cffi_backend under this Python's standard library directory")
    result = attack(canaries, ATTACKS[name], Sandbox(timeout_s=5, namespaces=namespaces))
    assert not result.ok and result.error is not None
    assert result.error.kind == "violation" and result.violations, result.error
    assert "is not allowed in the sandbox" in result.error.message
    if "signal handler" in name:  # the handler did hold the hook's running frame, and could change nothing
        assert "found the hook frame" in result.stdout


@pytest.mark.parametrize("namespaces", [None, False], ids=["default", "no-namespaces"])
@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_fails_with_the_hook_switched_off(canaries, hook_off, name, namespaces):
    sandbox = Sandbox(timeout_s=5, namespaces=namespaces)
    missing = kernel_layers_missing(sandbox)
    if missing:
        pytest.skip(f"kernel layers not available here: {sorted(missing)}")
    if "cffi" in name and canaries[0]["cffi_path"] is None:
        pytest.skip("no _cffi_backend under this Python's standard library directory")
    result = attack(canaries, ATTACKS[name], sandbox)
    if name not in CAUGHT:  # the kernel said no: EACCES/EPERM in the code, or SIGSYS for the whole process
        assert not result.ok, result


def test_the_hook_switched_off_really_is_off(hook_off):
    """The control for the catalogue above: with the hook off, what the kernel allows does work."""
    result = Sandbox(timeout_s=5).run("import _socket, ctypes\nopen('mine.txt', 'w').write('x')\n42")
    assert result.ok and result.value == 42, result.error


def test_a_forbidden_system_call_is_reported_even_when_nothing_else_is(hook_off):
    if kernel_layers_missing(Sandbox()):
        pytest.skip("kernel layers not available here")
    result = Sandbox(timeout_s=5).run(_fresh_posix() + "px.chroot('.')")
    assert result.error.kind == "violation" and "seccomp" in result.error.message


# -- the host's side: cleanup and disk ------------------------------------------------------------------------
DEEP_TREE = (
    "import os\nfd = os.open('.', os.O_RDONLY)\n"
    "for i in range(3000):\n    os.mkdir('d', dir_fd=fd)\n    inner = os.open('d', os.O_RDONLY, dir_fd=fd)\n"
    "    os.close(fd)\n    fd = inner\n"
    "answer = 3000"
)


@pytest.mark.parametrize("namespaces", [None, False], ids=["default", "no-namespaces"])
def test_a_3000_deep_directory_chain_is_cleaned_up(monkeypatch, namespaces):
    made = []
    real_mkdtemp = runner.tempfile.mkdtemp

    def recording_mkdtemp(*args, **kwargs):
        made.append(real_mkdtemp(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(runner.tempfile, "mkdtemp", recording_mkdtemp)
    result = Sandbox(timeout_s=20, max_open_files=16, namespaces=namespaces).run(DEEP_TREE)
    assert isinstance(result, SandboxResult)
    assert result.ok and result.value == 3000, result.error
    assert made and not os.path.lexists(made[0])


def test_cleanup_survives_a_deep_unreadable_tree_on_the_host(tmp_path):
    from promptless.sandbox.cleanup import remove_tree

    root = tmp_path / "work"
    root.mkdir()
    fd = os.open(root, os.O_RDONLY)
    for level in range(3000):
        os.mkdir("d", dir_fd=fd)
        if level % 500 == 0:
            (Path(f"/proc/self/fd/{fd}") / f"f{level}").write_text("x")
        inner = os.open("d", os.O_RDONLY, dir_fd=fd)
        if level % 700 == 0:
            os.chmod("d", 0, dir_fd=fd)
        os.close(fd)
        fd = inner
    os.close(fd)
    assert remove_tree(str(root)) and not root.exists()


def test_the_disk_quota_stops_a_disk_fill():
    sandbox = Sandbox(timeout_s=10, max_disk_mb=32)
    if "disk-quota" not in sandbox.isolation:
        pytest.skip("no mount namespace here, so no tmpfs quota")
    code = (
        "written = 0\nchunk = b'x' * 2**20\ntry:\n    for i in range(1000):\n"
        "        with open(f'f{i % 50}_{i}', 'wb') as f:\n            for _ in range(8):\n"
        "                f.write(chunk)\n                written += len(chunk)\n"
        "except OSError as error:\n    stopped = str(error)\nanswer = [written, stopped]"
    )
    before = os.statvfs("/tmp")
    result = sandbox.run(code)
    assert result.ok, result.error
    written, stopped = result.value
    assert written <= 32 * 2**20 and "No space left" in stopped
    after = os.statvfs("/tmp")
    assert (before.f_bavail - after.f_bavail) * before.f_frsize < 256 * 2**20


def test_require_names_the_missing_layer(monkeypatch):
    from promptless.sandbox import SandboxUnavailable

    with pytest.raises(ValueError, match="unknown sandbox layer"):
        Sandbox(require={"magic"})
    with pytest.raises(ValueError, match="contradicts"):
        Sandbox(namespaces=False, require={"disk-quota"})
    monkeypatch.setattr(runner, "_kernel_layers", lambda python, prefix: ((), {"landlock": "not in this kernel"}))
    with pytest.raises(SandboxUnavailable, match="landlock: not in this kernel"):
        Sandbox(require={"landlock"}).run("1")


def test_a_missing_layer_is_warned_about_once(monkeypatch, caplog):
    from promptless.sandbox import layers

    monkeypatch.setattr(layers, "_warned", set())
    with caplog.at_level("WARNING", logger="promptless.sandbox"):
        layers.warn_missing({"landlock": "not in this kernel"})
        layers.warn_missing({"landlock": "not in this kernel"})
    assert [r.getMessage().count("'landlock'") for r in caplog.records] == [2]


def test_without_kernel_layers_the_sandbox_still_works_and_says_so(monkeypatch):
    """A host where ``_ctypes`` or the system calls are missing: runs go on with the other layers, named as such;
    a run that requires a kernel layer is refused even when the probe thought it was there."""
    from promptless.sandbox import SandboxUnavailable

    shipped = runner._shipped
    broken = (sys.version, None, "import _no_such_module\n")
    monkeypatch.setattr(runner, "_shipped", lambda name: broken if name == "confine.py" else shipped(name))
    result = Sandbox(timeout_s=5).run("6 * 7")
    assert result.ok and result.value == 42
    assert not {"landlock", "seccomp", "no-capabilities", "disk-quota"} & set(result.isolation)
    assert result.isolation[:3] == ("process", "rlimits", "audit-hook")
    denied = Sandbox(timeout_s=5).run("open('/etc/passwd')")
    assert denied.error.kind == "violation"  # the hook still holds
    monkeypatch.setattr(runner, "_kernel_layers", lambda python, prefix: (("landlock", "seccomp"), {}))
    with pytest.raises(SandboxUnavailable, match=r"seccomp.*_no_such_module"):
        Sandbox(timeout_s=5, require={"seccomp"}).run("1")


def test_the_catalogue_holds_in_a_host_with_many_files_open(canaries):
    """The report pipe gets a high fd number in such a host (a long test run, a server); the child must not care."""
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(100)]  # above the child's max_open_files (64)
    try:
        name = "hide a denial by pointing the report fd elsewhere"
        result = attack(canaries, ATTACKS[name], Sandbox(timeout_s=5))
        assert result.error is not None and result.error.kind == "violation", result.error
        assert Sandbox(timeout_s=5).run("import os\nos.dup2(os.open('mine.txt', os.O_CREAT | os.O_WRONLY), 9)\n1").ok
    finally:
        for fd in held:
            os.close(fd)
