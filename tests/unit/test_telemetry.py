"""The OpenTelemetry exporter (promptless.telemetry): span names, parent links and GenAI attributes."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest

import promptless as pl
from promptless.lm.base import Request
from promptless.testing import ScriptedLM

pytest.importorskip("opentelemetry.sdk", reason="needs the otel extra: pip install 'promptless[otel]'")

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from promptless.telemetry import OpenTelemetryCallback, provider_name

PRICES = {"acme/fast": (1.0, 4.0)}


class Spans:
    """A tracer provider of its own (not the global one) whose finished spans stay in memory."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def callback(self, **kwargs: object) -> OpenTelemetryCallback:
        return OpenTelemetryCallback(self.provider, **kwargs)

    @property
    def finished(self) -> list:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list:
        return [s for s in self.finished if s.name == name]

    def children(self, parent: object) -> list:
        return [s for s in self.finished if s.parent is not None and s.parent.span_id == parent.context.span_id]


@pytest.fixture
def spans() -> Spans:
    return Spans()


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


def test_a_program_gives_nested_module_and_lm_spans(spans):
    lm = pipeline_lm(model="acme/fast")
    with pl.context(lm=lm, callbacks=[spans.callback()], prices=PRICES):
        Pipeline()(question="hi")
    (root,) = spans.named("Pipeline")
    assert root.parent is None and root.kind is SpanKind.INTERNAL
    predicts = spans.children(root)
    assert [s.name for s in predicts] == ["Predict", "Predict"]
    assert [s.attributes["promptless.signature"] for s in predicts] == ["question -> query", "query -> answer"]
    for predict, entry in zip(predicts, lm.history, strict=True):
        (call,) = spans.children(predict)
        assert call.name == "chat fast" and call.kind is SpanKind.CLIENT
        usage = entry.response.usage
        assert dict(call.attributes) == {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "acme",
            "gen_ai.request.model": "fast",
            "gen_ai.request.temperature": 0.0,
            "gen_ai.request.max_tokens": 512,
            "gen_ai.output.type": "json",
            "promptless.lm": "acme/fast",
            "gen_ai.response.model": "fast",
            "gen_ai.response.finish_reasons": ("stop",),
            "gen_ai.usage.input_tokens": usage.prompt_tokens,
            "gen_ai.usage.output_tokens": usage.completion_tokens,
            "promptless.cache_hit": False,
            "promptless.cost_usd": pytest.approx((usage.prompt_tokens + 4 * usage.completion_tokens) / 1e6),
        }
    assert len({s.context.trace_id for s in spans.finished}) == 1
    assert "promptless.inputs" not in root.attributes  # content is opt-in
    assert trace.get_current_span() is trace.INVALID_SPAN  # every span was detached again


def test_sampling_settings_and_base_models_use_their_convention_names(spans):
    lm = ScriptedLM(default={"answer": "a"}, model_type="completion", model="local/smollm2-135m")
    with pl.context(lm=lm, callbacks=[spans.callback()]):
        pl.Predict("question -> answer", n=2, temperature=0.7, seed=3)(question="q")
        lm(Request(prompt="Once upon", stop=("\n\n",)))
    call, direct = spans.named("text_completion smollm2-135m")
    attributes = call.attributes
    assert attributes["gen_ai.operation.name"] == "text_completion"
    assert attributes["gen_ai.provider.name"] == "llama_cpp"
    assert attributes["gen_ai.request.temperature"] == 0.7 and attributes["gen_ai.request.seed"] == 3
    assert attributes["gen_ai.request.choice.count"] == 2
    assert direct.attributes["gen_ai.request.stop_sequences"] == ("\n\n",) and direct.parent is None
    assert attributes["gen_ai.response.finish_reasons"] == ("stop", "stop")
    assert attributes["promptless.cost_usd"] == 0.0  # an embedded model costs nothing


