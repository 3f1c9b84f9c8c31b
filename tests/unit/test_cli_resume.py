"""Ctrl-C during a compile: one line, exit code 130, the finished steps kept, and the exact command that resumes.

KeyboardInterrupt is raised from the ScriptedLM's reply function at a chosen request, in
each phase of a compile. The resumed run (the printed command, run as printed) must not
make a finished call again and must end with the program a clean run makes.
"""

from __future__ import annotations

import json
import re
import shlex

import pytest

from promptless.cli.errors import INTERRUPTED, USAGE
from promptless.lm.cache import Cache
from promptless.testing import ScriptedLM
from tests.unit.test_cli import SIGNATURE, one_error, reply, write_qa

COMPILE = ("compile", "qa.jsonl", "-s", SIGNATURE, "-o", "p.json", "--threads", 1)


def answers(request) -> dict:
    """``reply``, and an instruction or a summary for MIPROv2's proposer."""
    try:
        return reply(request)
    except (KeyError, IndexError):
        keys = re.findall(r'"(\w+)"', request.messages[0]["content"].rsplit("JSON object with keys", 1)[-1])
        return {key: "Answer the question." for key in keys}


def proposal(request) -> bool:
    return request.messages[0]["content"].startswith("Write a better instruction")


def interrupted_at(n: int, when=lambda request: True):
    """A reply function that raises KeyboardInterrupt (as Ctrl-C would) at the n-th request ``when`` accepts."""
    seen = []

    def script(request):
        if when(request):
            seen.append(request)
            if len(seen) == n:
                raise KeyboardInterrupt
        return answers(request)

    return script


def resume_args(result) -> list[str]:
    """The command the stop message prints, as the shell would split it, without the program name."""
    line = one_error(result, INTERRUPTED, "resume with promptless compile ")
    words = shlex.split(line.split("resume with ", 1)[1])
    assert words[:2] == ["promptless", "compile"] and words[-2:] == ["--checkpoint", "p.checkpoint.json"]
    return words[1:]


def outcome(path) -> dict:
    state = json.loads(path.read_text())
    summary = {k: v for k, v in state["cli"]["compile"].items() if k != "lm_calls"}
    return {"predictors": state["predictors"], "compile": summary}


PHASES = [  # optimizer, the n-th request (of those `when` accepts) that is interrupted, the phase named
    ("bootstrap", 5, None, "scoring the baseline"),
    ("bootstrap", 7, None, "building candidates"),  # the teacher runs that bootstrap demos
    ("bootstrap", 10, None, "scoring candidate 1"),
    ("random-search", 18, None, "scoring candidate 2"),
    ("mipro", 2, proposal, "building candidates"),  # the second instruction proposal
    ("mipro", 40, None, "scoring candidate"),
]


@pytest.mark.parametrize(("optimizer", "n", "when", "phase"), PHASES)
def test_ctrl_c_in_every_phase_resumes_without_repeating_finished_calls(cli, tmp_path, optimizer, n, when, phase):
    write_qa(tmp_path / "qa.jsonl", 20 if optimizer == "mipro" else 10)
    args = (*COMPILE, "--optimizer", optimizer, "--candidates", 2)
    clean = ScriptedLM(answers, cache=Cache(tmp_path / "clean-cache"))
    assert cli(*args[:5], "clean.json", *args[6:], lm=clean).exit_code == 0
    # The LM cache is on disk, as the CLI's is; each run gets a new Cache, as a new process would.
    first = ScriptedLM(interrupted_at(n, when or (lambda r: True)), cache=Cache(tmp_path / "cache"))
    stopped = cli(*args, lm=first)
    assert f"interrupted while {phase}" in stopped.stderr and not (tmp_path / "p.json").exists()
    second = ScriptedLM(answers, cache=Cache(tmp_path / "cache"))
    if phase == "scoring the baseline":  # the first step: nothing in the checkpoint yet, the answers in the cache
        one_error(stopped, INTERRUPTED, "no step had finished", "run the same command again (the LM cache has")
        resumed = cli(*args, lm=second)
    else:
        resumed = cli(*resume_args(stopped), lm=second)
        assert "finished step(s) read back" in resumed.stdout
    assert resumed.exit_code == 0, resumed.output
    # Every call that finished was made once; the interrupted one is the only call made twice.
    assert len(first.requests) - 1 + len(second.requests) == len(clean.requests)
    assert outcome(tmp_path / "p.json") == outcome(tmp_path / "clean.json")
    assert not (tmp_path / "p.checkpoint.json").exists()  # the default checkpoint goes once the program is written


