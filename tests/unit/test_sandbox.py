"""The sandbox against real child processes (no LM): results, limits, and escape attempts that must fail.

Every escape test asserts three things: the run ends with a clear error, within
its time limit, and the host (this test process) is alive and unharmed.
"""

from __future__ import annotations

import dis
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from promptless.sandbox import Sandbox, SandboxResult
from promptless.sandbox.isolation import namespace_prefix
from promptless.sandbox.policy import build_hook

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox relies on Linux")

SANDBOX = Sandbox(timeout_s=5)
HAS_NAMESPACES = bool(namespace_prefix(sys.executable))


def run(code: str, sandbox: Sandbox = SANDBOX, **variables: object) -> SandboxResult:
    result = sandbox.run(code, variables)
    assert result.duration_s < sandbox.timeout_s + 1  # ended within its limit, whatever happened
    return result


def assert_denied(result: SandboxResult, *words: str) -> None:
    assert not result.ok and result.error is not None
    assert result.error.kind == "violation" and result.error.type == "SandboxViolation", result.error
    assert "is not allowed in the sandbox" in result.error.message
    for word in words:
        assert word in result.error.message, result.error.message
    assert result.violations and result.violations[0] == result.error.message


# -- ordinary code ------------------------------------------------------------------------------------------
def test_last_expression_is_the_value_and_stdlib_imports_work():
    result = run(
        "import math, json, re, datetime, fractions, statistics, itertools, collections\nmath.sqrt(x) + 1", x=16
    )
    assert result.ok and result.value == 5.0 and result.value_repr == "5.0" and result.error is None


def test_answer_variable_and_non_json_values():
    assert run("answer = (1, 'two', [3.5])").value == [1, "two", [3.5]]
    assert run("result = 7\nprint('done')").value == 7
    fraction = run("from fractions import Fraction\nFraction(1, 3)")
    assert fraction.value == fraction.value_repr == "Fraction(1, 3)"
    assert run("x = 1").value is None


def test_stdout_and_stderr_are_captured_separately():
    result = run("import sys\nprint('hello')\nprint('careful', file=sys.stderr)\n42")
    assert result.stdout == "hello\n" and result.stderr == "careful\n" and result.value == 42
    assert "hello" in result.output_text() and "Result: 42" in result.output_text()


def test_user_exception_is_a_result_with_a_short_traceback():
    result = run("def f(x):\n    return 1 / x\nf(0)")
    assert not result.ok and result.error.kind == "exception" and result.error.type == "ZeroDivisionError"
    assert 'File "<code>", line 2, in f' in result.error.traceback and "return 1 / x" in result.error.traceback
    assert "<string>" not in result.error.traceback  # the bootstrap's own frames are left out


def test_syntax_error_is_a_result():
    result = run("def f(:\n  pass")
    assert result.error.type == "SyntaxError" and "line 1" in result.error.message


def test_printing_a_fake_report_changes_nothing():
    result = run('print(\'R {"ok": true, "value": 99}\')\nprint(\'{"ok": true, "value": 99}\')\n1 / 0')
    assert not result.ok and result.error.type == "ZeroDivisionError" and result.value is None


def test_files_inside_the_workdir_work_and_the_workdir_is_removed():
    code = "import os\nopen('notes.txt', 'w').write('kept')\nos.mkdir('sub')\n"
    code += "answer = [os.getcwd(), open('notes.txt').read()]"
    result = run(code)
    assert result.ok, result.error
    workdir, text = result.value
    assert text == "kept" and Path(workdir).name.startswith("promptless-sandbox-")
    assert not Path(workdir).exists()


def test_runs_in_parallel_threads_are_independent():
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: SANDBOX.run(f"answer = {i} * 2"), range(6)))
    assert [r.value for r in results] == [0, 2, 4, 6, 8, 10]


def test_variables_must_be_json():
    with pytest.raises(TypeError, match="JSON"):
        SANDBOX.run("x", {"x": object()})