def test_content_is_recorded_only_when_asked(spans):
    with pl.context(lm=pipeline_lm(), callbacks=[spans.callback(capture_content=True)]):
        pl.Predict("question -> answer")(question="what is up?")
    (call,) = spans.named("chat test")
    messages = json.loads(call.attributes["gen_ai.input.messages"])
    assert messages[-1] == {"role": "user", "parts": [{"type": "text", "content": "Question: what is up?"}]}
    (output,) = json.loads(call.attributes["gen_ai.output.messages"])
    assert output["role"] == "assistant" and output["finish_reason"] == "stop"
    assert json.loads(output["parts"][0]["content"])["answer"] == "a"
    (predict,) = spans.named("Predict")
    assert json.loads(predict.attributes["promptless.inputs"]) == {"question": "what is up?"}
    assert json.loads(predict.attributes["promptless.outputs"]) == {"answer": "a"}


def test_evaluate_spans_parent_the_examples_run_in_worker_threads(spans):
    with pl.context(lm=pipeline_lm(), callbacks=[spans.callback()]):
        pl.Evaluate(qa(8), exact, num_threads=4)(Pipeline())
    (evaluate,) = spans.named("evaluate")
    assert evaluate.attributes["promptless.evaluate.examples"] == 8
    assert evaluate.attributes["promptless.evaluate.score"] == 100.0
    assert evaluate.attributes["promptless.evaluate.errors"] == 0
    programs = spans.children(evaluate)
    assert len(programs) == 8 and {s.name for s in programs} == {"Pipeline"}
    for program in programs:
        predicts = spans.children(program)
        assert [s.name for s in predicts] == ["Predict", "Predict"]
        assert all([c.name for c in spans.children(p)] == ["chat test"] for p in predicts)
    assert len({s.context.trace_id for s in spans.finished}) == 1


def test_a_compile_span_holds_its_evaluations_and_its_totals(spans):
    optimizer = pl.BootstrapFewShot(exact, max_bootstrapped_demos=2, max_labeled_demos=0)
    with pl.context(lm=pipeline_lm(model="acme/fast"), callbacks=[spans.callback()], prices=PRICES):
        program = optimizer.compile(Pipeline(), trainset=qa(4), valset=qa(3))
    (compile_span,) = spans.named("compile BootstrapFewShot")
    report = program.compile_report
    assert compile_span.parent is None
    assert compile_span.attributes["promptless.optimizer"] == "BootstrapFewShot"
    assert compile_span.attributes["promptless.compile.lm_calls"] == report.total_calls
    assert compile_span.attributes["promptless.cost_usd"] == pytest.approx(report.cost)
    assert compile_span.attributes["promptless.compile.chosen"] == report.chosen
    children = spans.children(compile_span)
    assert [s.name for s in children if s.name == "evaluate"] == ["evaluate", "evaluate"]
    assert {s.name for s in children} == {"evaluate", "Pipeline"}  # bootstrap runs of the teacher, in threads
    assert all(s.context.trace_id == compile_span.context.trace_id for s in spans.finished)


def test_tool_spans_follow_the_execute_tool_convention(spans):
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    def fail(x: str) -> str:
        raise RuntimeError("no luck")

    with pl.context(callbacks=[spans.callback(capture_content=True)]):
        pl.Tool(add)(a=1, b=2)
        pl.Tool(fail).observe({"x": "y"})
    (ok,) = spans.named("execute_tool add")
    assert dict(ok.attributes) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "add",
        "gen_ai.tool.type": "function",
        "gen_ai.tool.description": "Add two integers.",
        "gen_ai.tool.call.arguments": '{"a": 1, "b": 2}',
        "gen_ai.tool.call.result": "3",
    }
    (failed,) = spans.named("execute_tool fail")
    assert failed.status.status_code is StatusCode.ERROR and failed.attributes["error.type"] == "RuntimeError"
    assert [e.name for e in failed.events] == ["exception"]