def test_the_checkpoint_itself_skips_finished_steps_without_a_cache(cli, tmp_path):
    write_qa(tmp_path / "qa.jsonl")
    clean = ScriptedLM(answers)
    assert cli(*COMPILE[:5], "clean.json", *COMPILE[6:], lm=clean).exit_code == 0
    first = ScriptedLM(interrupted_at(12))  # scoring the compiled program, its second example
    stopped = cli(*COMPILE, lm=first)
    assert "interrupted while scoring candidate 1" in stopped.stderr
    second = ScriptedLM(answers)
    resumed = cli(*resume_args(stopped), lm=second)
    assert resumed.exit_code == 0, resumed.output
    assert "resumed from p.checkpoint.json: 2 finished step(s) read back" in resumed.stdout  # baseline, demos
    assert len(second.requests) == 3 + 3  # the forecast's probes, then only the compiled program's scoring
    assert outcome(tmp_path / "p.json") == outcome(tmp_path / "clean.json")


def test_ctrl_c_before_any_step_and_a_left_checkpoint(cli, tmp_path):
    write_qa(tmp_path / "qa.jsonl")
    forecast = cli(*COMPILE, lm=ScriptedLM(interrupted_at(2)))
    one_error(forecast, INTERRUPTED, "interrupted during the forecast, before the compile started: nothing to resume")
    early = cli(*COMPILE, lm=ScriptedLM(interrupted_at(4)))  # the baseline's first example: nothing finished
    one_error(early, INTERRUPTED, "interrupted while scoring the baseline; no step had finished", "the same command")
    assert not (tmp_path / "p.checkpoint.json").exists()
    cli(*COMPILE, lm=ScriptedLM(interrupted_at(7)))
    lm = ScriptedLM(answers)
    fresh = cli(*COMPILE, lm=lm)  # a new run without --checkpoint would lose the interrupted one's steps
    one_error(fresh, USAGE, "p.checkpoint.json holds the finished steps of an unfinished compile", "--checkpoint")
    assert lm.requests == []
    assert cli(*COMPILE, "--checkpoint", "p.checkpoint.json", lm=lm).exit_code == 0


def test_a_named_checkpoint_is_kept_and_a_budget_stop_says_how_to_resume(cli, tmp_path):
    write_qa(tmp_path / "qa.jsonl")
    done = cli(*COMPILE, "--checkpoint", "mine.json", lm=ScriptedLM(answers))
    assert done.exit_code == 0 and (tmp_path / "mine.json").exists()
    stopped = cli(*COMPILE[:5], "q.json", *COMPILE[6:], "--budget", 7, lm=ScriptedLM(answers))
    line = one_error(stopped, 1, "stopped by --budget 7", "q.json holds the best program found so far; the finished")
    assert line.endswith("--budget 7 --threads 1 --checkpoint q.checkpoint.json after raising its --budget")


def test_a_checkpoint_made_on_one_model_is_not_resumed_on_another(cli, tmp_path):
    write_qa(tmp_path / "qa.jsonl")
    stopped = cli(*COMPILE, lm=ScriptedLM(interrupted_at(10)))  # on the default --lm, gemma
    args = resume_args(stopped)
    assert json.loads((tmp_path / "p.checkpoint.lm.json").read_text())["lm"] == "local/gemma-3-270m"
    before = (tmp_path / "p.checkpoint.json").read_text()
    lm = ScriptedLM(answers)
    other = cli(*args, "--lm", "smollm2", lm=lm)
    one_error(
        other,
        USAGE,
        "p.checkpoint.json holds the steps of a compile on --lm local/gemma-3-270m, "
        "this run is on --lm local/smollm2-135m: resume it with --lm local/gemma-3-270m, or delete p.checkpoint.json",
    )
    assert lm.requests == [] and (tmp_path / "p.checkpoint.json").read_text() == before  # nothing ran or changed
    resumed = cli(*args, "--lm", "gemma", lm=lm)  # the same model, by its short name
    assert resumed.exit_code == 0, resumed.output
    assert "finished step(s) read back" in resumed.stdout
    assert not (tmp_path / "p.checkpoint.json").exists() and not (tmp_path / "p.checkpoint.lm.json").exists()


def test_a_checkpoint_that_does_not_name_its_model_is_resumed_with_a_note(cli, tmp_path):
    write_qa(tmp_path / "qa.jsonl")
    args = resume_args(cli(*COMPILE, lm=ScriptedLM(interrupted_at(10))))
    (tmp_path / "p.checkpoint.lm.json").unlink()  # as a checkpoint written before the model was recorded
    resumed = cli(*args, lm=ScriptedLM(answers))
    assert resumed.exit_code == 0, resumed.output
    assert "p.checkpoint.json does not say which model made it; resuming it on local/gemma-3-270m" in resumed.stdout


def test_no_model_file_is_left_when_no_step_finished(cli, tmp_path):
    write_qa(tmp_path / "qa.jsonl")
    early = cli(*COMPILE, lm=ScriptedLM(interrupted_at(4)))
    one_error(early, INTERRUPTED, "no step had finished")
    assert not (tmp_path / "p.checkpoint.lm.json").exists()
