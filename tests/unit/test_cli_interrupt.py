"""A real Ctrl-C (SIGINT to a ``promptless compile`` process) while slow LM calls are in flight.

The process must end within seconds with exit code 130 and the stop line, not after the calls
in flight finish; the checkpoint and the sqlite LM cache it leaves must be whole, and the resume
command must finish the compile with the program a clean run makes.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from promptless.cli.errors import INTERRUPTED
from promptless.lm.cache import FILE_NAME, Cache
from promptless.testing import ScriptedLM
from tests.unit.test_cli import write_qa
from tests.unit.test_cli_resume import COMPILE, answers, outcome, resume_args

ROOT = Path(__file__).resolve().parents[2]
SLOW_S = 300  # how long each call from the slow one on would take: far longer than the test may wait

LAUNCHER = """
import sys, time
from pathlib import Path
from promptless.cli import common, main
from promptless.lm.cache import Cache
from promptless.testing import ScriptedLM
from tests.unit.test_cli_resume import answers

slow_from, marker, cache_dir = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
del sys.argv[1:4]
calls = []

def script(request):
    calls.append(request)
    if len(calls) >= slow_from:  # from here on every call hangs, as a slow model's would
        marker.touch()
        time.sleep(SLOW_S)
    return answers(request)

common.make_lm = lambda model, *, api_base=None: ScriptedLM(script, cache=Cache(cache_dir))
sys.argv[0] = "promptless"
main.main()
""".replace("SLOW_S", str(SLOW_S))


def test_sigint_with_slow_calls_in_flight_ends_at_once_and_the_resume_finishes(cli, tmp_path):
    write_qa(tmp_path / "qa.jsonl")
    clean = ScriptedLM(answers, cache=Cache(tmp_path / "clean-cache"))
    assert cli(*COMPILE[:5], "clean.json", *COMPILE[6:], lm=clean).exit_code == 0
    (tmp_path / "launch.py").write_text(LAUNCHER)
    marker, cache = tmp_path / "slow-call-started", tmp_path / "cache"
    args = [str(a) for a in COMPILE[:-2]] + ["--threads", "2"]  # two calls in flight when it is stopped
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    # The 10th call is the compiled candidate's first: the baseline and the demos are checkpointed by then.
    command = [sys.executable, "launch.py", "10", str(marker), str(cache), *args]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    process = subprocess.Popen(command, cwd=tmp_path, env=env, **pipes)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the slow call never started"
            time.sleep(0.05)
        time.sleep(0.5)  # the other worker's call is in flight too
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=SLOW_S / 10)  # far less than one slow call takes
    finally:
        process.kill()
    stopped = SimpleNamespace(exit_code=process.returncode, stderr=stderr, output=stdout + stderr)
    assert "interrupted while scoring candidate 1" in stderr
    args = resume_args(stopped)  # exit code 130, one error line, ending in the resume command
    assert process.returncode == INTERRUPTED
    # What the process left is whole: the checkpoint reads as JSON, the cache passes sqlite's check.
    checkpoint = json.loads((tmp_path / "p.checkpoint.json").read_text())
    assert checkpoint["format"] == "promptless.checkpoint" and len(checkpoint["values"]) == 2
    with sqlite3.connect(cache / FILE_NAME) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    second = ScriptedLM(answers, cache=Cache(cache))
    resumed = cli(*args, lm=second)
    assert resumed.exit_code == 0, resumed.output
    assert "2 finished step(s) read back" in resumed.stdout
    assert outcome(tmp_path / "p.json") == outcome(tmp_path / "clean.json")
    assert not (tmp_path / "p.checkpoint.json").exists()