def test_errors_mark_spans_and_parse_failures_become_events(spans):
    lm = ScriptedLM([pl.LMUnavailable("down")])
    with pl.context(lm=lm, callbacks=[spans.callback()]), pytest.raises(pl.LMUnavailable):
        pl.Predict("question -> answer")(question="q")
    (call,) = spans.named("chat test")
    assert call.status.status_code is StatusCode.ERROR and call.attributes["error.type"] == "LMUnavailable"
    assert spans.named("Predict")[0].status.status_code is StatusCode.ERROR
    assert trace.get_current_span() is trace.INVALID_SPAN

    spans.exporter.clear()
    with pl.context(lm=ScriptedLM(["not json", {"answer": 4}]), callbacks=[spans.callback()]):
        assert pl.Predict("question -> answer: int")(question="q").answer == 4
    (predict,) = spans.named("Predict")
    assert predict.status.status_code is StatusCode.UNSET
    assert [e.name for e in predict.events] == ["promptless.parse_error"]
    assert predict.events[0].attributes["error.type"] == "ParseError"
    assert len(spans.children(predict)) == 2  # the call and its retry


def test_async_calls_nest_their_spans(spans):
    async def main() -> None:
        await asyncio.gather(*(pl.Predict("question -> answer").acall(question=f"q{i}") for i in range(3)))

    with pl.context(lm=pipeline_lm(), callbacks=[spans.callback()]):
        asyncio.run(main())
    predicts = spans.named("Predict")
    assert len(predicts) == 3 and all(p.parent is None for p in predicts)
    assert all([c.name for c in spans.children(p)] == ["chat test"] for p in predicts)


def test_a_missing_opentelemetry_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(ImportError, match=r"pip install 'promptless\[otel\]'"):
        OpenTelemetryCallback()


def test_provider_names_come_from_the_lm_name():
    assert provider_name("openai/gpt-4o-mini") == "openai"
    assert provider_name("local/gemma-3-270m") == "llama_cpp"
    assert provider_name("my-model", api_base="http://localhost:8080/v1") == "openai"


def test_a_budget_stop_leaves_no_span_open(spans):
    optimizer = pl.BootstrapFewShotWithRandomSearch(
        exact, num_candidate_programs=3, max_bootstrapped_demos=2, max_labeled_demos=0, max_lm_calls=12,
        search_space="dspy",  # its candidates are BootstrapFewShot compiles, each a span of its own
    )
    callback = spans.callback()
    with pl.context(lm=pipeline_lm(), callbacks=[callback]):
        program = optimizer.compile(Pipeline(), trainset=qa(4), valset=qa(3))
    assert program.compile_report.stopped_by_budget
    (outer,) = spans.named("compile BootstrapFewShotWithRandomSearch")
    assert outer.status.status_code is StatusCode.UNSET  # a budget stop is an ending, not a failure
    assert outer.attributes["promptless.compile.stopped_by_budget"] == program.compile_report.stopped_by_budget
    inner = spans.named("compile BootstrapFewShot")
    assert inner and all(s.parent.span_id == outer.context.span_id for s in inner)
    assert any(s.attributes.get("error.type") == "BudgetExhausted" for s in spans.finished)
    assert callback._open == {} and trace.get_current_span() is trace.INVALID_SPAN


def test_a_cache_hit_reports_no_tokens_and_no_cost(spans):
    from promptless.lm.cache import Cache

    lm = ScriptedLM(default={"answer": "a"}, model="acme/fast", cache=Cache(disk=False))
    with pl.context(lm=lm, callbacks=[spans.callback()], prices=PRICES):
        pl.Predict("question -> answer")(question="q")
        pl.Predict("question -> answer")(question="q")
    first, hit = spans.named("chat fast")
    assert first.attributes["promptless.cache_hit"] is False and first.attributes["gen_ai.usage.input_tokens"] > 0
    assert hit.attributes["promptless.cache_hit"] is True
    assert hit.attributes["gen_ai.usage.input_tokens"] == hit.attributes["gen_ai.usage.output_tokens"] == 0
    assert hit.attributes["promptless.cost_usd"] == 0.0 and len(lm.requests) == 1