# -- escape attempts: files ---------------------------------------------------------------------------------
def test_reading_outside_the_workdir_is_denied():
    assert_denied(run("open('/etc/passwd').read()"), "/etc/passwd", "reading outside")
    repo_file = str(Path(__file__).resolve())
    assert_denied(run("open(path).read()", path=repo_file), repo_file)
    assert_denied(run("import pathlib\npathlib.Path(path).read_bytes()", path=repo_file))
    assert_denied(run("open('../../etc/passwd').read()"), "climbs above")


def test_writing_outside_the_workdir_is_denied(tmp_path):
    target = tmp_path / "escaped.txt"
    assert_denied(run("open(path, 'w').write('x')", path=str(target)), "writing outside")
    assert_denied(run("import os\nos.close(os.open(path, os.O_CREAT | os.O_WRONLY))", path=str(target)))
    assert_denied(run("import shutil\nopen('a', 'w').close()\nshutil.copy('a', path)", path=str(target)))
    assert_denied(run("import os\nos.remove(path)", path=str(Path(__file__).resolve())), "changing files outside")
    assert not target.exists() and Path(__file__).exists()


def test_listing_and_leaving_the_workdir_are_denied():
    assert_denied(run("import os\nos.listdir('/')"), "listing outside")
    assert_denied(run("import os\nos.chdir('/')"), "leaving the working directory")


def test_links_and_directory_descriptors_cannot_reach_outside():
    assert_denied(run("import os\nos.symlink('/etc/passwd', 'p')\nopen('p').read()"), "creating links")
    assert_denied(run("import os\nos.link('/etc/passwd', 'p')"), "creating links")
    escape = "import os\nos.mkdir('a')\nos.chdir('a')\nfd = os.open('..', os.O_RDONLY)\n"
    escape += "os.open('../x', os.O_CREAT, dir_fd=fd)"
    assert_denied(run(escape), "climbs above")


def test_path_objects_are_checked_as_they_are_used():
    """A path object is asked once: what the hook checks is what is opened; str subclasses are refused."""
    flip = (
        "class Flip:\n    calls = 0\n    def __fspath__(self):\n        Flip.calls += 1\n"
        "        return FIRST if Flip.calls == 1 else ('a' if FIRST != 'a' else '/etc/passwd')\n"
        "open('a', 'w').close()\nopen(Flip()).read()"
    )
    assert_denied(run(flip.replace("FIRST", "'/etc/passwd'")), "/etc/passwd")
    assert run(flip.replace("FIRST", "'a'")).ok
    subclass = "class Sneaky(str):\n    def startswith(self, *args):\n        return True\nopen(Sneaky('/etc/passwd'))"
    assert_denied(run(subclass), "paths must be str or bytes")


# -- escape attempts: processes -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "code",
    [
        "import os\nos.fork()",
        "import os\nos.system('touch /tmp/promptless-pwned')",
        "import os\nos.execv('/bin/sh', ['sh'])",
        "import os\nos.posix_spawn('/bin/true', ['true'], {})",
        "import os\nos.spawnv(os.P_WAIT, '/bin/true', ['true'])",
    ],
)
def test_starting_processes_is_denied(code):
    assert_denied(run(code), "starting processes")


def test_subprocess_and_popen_are_denied():
    assert_denied(run("import subprocess\nsubprocess.run(['id'])"), "import subprocess")
    assert_denied(run("import os\nos.popen('id').read()"), "import subprocess")


def test_fork_bomb_is_stopped():
    assert_denied(run("import os\nwhile True:\n    os.fork()"), "os.fork")
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except BaseException:\n        pass"
    stubborn = run(code, Sandbox(timeout_s=1))
    assert stubborn.error.kind == "violation" and "line 4 of the code" in stubborn.error.message
    assert len(stubborn.violations) == 1 and stubborn.duration_s < 1  # a denial ends the run: nothing to catch


