"""Callbacks (promptless.callbacks) and inspect_history, against the scripted test LM."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading

import pytest

import promptless as pl
from promptless.adapters import ParseError
from promptless.callbacks import BaseCallback
from promptless.evaluate import EvaluationResult
from promptless.lm.base import Request, Response
from promptless.testing import ScriptedLM

KINDS = ("module", "lm", "adapter_parse", "tool", "evaluate", "compile")


class Recorder(BaseCallback):
    """Keeps each event as (event, call_id, subject, exception); the subject is the instance or the outputs."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, object, BaseException | None]] = []
        self.inputs: dict[str, dict] = {}
        self.threads: dict[str, int] = {}
        self._lock = threading.Lock()

    def _start(self, kind: str, call_id: str, instance: object, inputs: dict) -> None:
        with self._lock:
            self.events.append((f"{kind}_start", call_id, instance, None))
            self.inputs[call_id] = inputs
            self.threads[call_id] = threading.get_ident()

    def _end(self, kind: str, call_id: str, outputs: object, exception: BaseException | None) -> None:
        with self._lock:
            self.events.append((f"{kind}_end", call_id, outputs, exception))

    def names(self) -> list[str]:
        return [event for event, *_ in self.events]

    def labelled(self) -> list[str]:
        """Events with the class of their instance (starts) or outputs (ends), e.g. ``module_start Predict``."""
        return [f"{event} {type(subject).__name__}" for event, _, subject, _ in self.events]

    def of(self, event: str) -> list[tuple[str, str, object, BaseException | None]]:
        return [e for e in self.events if e[0] == event]


for _kind in KINDS:
    setattr(Recorder, f"on_{_kind}_start", lambda self, cid, inst, inputs, _k=_kind: self._start(_k, cid, inst, inputs))
    setattr(Recorder, f"on_{_kind}_end", lambda self, cid, out, exc=None, _k=_kind: self._end(_k, cid, out, exc))


class Pipeline(pl.Module):
    def __init__(self) -> None:
        self.rewrite = pl.Predict("question -> query")
        self.answer = pl.Predict("query -> answer")

    def forward(self, question: str) -> pl.Prediction:
        return self.answer(query=self.rewrite(question=question).query)


def pipeline_lm(**kwargs: object) -> ScriptedLM:
    return ScriptedLM(lambda r: {"query": "q", "answer": "a"}, **kwargs)


def qa(n: int) -> list[pl.Example]:
    return [pl.Example(question=f"q{i}", answer="a").with_inputs("question") for i in range(n)]


def exact(example: pl.Example, prediction: pl.Prediction, trace: object = None) -> bool:
    return example.answer == prediction.answer


def assert_paired(recorder: Recorder) -> None:
    """Every start has exactly one end with the same id and kind, after it, and ids are unique."""
    open_: dict[str, str] = {}
    for event, call_id, *_ in recorder.events:
        kind, phase = event.rsplit("_", 1)
        if phase == "start":
            assert call_id not in open_ and len(call_id) == 32
            open_[call_id] = kind
        else:
            assert open_.pop(call_id) == kind
    assert open_ == {}


# -- order and nesting -----------------------------------------------------------------------------------
def test_events_nest_as_the_calls_do():
    recorder = Recorder()
    with pl.context(lm=pipeline_lm(), callbacks=(recorder,)):
        assert Pipeline()(question="hi").answer == "a"
    one_step = [
        "module_start Predict",
        "lm_start ScriptedLM",
        "lm_end Response",
        "adapter_parse_start ChatAdapter",
        "adapter_parse_end dict",
        "module_end Prediction",
    ]
    assert recorder.labelled() == ["module_start Pipeline", *one_step, *one_step, "module_end Prediction"]
    assert_paired(recorder)
    # stack discipline: each end closes the most recent open call
    stack = []
    for event, call_id, *_ in recorder.events:
        if event.endswith("_start"):
            stack.append(call_id)
        else:
            assert stack.pop() == call_id


