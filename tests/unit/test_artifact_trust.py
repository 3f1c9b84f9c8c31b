"""A loaded artifact never decides where credentials go, never reaches the terminal raw, never hangs the reader.

The credential tests run the real ``LM`` against fake OpenAI-compatible servers of our own on
127.0.0.1 (a small threading ``http.server`` per test) that record every request and header
that reached them, so "no request reached the server the file named" is observed, not assumed.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import promptless as pl
from promptless.cli import main
from promptless.errors import LMAuthError, LMUnavailable
from promptless.lm.retry import Backoff
from promptless.redact import printable, redact, redact_url

SIGNATURE = "question -> answer"
KEY = "sk-envkey-0123456789abcdefXYZ"  # the user's key, from the environment
RAW = ("\x1b", "\x9b", "\x07", "\u202e")  # ESC, CSI (C1), BEL, right-to-left override


# -- a fake OpenAI-compatible server ---------------------------------------------------------------------
class FakeServer:
    """Answers /chat/completions with ``{"answer": ...}`` (n choices); ``respond`` may replace the reply."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answer = "fine"
        self.respond = None  # (record) -> (status, text body)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                record = {"path": self.path, "headers": dict(self.headers), "body": json.loads(raw or b"{}")}
                server.requests.append(record)
                status, text = server.respond(record) if server.respond else server.ok(record)
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def ok(self, record: dict[str, Any]) -> tuple[int, str]:
        n = record["body"].get("n", 1)
        content = json.dumps({"answer": self.answer})
        choices = [{"index": i, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                   for i in range(n)]  # fmt: skip
        usage = {"prompt_tokens": 5, "completion_tokens": 3}
        return 200, json.dumps({"model": record["body"].get("model"), "choices": choices, "usage": usage})

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers():
    """``servers()`` starts a fake server; all are stopped after the test."""
    started: list[FakeServer] = []

    def start() -> FakeServer:
        started.append(FakeServer())
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def shell(monkeypatch, tmp_path):
    """Run the real CLI (the real ``make_lm``: real HTTP) in tmp_path, with ``OPENAI_API_KEY`` set."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)

    def invoke(*args: Any):
        return CliRunner(env={"COLUMNS": "200"}).invoke(main.app, [str(a) for a in args])

    return invoke


def one_error(result, code: int, *fragments: str) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == code, (result.exit_code, result.output)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def cli_artifact(path: Path, **cli: Any) -> Path:
    """An artifact as ``promptless compile`` writes it: a Predict plus the ``cli`` section given."""
    state = pl.Predict(SIGNATURE).dump_state()
    state["cli"] = {"program": "predict", "signature": SIGNATURE, **cli}
    path.write_text(json.dumps(state))
    return path


def write_qa(path: Path) -> Path:
    path.write_text(json.dumps({"question": "q1", "answer": "fine"}) + "\n")
    return path


# -- 1. the file never chooses the endpoint -------------------------------------------------------------
@pytest.mark.parametrize("command", ["run", "eval"])
def test_an_endpoint_named_only_by_the_file_is_refused_and_gets_nothing(shell, servers, tmp_path, command):
    evil, mine = servers(), servers()
    cli_artifact(tmp_path / "art.json", lm="openai/m", api_base=evil.url)
    write_qa(tmp_path / "qa.jsonl")
    extra = ["-i", "question=q1"] if command == "run" else ["qa.jsonl"]
    line = one_error(shell(command, "art.json", *extra), 2, f"names the endpoint {evil.url}", f"--api-base {evil.url}")
    assert "never chooses where requests and your API key go" in line
    assert evil.requests == []
    ran = shell(command, "art.json", *extra, "--api-base", mine.url)  # the user names the server: it is used
    assert ran.exit_code == 0, ran.output
    assert evil.requests == [] and mine.requests
    assert mine.requests[0]["headers"]["Authorization"] == f"Bearer {KEY}"
    assert mine.requests[0]["body"]["model"] == "m"


def test_inspect_shows_a_remote_artifact_without_contacting_it(shell, servers, tmp_path):
    evil = servers()
    cli_artifact(tmp_path / "art.json", lm="openai/m", api_base=evil.url)
    shown = shell("inspect", "art.json", "-i", "question=hello")
    assert shown.exit_code == 0, shown.output
    assert "LM openai/m" in shown.stdout and "Question: hello" in shown.stdout
    assert evil.requests == []


def test_a_remote_model_without_an_endpoint_is_refused_too(shell, servers, tmp_path, monkeypatch):
    default_server = servers()
    monkeypatch.setenv("OPENAI_BASE_URL", default_server.url)  # where the key would go by default
    cli_artifact(tmp_path / "art.json", lm="openai/gpt-4o-mini")
    one_error(shell("run", "art.json", "-i", "question=q"), 2, "names the remote model 'openai/gpt-4o-mini'", "--lm")
    assert default_server.requests == []


def test_an_unknown_model_named_by_the_file_is_blamed_on_the_file(shell, tmp_path):
    cli_artifact(tmp_path / "art.json", lm="local/no-such-model")
    one_error(shell("inspect", "art.json"), 2, "art.json names model 'local/no-such-model': ", "unknown local model")


def test_a_predictors_saved_endpoint_never_beats_the_users_options(shell, servers, tmp_path):
    evil, mine = servers(), servers()
    program = pl.Predict(SIGNATURE, lm=pl.LM("openai/m", api_base=evil.url, cache=False))
    program.save(tmp_path / "py.json")  # no cli section: rebuilt from its one predictor
    one_error(shell("run", "py.json", "-i", "question=q"), 2, f"names the endpoint {evil.url}")
    assert shell("run", "py.json", "-i", "question=q", "--api-base", mine.url).exit_code == 0
    other = shell("run", "py.json", "-i", "question=q2", "--lm", "openai/other", "--api-base", mine.url)
    assert other.exit_code == 0, other.output
    assert [r["body"]["model"] for r in mine.requests] == ["m", "other"]
    assert evil.requests == []


def test_in_python_the_configured_lm_wins_after_load(servers, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    evil, mine = servers(), servers()
    saved = pl.Predict(SIGNATURE, lm=pl.LM("openai/m", api_base=evil.url, max_tokens=77))
    saved.save(tmp_path / "p.json")
    loaded = pl.Predict(SIGNATURE).load(tmp_path / "p.json")
    assert loaded.lm is None  # no LM is built from the file
    assert loaded.saved_lm == {"model": "openai/m", "temperature": 0.0, "max_tokens": 77, "api_base": evil.url}
    with pl.context(lm=pl.LM("openai/mine", api_base=mine.url, api_key="sk-mine-0123456789", cache=False)):
        assert loaded(question="q").answer == "fine"
    assert evil.requests == [] and len(mine.requests) == 1
    assert mine.requests[0]["headers"]["Authorization"] == "Bearer sk-mine-0123456789"
    assert loaded.dump_state() == saved.dump_state()  # the description round-trips


# -- 2. tools named by the file are quoted, never advised ------------------------------------------------
def test_a_react_artifacts_tools_are_quoted_as_the_files_text(shell, tmp_path):
    marker = tmp_path / "imported"
    tool_code = f"open({str(marker)!r}, 'w').close()\ndef run(q: str) -> str:\n    return q\n"
    (tmp_path / "evil_tools.py").write_text(tool_code)
    state = pl.Predict(SIGNATURE).dump_state()
    state["cli"] = {"program": "react", "signature": SIGNATURE, "tools": "evil_tools:run\x1b[2J"}
    (tmp_path / "r.json").write_text(json.dumps(state))
    line = one_error(shell("run", "r.json", "-i", "question=q"), 2, "that text comes from the file", "evil_tools:run")
    assert "--tools evil_tools" not in line and "--tools module:function" in line
    assert not any(c in line for c in RAW) and "\\x1b[2J" in line
    assert not marker.exists()  # nothing was imported


# -- 3. terminal escape sequences from files and model output are shown, never sent raw -------------------
def test_inspect_neutralises_escape_sequences_from_the_file(shell, tmp_path):
    predict = pl.Predict(SIGNATURE)
    predict.signature = predict.signature.with_instructions("Answer.\x1b]0;owned\x07\x1b[2J\u202eevil")
    predict.demos = [pl.Example(question="q\x9b31m", answer="a\x1b[5m")]
    state = predict.dump_state()
    state["predictors"] = {"self\x1b[8m": state["predictors"]["self"]}  # a predictor name from the file, too
    (tmp_path / "esc.json").write_text(json.dumps(state))
    shown = shell("inspect", "esc.json")
    assert shown.exit_code == 0, shown.output
    assert not any(c in shown.output for c in RAW), repr(shown.output)
    assert "Answer.\\x1b]0;owned\\x07\\x1b[2J\\u202eevil" in shown.stdout and "\\x9b31m" in shown.stdout


def test_run_output_and_error_lines_never_carry_raw_control_characters(shell, servers, tmp_path):
    server = servers()
    server.answer = "\x1b[2Jhi\x9b31m\u202e\x7f"
    cli_artifact(tmp_path / "art.json", lm="openai/m")
    plain = shell("run", "art.json", "-i", "question=q", "--api-base", server.url)
    assert plain.exit_code == 0, plain.output
    assert not any(c in plain.stdout for c in (*RAW, "\x7f")) and "\\x1b[2Jhi" in plain.stdout
    as_json = shell("run", "art.json", "-i", "question=q", "--api-base", server.url, "--json")
    assert not any(c in as_json.stdout for c in (*RAW, "\x7f"))
    assert json.loads(as_json.stdout) == {"answer": server.answer}  # escaped, yet the same data
    missing = one_error(shell("inspect", "x\x1b[2J.json"), 2, "does not exist")
    assert "\x1b" not in missing and "x\\x1b[2J.json" in missing


# -- 4. files that are not artifacts: one clear error, never a hang or a traceback ------------------------
def deep_json(depth: int) -> str:
    return '{"format": "promptless.program", "version": 1, "predictors": ' + "[" * depth + "]" * depth + "}"


BAD_FILES = [
    ("dir", None, "is a directory, not a file"),
    ("deep.json", deep_json(100_000), "nested too deeply"),
    ("deep70.json", deep_json(70), "nested too deeply"),
]


@pytest.mark.parametrize(("name", "content", "message"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
@pytest.mark.parametrize("command", ["run", "eval", "inspect"])
def test_directories_and_deep_json_give_one_error(shell, tmp_path, command, name, content, message):
    if content is None:
        (tmp_path / name).mkdir()
    else:
        (tmp_path / name).write_text(content)
    write_qa(tmp_path / "qa.jsonl")
    extra = {"eval": ["qa.jsonl"], "run": ["-i", "question=q"], "inspect": []}[command]
    one_error(shell(command, name, *extra), 2, message)
    with pytest.raises(pl.ArtifactError, match=message):
        pl.Predict(SIGNATURE).load(tmp_path / name)


@pytest.mark.parametrize("version", [2, "1", -7, 0, True, 1.0, None, "missing"])
@pytest.mark.parametrize("with_cli", [True, False], ids=["cli-section", "saved-from-python"])
def test_only_a_version_this_promptless_reads_loads(shell, tmp_path, version, with_cli):
    state = pl.Predict(SIGNATURE).dump_state()
    if with_cli:
        state["cli"] = {"program": "predict", "signature": SIGNATURE}
    if version == "missing":
        del state["version"]
    else:
        state["version"] = version
    (tmp_path / "v.json").write_text(json.dumps(state))
    one_error(shell("inspect", "v.json"), 2, "v.json: ", "version")
    with pytest.raises(pl.ArtifactError, match="version"):
        pl.Predict(SIGNATURE).load(tmp_path / "v.json")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_refused_at_once(tmp_path):
    fifo = tmp_path / "art.json"
    os.mkfifo(fifo)
    env = {**os.environ, "PYTHONPATH": str(Path(pl.__file__).resolve().parents[1])}
    for command in (["inspect"], ["run", "-i", "question=q"]):
        args = [sys.executable, "-m", "promptless", command[0], str(fifo), *command[1:]]
        done = subprocess.run(args, capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert "is not a regular file (a FIFO)" in done.stderr and "Traceback" not in done.stderr
    outcome: dict[str, BaseException] = {}

    def load() -> None:
        try:
            pl.Predict(SIGNATURE).load(fifo)
        except BaseException as error:
            outcome["error"] = error

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(timeout=20)
    if worker.is_alive():  # unblock the reader before failing
        with open(fifo, "w"):
            pass
        pytest.fail("Module.load blocked on a FIFO")
    assert isinstance(outcome.get("error"), pl.ArtifactError) and "FIFO" in str(outcome["error"])


# -- 5. what a file may ask for per call is capped ---------------------------------------------------------
def test_sampling_settings_from_a_file_are_capped(shell, servers, tmp_path, caplog):
    server = servers()
    state = pl.Predict(SIGNATURE).dump_state()
    state["predictors"]["self"]["config"] = {"n": 50, "max_tokens": 1_000_000, "temperature": 0.7}
    state["cli"] = {"program": "predict", "signature": SIGNATURE, "lm": "openai/m"}
    (tmp_path / "greedy.json").write_text(json.dumps(state))
    with caplog.at_level(logging.WARNING, logger="promptless.predict"):
        loaded = pl.Predict(SIGNATURE).load(tmp_path / "greedy.json")
    assert loaded.config == {"n": 8, "max_tokens": 8192, "temperature": 0.7}
    assert "asks for n=50; capped at 8" in caplog.text and "max_tokens=1000000; capped at 8192" in caplog.text
    ran = shell("run", "greedy.json", "-i", "question=q", "--api-base", server.url, "--json")
    assert ran.exit_code == 0, ran.output
    assert len(server.requests) == 1
    body = server.requests[0]["body"]
    assert (body["n"], body["max_tokens"]) == (8, 8192)
    loaded.config["n"] = 20  # code may ask for more: the user's choice, not the file's
    assert loaded.config["n"] == 20


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"n": "many"}, "n='many' is not a whole number"),
        ({"max_tokens": 0}, "max_tokens=0 must be at least 1"),
        ({"temperature": 99}, "temperature=99 is not a number from 0 to 2"),
        ({"stop": 5}, "stop=5 is not a string"),
        ({"top_k": 3}, "unknown Predict config ['top_k']"),
        ([1, 2], "'config' must be an object"),
    ],
)
def test_bad_sampling_settings_in_a_file_are_refused(shell, tmp_path, config, message):
    state = pl.Predict(SIGNATURE).dump_state()
    state["predictors"]["self"]["config"] = config
    (tmp_path / "bad.json").write_text(json.dumps(state))
    with pytest.raises(pl.ArtifactError, match="predictor 'self'") as info:
        pl.Predict(SIGNATURE).load(tmp_path / "bad.json")
    assert message in str(info.value)
    one_error(shell("inspect", "bad.json"), 2, message)


# -- 6. keys and URL credentials never land in what the library writes ----------------------------------------
def echo_key(status: int):
    """A server that puts the Authorization header it received into its error body."""

    def respond(record: dict[str, Any]) -> tuple[int, str]:
        return status, json.dumps({"error": {"message": f"bad auth {record['headers'].get('Authorization')}"}})

    return respond


def test_a_key_echoed_by_the_server_is_redacted_from_errors_and_the_cli_line(shell, servers, tmp_path):
    server = servers()
    server.respond = echo_key(401)
    lm = pl.LM("openai/m", api_base=server.url, api_key="sk-given-abcdefghijklmnop", cache=False)
    with pytest.raises(LMAuthError) as info:
        lm("hello")
    assert "sk-given-abcdefghijklmnop" not in str(info.value) and "Bearer ***" in str(info.value)
    cli_artifact(tmp_path / "art.json", lm="openai/m")
    line = one_error(shell("run", "art.json", "-i", "question=q", "--api-base", server.url), 1, "LMAuthError")
    assert KEY not in line and "***" in line
    assert server.requests[-1]["headers"]["Authorization"] == f"Bearer {KEY}"  # it was sent: the user named it


def test_a_key_echoed_by_the_server_is_redacted_from_the_retry_log_and_spans(servers, caplog):
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from promptless.telemetry import OpenTelemetryCallback

    server = servers()
    server.respond = echo_key(500)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    secret = "sk-retry-abcdefghijklmnop"
    lm = pl.LM("openai/m", api_base=server.url, api_key=secret, cache=False,
               backoff=Backoff(retries=1, base=0.0, sleep=lambda s: None),
               callbacks=[OpenTelemetryCallback(provider)])  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="promptless.lm"), pytest.raises(LMUnavailable) as info:
        lm("hello")
    assert len(server.requests) == 2  # retried once
    assert "retry 1/1" in caplog.text and secret not in caplog.text and "Bearer ***" in caplog.text
    assert secret not in str(info.value)
    (span,) = exporter.get_finished_spans()
    written = json.dumps([span.status.description, [dict(e.attributes) for e in span.events]])
    assert "LMUnavailable" in written and secret not in written and "***" in written


def test_url_credentials_are_never_saved_or_logged(servers, tmp_path, caplog, shell):
    server = servers()
    server.respond = lambda record: (500, json.dumps({"error": "down"}))
    port = server.httpd.server_address[1]
    base = f"http://alice:hunter2pass@127.0.0.1:{port}/v1?api-key=QUERYSECRET123"
    lm = pl.LM("openai/m", api_base=base, cache=False, backoff=Backoff(retries=0))
    assert lm.settings()["api_base"] == f"http://***@127.0.0.1:{port}/v1?api-key=***"
    program = pl.Predict(SIGNATURE, lm=lm)
    saved = program.save(tmp_path / "p.json").read_text()
    with caplog.at_level(logging.INFO), pytest.raises(LMUnavailable) as info:
        lm("hello")
    assert server.requests  # the request went out (to the user's own endpoint)...
    written = saved + caplog.text + str(info.value) + repr(lm.backend)
    assert "HTTP Request: POST" in caplog.text  # ...and httpx logged it, redacted
    assert "hunter2pass" not in written and "QUERYSECRET123" not in written
    server.respond = None  # up again: the CLI compiles through it and saves the program
    rows = "".join(json.dumps({"question": f"q{i}", "answer": "fine"}) + "\n" for i in range(6))
    (tmp_path / "qa.jsonl").write_text(rows)
    compiled = shell("compile", "qa.jsonl", "-s", SIGNATURE, "-o", "c.json", "--lm", "openai/m", "--api-base", base)
    assert compiled.exit_code == 0, compiled.output
    artifact = (tmp_path / "c.json").read_text()
    assert json.loads(artifact)["cli"]["api_base"] == f"http://***@127.0.0.1:{port}/v1?api-key=***"
    assert not any(s in artifact + compiled.output for s in ("hunter2pass", "QUERYSECRET123"))


# -- the helpers ----------------------------------------------------------------------------------------------
def test_redact_and_printable():
    assert redact(f"key {KEY} and Bearer abcdef123456 at https://u:p@h/x?token=t0k&x=1") == (
        "key *** and Bearer *** at https://***@h/x?token=***&x=1"
    )
    assert (
        redact_url("https://u:p@h:8/v1?api-key=s&api-version=2024") == "https://***@h:8/v1?api-key=***&api-version=2024"
    )
    assert redact_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"
    assert printable("a\x1b[2Jb\tc\nd\u202e\x9b") == "a\\x1b[2Jb\tc\nd\\u202e\\x9b"
    assert printable("a\nb", one_line=True) == "a\\x0ab"
