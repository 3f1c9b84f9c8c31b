"""Joining a Ray cluster that runs on its own: a head node from `ray start --head`, drivers as other processes.

The head gets its own temp dir and port and token auth, and its workers inherit an
environment without this checkout on PYTHONPATH: they run the driver's promptless only
because the executor ships it. It is stopped by signalling its own `ray start --block`
process (`ray stop` would stop every Ray on the machine). Each driver is
ray_cluster_driver.py in a process of its own, against the ScriptedLM; the wrong-address
cases run here, where nothing is listening.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import promptless as pl
from promptless.errors import ClusterError
from promptless.testing import ScriptedLM
from tests.integration.conftest import free_port

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.integration

DRIVER = Path(__file__).with_name("ray_cluster_driver.py")
CALLS_ENV = "PROMPTLESS_TEST_CALLS"
SOURCE = str(Path(pl.__file__).resolve().parents[1])  # the promptless these tests import; the drivers import it too
HEAD_START_S = 90
FAST_S = 15  # "in seconds": Ray itself retries such an address for minutes


@dataclass
class Head:
    address: str
    root: Path
    calls: Path
    token: Path
    process: subprocess.Popen


@pytest.fixture(scope="module")
def head():
    beside = Path(sys.executable).with_name("ray")  # the ray of this interpreter's environment
    ray_cli = beside if beside.exists() else shutil.which("ray")
    if ray_cli is None:
        pytest.skip(f"the ray command is not installed (not beside {sys.executable}, not on PATH)")
    root = Path(tempfile.mkdtemp(prefix="plray", dir="/tmp"))  # short: Ray's unix sockets live under it
    token, calls, log = root / "token", root / "calls.jsonl", root / "head.log"
    token.write_text(secrets.token_hex(32))
    calls.write_text("")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RAY_ADDRESS", "RAY_AUTH_TOKEN")}
    env |= {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token), CALLS_ENV: str(calls)}
    command = [str(ray_cli), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}"]
    command += ["--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={root}"]
    with open(log, "w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=root)
    try:
        deadline = time.monotonic() + HEAD_START_S
        while "Ray runtime started" not in log.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"`ray start --head` did not come up:\n{log.read_text()[-2000:]}")
            time.sleep(0.3)
        yield Head(f"127.0.0.1:{port}", root, calls, token, process)
    finally:
        stop_head(process, root)


def stop_head(process: subprocess.Popen, root: Path) -> None:
    """SIGTERM to this head's `ray start --block` (it stops its node); then any process still under its temp dir."""
    process.terminate()
    try:
        process.wait(timeout=40)
    except subprocess.TimeoutExpired:
        process.kill()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if str(root) in command:
            with contextlib.suppress(OSError):  # gone already
                os.kill(int(entry.name), signal.SIGKILL)
    shutil.rmtree(root, ignore_errors=True)


def drive(head: Head, *args: str, **env: str) -> dict:
    """Run ray_cluster_driver.py with ``args`` in a process of its own; its JSON result."""
    environment = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_TOKEN"}
    environment |= {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(head.token), "RAY_ADDRESS": head.address}
    environment[CALLS_ENV] = str(head.calls)
    environment["PYTHONPATH"] = os.pathsep.join([SOURCE, os.environ.get("PYTHONPATH", "")])
    environment |= env
    done = subprocess.run(
        [sys.executable, str(DRIVER), *args], env=environment, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def logged(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_evaluate_and_batch_join_a_running_cluster_by_address_and_by_auto(head):
    head.calls.write_text("")
    found = drive(head, "api", head.address)
    threads = found["threads"]
    assert threads["errors"] == 1 and threads["calls"] == 12  # q7 is not JSON: an error on both executors
    for joined in (head.address, "auto"):
        on_ray = found[joined]
        assert on_ray["answers"] == threads["answers"] and on_ray["scores"] == threads["scores"], joined
        assert on_ray["errors"] == threads["errors"] and on_ray["calls"] == threads["calls"], joined
        assert on_ray["batch"] == threads["batch"], joined  # in input order
        assert not on_ray["initialized_after_close"], joined  # the driver left the cluster
    on_workers = [line for line in logged(head.calls) if line["pid"] != found["driver_pid"]]
    worker_pids = set(found[head.address]["worker_pids"]) | set(found["auto"]["worker_pids"])
    assert {line["pid"] for line in on_workers} == worker_pids and len(worker_pids) == 4 and len(on_workers) == 48
    assert all(line["promptless"].startswith(str(head.root)) for line in on_workers)  # the driver's, shipped
    assert head.process.poll() is None  # the cluster it joined still runs


def test_the_cli_runs_jsonl_lines_on_a_cluster_given_by_address(head, tmp_path):
    pl.Predict("question -> answer").save(tmp_path / "p.json")
    lines = [json.dumps({"question": f"q={q} ?"}) for q in ("q1", "q2", "q3", "q7", "q4")] + ["{broken"]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    found = drive(head, "cli", head.address, str(tmp_path))
    on_threads, on_ray = found["threads"], found["ray"]
    assert on_ray["code"] == on_threads["code"] == 1, on_ray["stderr"]  # two lines failed: exit 1, all written
    assert on_ray["stdout"] == on_threads["stdout"]
    outputs = [json.loads(line) for line in on_ray["stdout"].splitlines()]
    assert [o.get("answer") for o in outputs] == ["yes", "yes", "no", None, "yes", None]
    assert head.process.poll() is None


def test_a_cluster_that_wants_a_token_says_how_to_send_it_in_seconds(head):
    found = drive(head, "start", head.address, RAY_AUTH_MODE="disabled")
    assert found["error"] == "ClusterError" and found["seconds"] < FAST_S, found
    assert head.address in found["message"] and "RAY_AUTH_MODE=token" in found["message"]


# -- nothing at the address -----------------------------------------------------------------------------------
def reply(request):
    return {"answer": "yes"}


def test_an_address_where_no_cluster_runs_fails_in_seconds_naming_it():
    address = f"127.0.0.1:{free_port()}"
    executor = pl.RayExecutor(address=address)
    evaluate = pl.Evaluate([pl.Example(question="q").with_inputs("question")], lambda e, p: 1.0, executor=executor)
    started = time.monotonic()
    with pl.context(lm=ScriptedLM(reply)), pytest.raises(ClusterError, match=f"no Ray cluster answers at {address}"):
        evaluate(pl.Predict("question -> answer"))
    assert time.monotonic() - started < FAST_S
    assert not ray.is_initialized()


def test_the_cli_with_a_wrong_address_prints_one_line_naming_it(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from promptless.cli import common, main

    pl.Predict("question -> answer").save(tmp_path / "p.json")
    (tmp_path / "in.jsonl").write_text(json.dumps({"question": "q=q1 ?"}) + "\n")
    monkeypatch.setattr(common, "make_lm", lambda model, *, api_base=None: ScriptedLM(reply))
    address = f"127.0.0.1:{free_port()}"
    args = ["run", str(tmp_path / "p.json"), "--jsonl", str(tmp_path / "in.jsonl"), "--ray", "--address", address]
    result = CliRunner().invoke(main.app, args)
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith(f"error: no Ray cluster answers at {address} (connection refused)")
    assert len(result.stderr.strip().splitlines()) == 1