def test_callbacks_see_inputs_and_outputs():
    recorder = Recorder()
    lm = pipeline_lm()
    with pl.context(lm=lm, callbacks=[recorder]):  # a list works as well as a tuple
        prediction = Pipeline()("hi")  # positional: named after forward's parameters
    module_start = recorder.of("module_start")
    assert recorder.inputs[module_start[0][1]] == {"question": "hi"}
    assert recorder.inputs[module_start[1][1]] == {"question": "hi"}
    assert recorder.inputs[module_start[2][1]] == {"query": "q"}
    lm_start = recorder.of("lm_start")[0]
    assert lm_start[2] is lm and recorder.inputs[lm_start[1]]["request"] is lm.requests[0]
    response = recorder.of("lm_end")[0][2]
    assert isinstance(response, Response) and response is lm.history[0].response
    parse_start = recorder.of("adapter_parse_start")[0]
    assert recorder.inputs[parse_start[1]]["text"] == response.text
    assert recorder.inputs[parse_start[1]]["signature"].signature == "question -> query"
    assert recorder.of("adapter_parse_end")[0][2] == {"query": "q"}
    assert recorder.of("module_end")[-1][2] is prediction


def test_errors_reach_on_end_and_still_propagate():
    recorder = Recorder()
    lm = ScriptedLM([pl.LMUnavailable("server down")])
    with pl.context(lm=lm, callbacks=(recorder,)), pytest.raises(pl.LMUnavailable):
        pl.Predict("question -> answer")(question="hi")
    assert recorder.names() == ["module_start", "lm_start", "lm_end", "module_end"]
    for _, _, outputs, exception in recorder.of("lm_end") + recorder.of("module_end"):
        assert outputs is None and isinstance(exception, pl.LMUnavailable)


def test_a_parse_failure_and_its_retry_are_both_reported():
    recorder = Recorder()
    lm = ScriptedLM(["not json", "still not json"])
    with pl.context(lm=lm, callbacks=(recorder,)), pytest.raises(ParseError):
        pl.Predict("question -> answer: int")(question="hi")
    assert recorder.names() == [
        "module_start",
        "lm_start",
        "lm_end",
        "adapter_parse_start",
        "adapter_parse_end",
        "lm_start",  # the retry that shows the model its mistake
        "lm_end",
        "adapter_parse_start",
        "adapter_parse_end",
        "module_end",
    ]
    parse_ends = recorder.of("adapter_parse_end")
    assert all(isinstance(exc, ParseError) and out is None for _, _, out, exc in parse_ends)
    assert isinstance(recorder.of("module_end")[0][3], ParseError)


def test_a_raising_callback_is_logged_and_the_program_goes_on(caplog):
    class Broken(BaseCallback):
        def __getattribute__(self, name: str) -> object:
            if name.startswith("on_"):
                return lambda *args: 1 / 0
            return super().__getattribute__(name)

    recorder = Recorder()
    warnings = caplog.at_level(logging.WARNING, logger="promptless.callbacks")
    with warnings, pl.context(lm=pipeline_lm(), callbacks=(Broken(), recorder)):
        assert Pipeline()(question="hi").answer == "a"
    assert len(recorder.events) == 14  # the callback after the broken one saw everything
    failures = [r for r in caplog.records if "Broken.on_" in r.getMessage()]
    assert len(failures) == 14 and all(r.exc_info[0] is ZeroDivisionError for r in failures)


def test_callbacks_apply_only_where_registered():
    recorder = Recorder()
    lm = pipeline_lm()
    with pl.context(lm=lm, callbacks=(recorder,)):
        pl.Predict("question -> query")(question="inside")
    pl.Predict("question -> query", lm=lm)(question="outside")
    assert recorder.names().count("lm_start") == 1

    def configured() -> None:
        pl.configure(lm=lm, callbacks=[recorder])
        pl.Predict("question -> query")(question="configured")

    contextvars.copy_context().run(configured)  # configure() changes that context only
    assert recorder.names().count("lm_start") == 2
    assert pl.settings.current().callbacks == ()