def test_signalling_the_host_is_denied():
    assert_denied(run("import os\nos.kill(pid, 9)", pid=os.getpid()), "signalling processes")
    assert_denied(run("import sys\ndel sys.modules['posix']\nimport posix"), "import posix")


# -- escape attempts: network -------------------------------------------------------------------------------
def test_tcp_connection_to_a_host_listener_never_arrives():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.3)
    port = server.getsockname()[1]
    try:
        connect = "import socket\nsocket.create_connection(('127.0.0.1', port), timeout=1)"
        assert_denied(run(connect, port=port), "import socket")
        loader = (
            "import importlib.util\nspec = importlib.util.find_spec('socket')\n"
            "module = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(module)"
        )
        assert_denied(run(loader), "_socket")
        with pytest.raises(TimeoutError):
            server.accept()
    finally:
        server.close()


def test_dns_lookup_is_denied():
    assert_denied(run("import socket\nsocket.getaddrinfo('example.com', 80)"), "socket")
    assert_denied(run("import urllib.request\nurllib.request.urlopen('http://example.com')"), "socket")


@pytest.mark.skipif(not HAS_NAMESPACES, reason="user+network namespaces are not available here")
def test_network_namespace_blocks_even_without_the_audit_hook():
    """The backstop alone: a plain interpreter inside the same namespaces cannot reach a host listener."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    code = f"import socket\ntry:\n socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
    code += "except OSError as e:\n print(type(e).__name__)"
    try:
        out = subprocess.run(
            [*namespace_prefix(sys.executable), sys.executable, "-I", "-c", code],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        server.settimeout(0.2)
        with pytest.raises(TimeoutError):
            server.accept()
    finally:
        server.close()
    assert out.stdout.strip() in {"OSError", "ConnectionRefusedError"}  # unreachable network / loopback down
    assert "user-namespace" in SANDBOX.isolation and "net-namespace" in SANDBOX.isolation


# -- escape attempts: native code, and the hook itself ------------------------------------------------------
def test_native_code_modules_are_denied():
    assert_denied(run("import ctypes"), "import ctypes")
    assert_denied(run("import _xxsubinterpreters"), "import _xxsubinterpreters")
    elf = (
        "import importlib.machinery, importlib.util\nopen('m.so', 'wb').write(b'\\x7fELF')\n"
        "loader = importlib.machinery.ExtensionFileLoader('m', 'm.so')\n"
        "importlib.util.module_from_spec(importlib.util.spec_from_loader('m', loader))"
    )
    assert_denied(run(elf), "native code from outside the standard library")


def test_tampering_with_the_hook_does_not_help():
    patched = "import builtins, os, posixpath\nbuiltins.type = lambda x: str\nos.getcwd = lambda: '/'\n"
    patched += "posixpath.normpath = lambda p: os.getcwd()\nopen('/etc/passwd').read()"
    assert_denied(run(patched), "/etc/passwd")
    assert_denied(run("import gc\ngc.get_objects()"), "heap introspection")
    assert_denied(run("import resource\nresource.setrlimit(resource.RLIMIT_AS, (-1, -1))"), "resource limits")


def test_a_caught_denial_is_still_reported_even_after_clearing_state():
    code = (
        "try:\n    open('/etc/passwd')\nexcept PermissionError as error:\n    tb = error.__traceback__\n"
        "    while tb.tb_next:\n        tb = tb.tb_next\n    for value in tb.tb_frame.f_locals.values():\n"
        "        if isinstance(value, list):\n            value.clear()\n42"
    )
    assert_denied(run(code), "/etc/passwd")


def test_the_hook_looks_nothing_up_at_call_time():
    """No global or builtin name in the hook's code: changing modules or builtins cannot redirect it."""
    read_fd, write_fd = os.pipe()
    try:
        hook = build_hook("/tmp/work", sys.path, write_fd)
    finally:
        os.close(read_fd)
        os.close(write_fd)

    def code_objects(code):
        yield code
        for const in code.co_consts:
            if hasattr(const, "co_code"):
                yield from code_objects(const)

    names = {
        (code.co_name, ins.argval)
        for code in code_objects(hook.__code__)
        for ins in dis.get_instructions(code)
        if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME")
    }
    assert names == set()
    # No reachable state to rewrite: no closure cells, no nested functions, only immutable values and C functions.
    assert hook.__closure__ is None and hook.__code__.co_freevars == ()
    assert [const for const in hook.__code__.co_consts if hasattr(const, "co_code")] == []
    immutable = (str, int, bool, tuple, frozenset, type(None))
    c_functions = (type(len), type(str.split), type(int.__repr__))
    for name, value in hook.__kwdefaults__.items():
        builtin_type = isinstance(value, type) and value.__module__ == "builtins"  # static types: immutable
        assert isinstance(value, (*immutable, *c_functions)) or builtin_type, name
        if isinstance(value, tuple):
            assert all(isinstance(item, (*immutable, tuple)) for item in value), name