def test_without_callbacks_nothing_is_built(monkeypatch):
    import promptless.callbacks as callbacks

    def forbidden(*args: object) -> None:
        raise AssertionError("a call was observed with no callback registered")

    monkeypatch.setattr(callbacks, "_begin", forbidden)
    monkeypatch.setattr("uuid.uuid4", forbidden)
    with pl.context(lm=pipeline_lm()):
        assert Pipeline()(question="hi").answer == "a"
        pl.Evaluate(qa(2), exact, num_threads=1)(Pipeline())
        asyncio.run(pl.Predict("question -> query").acall(question="hi"))


# -- async and streaming -------------------------------------------------------------------------------------
def test_async_calls_are_observed_once():
    recorder = Recorder()
    with pl.context(lm=pipeline_lm(), callbacks=(recorder,)):
        asyncio.run(pl.Predict("question -> query").acall(question="hi"))  # Predict has a native aforward
    assert recorder.labelled() == [
        "module_start Predict",
        "lm_start ScriptedLM",
        "lm_end Response",
        "adapter_parse_start ChatAdapter",
        "adapter_parse_end dict",
        "module_end Prediction",
    ]
    recorder.events.clear()
    with pl.context(lm=pipeline_lm(), callbacks=(recorder,)):
        asyncio.run(Pipeline().acall(question="hi"))  # no aforward: forward runs in a thread, observed once
    assert recorder.names().count("module_start") == 3 and recorder.labelled()[0] == "module_start Pipeline"
    assert_paired(recorder)


def test_streaming_reports_one_lm_call_with_its_response():
    recorder = Recorder()
    with pl.context(lm=pipeline_lm(), callbacks=(recorder,)):
        events = list(pl.stream(pl.Predict("question -> answer"), question="hi"))
    assert events[-1].answer == "a"
    assert recorder.names() == [
        "module_start",
        "lm_start",
        "lm_end",
        "adapter_parse_start",
        "adapter_parse_end",
        "module_end",
    ]
    assert isinstance(recorder.of("lm_end")[0][2], Response)


# -- tools -----------------------------------------------------------------------------------------------------
def test_tool_calls_report_arguments_results_and_errors():
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    def fail(x: str) -> str:
        raise RuntimeError("no luck")

    recorder = Recorder()
    with pl.context(callbacks=(recorder,)):
        assert pl.Tool(add)(a=1, b="2") == 3
        assert pl.Tool(fail).observe({"x": "y"}) == "Error: RuntimeError: no luck"
        assert asyncio.run(pl.Tool(add).acall(a=2, b=2)) == 4
    starts, ends = recorder.of("tool_start"), recorder.of("tool_end")
    assert [recorder.inputs[s[1]] for s in starts] == [{"a": 1, "b": "2"}, {"x": "y"}, {"a": 2, "b": 2}]
    assert [s[2].name for s in starts] == ["add", "fail", "add"]
    assert ends[0][2] == 3 and ends[2][2] == 4
    assert ends[1][2] is None and isinstance(ends[1][3], RuntimeError)


# -- evaluation and compiles -------------------------------------------------------------------------------------
def test_evaluate_brackets_its_examples_across_threads():
    recorder = Recorder()
    with pl.context(lm=pipeline_lm(), callbacks=(recorder,)):
        result = pl.Evaluate(qa(6), exact, num_threads=3)(Pipeline())
    names = recorder.names()
    assert names[0] == "evaluate_start" and names[-1] == "evaluate_end"
    assert names.count("module_start") == 18 and names.count("lm_start") == 12
    assert recorder.of("evaluate_end")[0][2] is result and isinstance(result, EvaluationResult)
    evaluate_id = recorder.of("evaluate_start")[0][1]
    inputs = recorder.inputs[evaluate_id]
    assert inputs["devset"] is None and isinstance(inputs["program"], Pipeline) and inputs["metric"] is None
    assert_paired(recorder)
    starts = recorder.of("module_start")
    program_threads = {recorder.threads[cid] for _, cid, inst, _ in starts if type(inst) is Pipeline}
    assert threading.get_ident() not in program_threads  # examples ran in worker threads, still observed