# -- limits -------------------------------------------------------------------------------------------------
def test_memory_exhaustion_is_a_memory_error():
    result = run("x = bytearray(2**33)")
    assert result.error.kind == "memory" and "512 MB" in result.error.message
    growing = run("x = [0]\nwhile True:\n    x = x + x")
    assert growing.error.kind == "memory"


def test_infinite_loop_times_out_and_is_killed():
    started = time.perf_counter()
    result = Sandbox(timeout_s=1).run("while True:\n    pass")
    assert result.error.kind == "timeout" and "1 s" in result.error.message
    assert time.perf_counter() - started < 3


def test_cpu_limit_interrupts_the_code():
    result = Sandbox(timeout_s=5, cpu_s=1).run("def spin():\n    while True:\n        pass\nspin()")
    assert result.error.kind == "timeout" and result.error.type == "CPUTimeExceeded"
    assert "in spin" in result.error.traceback


def test_infinite_print_hits_the_output_cap_quickly():
    result = run("while True:\n    print('x' * 100)")
    assert result.error.kind == "output_limit" and len(result.stdout) == SANDBOX.max_output_bytes
    assert result.duration_s < 2


def test_large_files_hit_the_file_size_limit():
    result = run("open('big', 'wb').write(b'x' * (20 * 2**20))")
    assert result.error.type == "OSError" and "File too large" in result.error.message


def test_exiting_early_is_reported_as_a_crash():
    assert run("import sys\nsys.exit(0)").ok
    result = run("import os\nos._exit(3)")
    assert result.error.kind == "crashed" and "status 3" in result.error.message


def test_the_host_survives_everything_above():
    assert threading.main_thread().is_alive() and os.getpid() > 0
    assert not Path("/tmp/promptless-pwned").exists()


def test_ordinary_stdlib_work_runs_under_every_layer():
    """Landlock's read-only roots and the seccomp filter leave what LM-written code needs: threads, native
    stdlib modules and their system libraries, time zones, temporary files in the work dir."""
    code = (
        "import threading, time, zoneinfo, decimal, hashlib, zlib, lzma, bz2, json, random, tempfile, datetime\n"
        "out = []\nt = threading.Thread(target=lambda: out.append(sum(range(10))))\nt.start()\nt.join()\n"
        "tz = datetime.datetime(2024, 1, 1, tzinfo=zoneinfo.ZoneInfo('Europe/Paris')).utcoffset().seconds\n"
        "with tempfile.NamedTemporaryFile('w', dir='.') as f:\n    f.write('x')\n"
        "answer = [out[0], tz, str(decimal.Decimal(1) / 8), hashlib.sha256(b'').hexdigest()[:8],\n"
        "          len(zlib.compress(b'a' * 100)) < 100, time.localtime().tm_year > 2000]"
    )
    result = run(code)
    assert result.ok, result.error
    assert result.value == [45, 3600, "0.125", "e3b0c442", True, True]
    assert result.isolation == SANDBOX.isolation  # every layer this machine offers was in force