def test_compile_brackets_bootstrap_without_a_valset():
    recorder = Recorder()
    with pl.context(lm=pipeline_lm(), callbacks=(recorder,)):
        program = pl.BootstrapFewShot(exact, max_bootstrapped_demos=2, max_labeled_demos=0).compile(
            Pipeline(), trainset=qa(4)
        )
    names = recorder.names()
    assert names[0] == "compile_start" and names[-1] == "compile_end"
    assert names.count("compile_start") == 1 and names.count("lm_start") >= 4
    compile_id = recorder.of("compile_start")[0][1]
    assert recorder.inputs[compile_id]["optimizer"] == "BootstrapFewShot"
    assert recorder.of("compile_end")[0][2] is program and program.compile_report.lm_calls >= 4
    assert_paired(recorder)


def test_compile_brackets_a_search_run_once_and_its_evaluations():
    recorder = Recorder()
    with pl.context(lm=pipeline_lm(), callbacks=(recorder,)):
        program = pl.BootstrapFewShot(exact, max_bootstrapped_demos=2, max_labeled_demos=0).compile(
            Pipeline(), trainset=qa(4), valset=qa(3)
        )
    names = recorder.names()
    assert names[0] == "compile_start" and names[-1] == "compile_end" and names.count("compile_start") == 1
    assert names.count("evaluate_start") == 2  # the baseline and the compiled candidate
    assert recorder.of("compile_end")[0][2] is program and program.compile_report.chosen is not None
    assert type(recorder.of("compile_start")[0][2]).__name__ == "SearchRun"
    assert_paired(recorder)


def test_a_compile_that_fails_reports_its_error():
    recorder = Recorder()
    optimizer = pl.BootstrapFewShot(exact, max_labeled_demos=0)
    lm = ScriptedLM(default=pl.LMAuthError("bad key"))
    with pl.context(lm=lm, callbacks=(recorder,)), pytest.raises(pl.LMAuthError):
        optimizer.compile(Pipeline(), trainset=qa(2), valset=qa(2))
    end = recorder.of("compile_end")
    assert len(end) == 1 and end[0][2] is None and isinstance(end[0][3], pl.LMAuthError)
    assert recorder.names()[-1] == "compile_end"
    assert_paired(recorder)


# -- inspect_history --------------------------------------------------------------------------------------------
def test_inspect_history_shows_demos_inputs_raw_output_and_parsed_fields(capsys):
    lm = ScriptedLM([{"answer": "4"}])
    predict = pl.Predict("question -> answer: int", lm=lm)
    predict.demos = [pl.Example(question="1+1?", answer=2), pl.Example(question="2+1?", answer=3)]
    predict(question="2+2?")
    with pl.context(prices={"scripted/test": (1.0, 2.0)}):
        text = pl.inspect_history(1, lm=lm)
    assert text in capsys.readouterr().out
    usage = lm.history[0].response.usage
    cost = (usage.prompt_tokens * 1.0 + usage.completion_tokens * 2.0) / 1e6
    assert f"${cost:.6f}" in text.splitlines()[0]
    sections = text.split("\n")
    assert "Signature: question -> answer: int" in sections
    demos_at = sections.index("Demos (2):")
    assert sections[demos_at + 1 : demos_at + 4] == ["  [1]", "    question: 1+1?", "    answer: 2"]
    assert sections[sections.index("Inputs:") + 1] == "  question: 2+2?"
    assert sections[sections.index("Raw output [0]:") + 1] == '{"answer": "4"}'
    assert sections[sections.index("Parsed [0]:") + 1] == "  answer: 4"
    assert "Question: 1+1?" in text  # the demos as the prompt shows them too


def test_inspect_history_of_a_direct_call_and_of_several_completions():
    lm = ScriptedLM(["plain text", {"answer": "x"}, {"answer": "y"}])
    lm(Request(prompt="hello there"))
    pl.Predict("question -> answer", lm=lm, n=2)(question="q")
    direct, sampled = pl.inspect_history(2, lm=lm).split("\n\n── ")
    assert "Prompt:\nhello there\nRaw output [0]:\nplain text" in direct and "Parsed" not in direct
    assert "Parsed [0]:\n  answer: x" in sampled and "Parsed [1]:\n  answer: y" in sampled


def test_history_entries_keep_their_own_inputs_under_threads():
    lm = ScriptedLM(lambda r: {"answer": r.messages[-1]["content"].removeprefix("Question: ")})
    predict = pl.Predict("question -> answer", lm=lm)
    predict.batch([{"question": f"q{i}"} for i in range(24)], num_threads=6)
    assert len(lm.history) == 24
    for entry in lm.history:
        assert entry.inputs is not None and entry.request.text.endswith(f"Question: {entry.inputs['question']}")
        assert entry.outputs == [{"answer": entry.inputs["question"]}]


def test_a_budget_stop_ends_the_compile_with_the_best_program_and_closes_every_call():
    recorder = Recorder()
    optimizer = pl.BootstrapFewShotWithRandomSearch(
        exact, num_candidate_programs=3, max_bootstrapped_demos=2, max_labeled_demos=0, max_lm_calls=12
    )
    with pl.context(lm=pipeline_lm(), callbacks=(recorder,)):
        program = optimizer.compile(Pipeline(), trainset=qa(4), valset=qa(3))
    assert program.compile_report.stopped_by_budget
    assert_paired(recorder)
    outer = recorder.of("compile_start")[0]
    assert recorder.inputs[outer[1]]["optimizer"] == "BootstrapFewShotWithRandomSearch"
    (outer_end,) = [e for e in recorder.of("compile_end") if e[1] == outer[1]]
    assert outer_end[2] is program and outer_end[3] is None
    assert recorder.events[-1] == outer_end
    stopped = [e for e in recorder.of("compile_end") + recorder.of("lm_end") if e[3] is not None]
    assert stopped and all(type(e[3]).__name__ == "BudgetExhausted" for e in stopped)  # inner calls saw the stop


class _TwoSteps(pl.Module):
    def __init__(self, first_callbacks=()):
        self.first = pl.Predict("question -> answer", callbacks=first_callbacks)
        self.second = pl.Predict("answer -> verdict")

    def forward(self, question):
        return self.second(answer=self.first(question=question).answer)


def test_instance_callbacks_see_only_their_own_calls_after_those_in_force():
    order: list[str] = []

    class Named(BaseCallback):
        def __init__(self, name):
            self.name, self.starts = name, []

        def on_module_start(self, call_id, instance, inputs):
            order.append(self.name)
            self.starts.append(instance)

        def on_lm_start(self, call_id, instance, inputs):
            self.starts.append(instance)

    mine, global_cb, on_lm = Named("mine"), Named("global"), Named("lm")
    program = _TwoSteps(first_callbacks=[mine])
    lm = ScriptedLM([{"answer": "a"}, {"verdict": "v"}], callbacks=[on_lm])
    with pl.context(lm=lm, callbacks=[global_cb]):
        program(question="q")
    assert mine.starts == [program.first]  # not the program, not the second step, not the LM
    assert on_lm.starts == [lm, lm]  # the LM's own callback sees its two calls, no module
    assert order[:3] == ["global", "global", "mine"]  # program, then first step: settings' first, then its own
    assert len(global_cb.starts) == 3 + 2  # three modules and two LM calls


def test_copies_of_a_program_share_instance_callbacks():
    seen: list[object] = []

    class Count(BaseCallback):
        def on_module_start(self, call_id, instance, inputs):
            seen.append(instance)

    callback = Count()
    program = _TwoSteps(first_callbacks=[callback])
    clone = program.deepcopy()
    assert clone.first.callbacks[0] is callback and clone.first is not program.first
    with pl.context(lm=ScriptedLM([{"answer": "a"}, {"verdict": "v"}])):
        clone(question="q")
    assert seen == [clone.first]
    assert "callbacks" not in program.first.predictor_state()  # observers are not saved with the program
