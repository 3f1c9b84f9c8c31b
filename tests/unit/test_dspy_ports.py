"""Issue 17: DSPy programs port by changing the import. Each test is one behaviour DSPy programs rely on."""

from __future__ import annotations

import asyncio
import enum
import json
import threading
from types import SimpleNamespace

import pytest

import promptless as dspy
from promptless.testing import ScriptedLM


class Sentiment(enum.Enum):
    POSITIVE = "positive"
    NEGATIVE = "negative"


class Answer:
    """A custom type named in a string signature, found in this module's namespace."""


# -- import paths ---------------------------------------------------------------------------------------
def test_dspy_import_paths_reexport_the_same_objects():
    from promptless.adapters import ChatAdapter, JSONAdapter
    from promptless.evaluate import Evaluate, SemanticF1, answer_exact_match
    from promptless.predict import ChainOfThought, Predict, majority
    from promptless.primitives import Completions, Example, Prediction
    from promptless.signatures import InputField, OutputField, Signature, make_signature
    from promptless.teleprompt import BootstrapFewShot, LabeledFewShot, Teleprompter
    from promptless.utils import DummyLM, with_callbacks

    assert BootstrapFewShot is dspy.BootstrapFewShot and LabeledFewShot is dspy.LabeledFewShot
    assert Teleprompter is dspy.Optimizer
    assert Evaluate is dspy.Evaluate and SemanticF1 is dspy.SemanticF1 and answer_exact_match is dspy.answer_exact_match
    assert Predict is dspy.Predict and ChainOfThought is dspy.ChainOfThought and majority is dspy.majority
    assert (Example, Prediction, Completions) == (dspy.Example, dspy.Prediction, dspy.Completions)
    assert (Signature, InputField, OutputField, make_signature) == (
        dspy.Signature, dspy.InputField, dspy.OutputField, dspy.make_signature,
    )  # fmt: skip
    assert DummyLM is ScriptedLM and ChatAdapter is dspy.ChatAdapter and JSONAdapter is dspy.JSONAdapter
    assert callable(with_callbacks)
    assert dspy.evaluate.answer_exact_match is answer_exact_match
    assert dspy.teleprompt.BootstrapFewShot is BootstrapFewShot


# -- signatures -----------------------------------------------------------------------------------------
def test_classic_untyped_class_fields_are_str_fields():
    class QA(dspy.Signature):
        """Answer questions."""

        context = dspy.InputField(desc="facts")
        question = dspy.InputField()
        answer = dspy.OutputField(desc="short", prefix="Final Answer:")

    assert list(QA.fields) == ["context", "question", "answer"]
    assert all(f.annotation is str for f in QA.fields.values())
    assert QA.fields["context"].desc == "facts" and QA.fields["answer"].prefix == "Final Answer:"
    with dspy.context(lm=ScriptedLM([{"answer": "Paris"}])):
        assert dspy.Predict(QA)(context="x", question="y").answer == "Paris"


def test_a_typed_attribute_without_a_field_is_an_error_at_once():
    with pytest.raises(dspy.SignatureError, match="InputField"):

        class Broken(dspy.Signature):
            question: str
            answer: str = dspy.OutputField()


def test_custom_types_come_from_the_defining_namespace_once():
    def build():
        class Local(enum.Enum):
            A = "a"
            B = "b"

        return dspy.Signature("q -> a: Answer, b: Local, s: Sentiment"), Local

    sig, local = build()
    assert sig.fields["a"].annotation is Answer and sig.fields["b"].annotation is local
    assert dspy.Signature("q -> a: X", custom_types={"X": int}).fields["a"].annotation is int  # still supported
    with pytest.raises(dspy.SignatureError, match="unknown type 'NoSuchType'"):
        dspy.Signature("q -> a: NoSuchType")
    with pytest.raises(dspy.SignatureError, match="unknown type 'json'"):
        dspy.Signature("q -> a: json")  # a module is not a type


def test_enum_inputs_and_outputs():
    lm = ScriptedLM([{"label": "Negative"}])
    with dspy.context(lm=lm):
        pred = dspy.Predict("text, hint: Sentiment -> label: Sentiment")(text="awful", hint=Sentiment.POSITIVE)
    assert pred.label is Sentiment.NEGATIVE
    assert "Hint: positive" in lm.requests[0].text
    assert lm.requests[0].schema["properties"]["label"]["enum"] == ["positive", "negative"]


def test_variadic_tuple_and_method_named_fields():
    sig = dspy.Signature("items: list[str], inputs -> values: tuple[int, ...]")
    assert sig.signature == "items: list[str], inputs -> values: tuple[int, ...]"
    with dspy.context(lm=ScriptedLM([{"values": [1, 2, 3]}])):
        pred = dspy.Predict(sig)(items=["a"], inputs="x")
    assert pred["values"] == (1, 2, 3)
    with pytest.raises(dspy.SignatureError, match="reserved"):
        dspy.Signature("demos -> a")  # a Predict call's own keyword: truly impossible


def test_signature_edits_by_dspy_names():
    class QA(dspy.Signature):
        """Answer."""

        question = dspy.InputField()
        answer = dspy.OutputField()

    assert QA.append_instructions("Be brief.").instructions == "Answer.\n\nBe brief."
    assert QA.equals(QA) and QA().equals(dspy.Signature("question -> answer", "Answer."))
    made = dspy.make_signature("a, b -> c", "Add.")
    assert made.signature == "a, b -> c" and made.instructions == "Add."
    typed = dspy.make_signature({"x": (int, dspy.InputField()), "y": dspy.OutputField(desc="out")})
    assert typed.fields["x"].annotation is int and typed.fields["y"].desc == "out"
    updated = QA.with_updated_fields("answer", desc="one word", prefix="Reply:")
    assert (updated.fields["answer"].desc, updated.fields["answer"].label) == ("one word", "Reply")
    assert dspy.InputField(desc="d", format=str).desc == "d"  # DSPy's pydantic keywords are accepted
    assert dspy.signatures.infer_prefix("some_field") == "Some Field"


# -- evaluate ---------------------------------------------------------------------------------------------
def devset(n=4):
    return [dspy.Example(question=f"q{i}", answer="yes").with_inputs("question") for i in range(n)]


def test_two_argument_metrics_work_everywhere():
    def metric(example, pred):
        return example.answer == pred.answer

    with dspy.context(lm=ScriptedLM(default={"answer": "yes"})):
        result = dspy.Evaluate(devset=devset(), metric=metric, num_threads=1)(dspy.Predict("question -> answer"))
        assert result.score == 100.0 and result.errors == 0
        compiled = dspy.BootstrapFewShot(metric=lambda e, p: e.answer == p.answer).compile(
            dspy.Predict("question -> answer"), trainset=devset()
        )
    assert len(compiled.demos) == 4


def test_evaluate_display_table_and_dspy_fields(capsys):
    program = dspy.Predict("question -> answer")
    with dspy.context(lm=ScriptedLM(default={"answer": "yes"})):
        evaluate = dspy.Evaluate(devset=devset(6), metric=dspy.answer_exact_match, display_table=2,
                                 display_progress=False, provide_traceback=True, num_threads=1)  # fmt: skip
        result = evaluate(program)
    out = capsys.readouterr().out
    assert "question" in out and "answer_exact_match" in out and "4 more rows" in out
    rows = result.table if isinstance(result.table, list) else result.table.to_dict("records")
    assert len(rows) == 6 and rows[0]["pred_answer"] == "yes" and rows[0]["answer_exact_match"] == 1.0
    assert result["score"] == result.score == 100.0 and len(result.results) == 6
    _, prediction, score = result.results[0]
    assert prediction.answer == "yes" and score == 1.0
    made = dspy.EvaluationResult(50.0, [])
    assert (made.score, made.results) == (50.0, [])
    with dspy.context(lm=ScriptedLM(default={"answer": "yes"})):
        score, scores = dspy.Evaluate(devset=devset(2), metric=dspy.answer_exact_match, return_all_scores=True)(program)
    assert (score, scores) == (100.0, [1.0, 1.0])


# -- LMs ----------------------------------------------------------------------------------------------------
class EchoLM(dspy.BaseLM):
    """A custom LM written as DSPy's docs write one: forward returns an OpenAI-shaped response."""

    def forward(self, prompt=None, messages=None, **kwargs):
        self.calls = [*getattr(self, "calls", []), (messages, kwargs)]
        message = SimpleNamespace(content=json.dumps({"answer": "42"}))
        choice = SimpleNamespace(message=message, finish_reason="stop")
        return SimpleNamespace(choices=[choice], usage={"prompt_tokens": 7, "completion_tokens": 3})


def test_base_lm_subclass_gets_history_usage_cache_and_callbacks():
    seen = []

    class Spy(dspy.BaseCallback):
        def on_lm_start(self, call_id, instance, inputs):
            seen.append(instance)

    lm = EchoLM("custom/echo", cache=False)
    with dspy.context(lm=lm, callbacks=[Spy()]):
        pred = dspy.Predict("question -> answer")(question="?")
    assert pred.answer == "42" and seen == [lm] and len(lm.history) == 1
    assert pred.get_lm_usage() == {
        "custom/echo": {
            "prompt_tokens": 7,
            "completion_tokens": 3,
            "total_tokens": 10,
            "prompt_tokens_details": {"cached_tokens": 0},
        }
    }
    assert pred.usage.prompt_tokens == 7
    messages, kwargs = lm.calls[0]
    assert messages[-1]["role"] == "user" and kwargs == {"temperature": 0.0, "max_tokens": 1000}
    assert lm.kwargs == {"temperature": 0.0, "max_tokens": 1000}


def test_lm_subclass_with_forward_and_dspy_positional_constructor():
    class Mine(dspy.LM):
        def forward(self, prompt=None, messages=None, **kwargs):
            return ['{"answer": "7"}']

    assert dspy.Predict("question -> answer", lm=Mine("x/y", cache=False))(question="?").answer == "7"
    lm = dspy.LM("openai/gpt-4o-mini", "chat", 0.7, 100, False)
    assert (lm.temperature, lm.max_tokens, lm.model_type) == (0.7, 100, "chat")
    assert dspy.LM("openai/base", "text", None, None, False).model_type == "completion"
    with pytest.raises(ValueError, match="model_type"):
        dspy.LM("openai/x", "images")


def test_configure_track_usage_is_accepted():
    with dspy.context(track_usage=True, lm=ScriptedLM([{"answer": "a"}])):
        pred = dspy.Predict("question -> answer")(question="q")
    assert list(pred.get_lm_usage()) == ["scripted/test"] and pred.usage.calls == 1


# -- modules ----------------------------------------------------------------------------------------------
class Locked(dspy.Module):
    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()
        self.client = SimpleNamespace(session=threading.Lock())
        self.generate = dspy.Predict("question -> answer")
        self.hops = [dspy.Predict("q -> a"), dspy.ChainOfThought("q -> a")]
        self.table = {"x": dspy.Predict("q -> a")}

    def forward(self, question):
        with self.lock:
            return self.generate(question=question)


def test_deepcopy_shares_what_cannot_be_copied_and_compiles():
    program = Locked()
    copy = program.deepcopy()
    assert copy.lock is program.lock and copy.client is program.client
    assert copy.generate is not program.generate and copy.hops[1].predict is not program.hops[1].predict
    assert copy.table["x"] is not program.table["x"]
    with dspy.context(lm=ScriptedLM(default={"answer": "yes"})):
        compiled = dspy.BootstrapFewShot(metric=lambda e, p, t=None: True).compile(program, trainset=devset(2))
    assert len(compiled.generate.demos) == 2 and program.generate.demos == []


def test_named_sub_modules_are_named_as_in_dspy():
    names = [name for name, _ in Locked().named_sub_modules()]
    assert names == ["self", "self.generate", "self.hops[0]", "self.hops[1]", "self.table[x]", "self.hops[1].predict"]
    assert [n for n, _ in Locked().named_predictors()] == ["generate", "hops[0]", "hops[1].predict", "table['x']"]
    assert next(n for n, _ in Locked().named_sub_modules(type_=dspy.Predict)) == "self.generate"


def test_module_callbacks_positional_calls_and_reset():
    events = []

    class Spy(dspy.BaseCallback):
        def on_module_start(self, call_id, instance, inputs):
            events.append(type(instance).__name__)

    class Wrapper(dspy.Module):
        def __init__(self):
            super().__init__(callbacks=[Spy()])
            self.inner = dspy.Predict("question -> answer")

        def forward(self, question):
            return self.inner(question=question)

    lm = ScriptedLM(default={"answer": "a"})
    with dspy.context(lm=lm):
        Wrapper()(question="q")
        assert events == ["Wrapper"]
        with pytest.raises(TypeError, match=r"by name.*question=\.\.\."):
            dspy.Predict("question -> answer")("q")
    predictor = dspy.Predict("question -> answer", lm=lm)
    predictor.demos = [dspy.Example(question="q", answer="a")]
    predictor.reset()
    assert predictor.demos == [] and predictor.lm is lm  # the LM is a device: it stays


def test_parallel_accepts_timeout_and_straggler_limit():
    parallel = dspy.Parallel(num_threads=2, timeout=5, straggler_limit=2)
    with dspy.context(lm=ScriptedLM(default={"answer": "a"})):
        results = parallel([(dspy.Predict("question -> answer"), {"question": "q"})] * 3)
    assert [r.answer for r in results] == ["a", "a", "a"]


# -- callbacks ---------------------------------------------------------------------------------------------
def test_with_callbacks_as_a_plain_decorator_and_adapter_format_events():
    events = []

    class Spy(dspy.BaseCallback):
        def on_module_start(self, call_id, instance, inputs):
            events.append(("module", inputs))

        def on_adapter_format_start(self, call_id, instance, inputs):
            events.append(("format", sorted(inputs)))

        def on_adapter_format_end(self, call_id, outputs, exception=None):
            events.append(("formatted", type(outputs).__name__))

    class Helper:
        @dspy.utils.with_callbacks
        def run(self, x):
            return x * 2

        forward = run

    with dspy.context(callbacks=[Spy()], lm=ScriptedLM([{"answer": "a"}])):
        assert Helper().run(3) == 6
        dspy.Predict("question -> answer")(question="q")
    assert events[0] == ("module", {"x": 3})
    assert ("format", ["demos", "inputs", "signature"]) in events and ("formatted", "Request") in events


def test_compile_events_for_an_optimizer_written_by_the_user():
    events = []

    class Spy(dspy.BaseCallback):
        def on_compile_start(self, call_id, instance, inputs):
            events.append(("start", inputs["optimizer"]))

        def on_compile_end(self, call_id, outputs, exception=None):
            events.append(("end", outputs))

    class MyOptimizer(dspy.teleprompt.Teleprompter):
        def compile(self, student, *, trainset, valset=None, teacher=None):
            return student

    program = dspy.Predict("q -> a")
    with dspy.context(callbacks=[Spy()]):
        assert MyOptimizer().compile(program, trainset=[]) is program
    assert events == [("start", "MyOptimizer"), ("end", program)]


# -- streaming and async ---------------------------------------------------------------------------------
def test_streamify_with_a_listener_and_asyncify():
    cot = dspy.ChainOfThought("question -> answer")
    lm = ScriptedLM(default={"reasoning": "r", "answer": "Paris, France"})

    async def collect():
        stream = dspy.streamify(cot, stream_listeners=[dspy.StreamListener(signature_field_name="answer")])
        return [event async for event in stream(question="capital?")]

    with dspy.context(lm=lm):
        events = asyncio.run(collect())
        answer = asyncio.run(dspy.asyncify(cot)(question="capital?")).answer
    pieces = [e for e in events if isinstance(e, dspy.StreamResponse)]
    assert "".join(p.chunk for p in pieces) == "Paris, France" and pieces[-1].is_last_chunk
    assert {p.predict_name for p in pieces} == {"predict"} and {p.signature_field_name for p in pieces} == {"answer"}
    assert isinstance(events[-1], dspy.Prediction) and answer == "Paris, France"


# -- saving ------------------------------------------------------------------------------------------------
DSPY_COT_FILE = {  # what DSPy 3.4.1 writes for ChainOfThought(QA) with one demo (checked against DSPy itself)
    "predict": {
        "traces": [],
        "train": [],
        "demos": [{"augmented": True, "question": "a", "reasoning": "r", "answer": "b"}],
        "signature": {
            "instructions": "Answer tersely.",
            "fields": [
                {"prefix": "Question:", "description": "q"},
                {"prefix": "Reasoning:", "description": "${reasoning}"},
                {"prefix": "Ans:", "description": "${answer}"},
            ],
        },
        "lm": {"model": "openai/gpt-4o-mini", "api_base": "https://evil.example/v1", "temperature": 0.0},
    },
    "metadata": {"dependency_versions": {"python": "3.11", "dspy": "3.4.1", "cloudpickle": "3.1"}},
}


def test_load_reads_dspy_state_files_and_never_honours_their_endpoint(tmp_path):
    class QA(dspy.Signature):
        """Answer."""

        question = dspy.InputField()
        answer = dspy.OutputField()

    path = tmp_path / "dspy.json"
    path.write_text(json.dumps(DSPY_COT_FILE))
    program = dspy.ChainOfThought(QA).load(path)
    predictor = program.predict
    assert predictor.signature.instructions == "Answer tersely."
    assert predictor.signature.fields["question"].desc == "q"
    assert predictor.signature.fields["answer"].prefix == "Ans:"
    assert predictor.signature.fields["question"].prefix is None
    assert predictor.signature.fields["reasoning"].desc  # DSPy's placeholder keeps the program's own
    assert [d.toDict() for d in predictor.demos] == [{"question": "a", "reasoning": "r", "answer": "b"}]
    assert predictor.lm is None and predictor.saved_lm["model"] == "openai/gpt-4o-mini"
    bad = dict(DSPY_COT_FILE, predict={**DSPY_COT_FILE["predict"], "signature": {"instructions": "", "fields": []}})
    path.write_text(json.dumps(bad))
    with pytest.raises(dspy.ArtifactError, match="0 fields"):
        dspy.ChainOfThought(QA).load(path)


# -- errors --------------------------------------------------------------------------------------------------
def test_dspy_exception_names_are_aliases_of_the_promptless_tree():
    assert dspy.DSPyError is dspy.PromptlessError
    assert dspy.LMRateLimitError is dspy.LMRateLimited and dspy.LMTimeoutError is dspy.LMTimeout
    assert dspy.ContextWindowExceededError is dspy.LMContextOverflow and dspy.AdapterParseError is dspy.ParseError
    assert dspy.LMInvalidRequestError is dspy.LMBadRequest and issubclass(dspy.LMServerError, dspy.LMError)
    assert dspy.is_retryable_lm_error(dspy.LMRateLimitError("slow down"))
    assert not dspy.is_retryable_lm_error(dspy.LMAuthError("bad key"))
    with pytest.raises(dspy.DSPyError):
        raise dspy.LMTimeoutError("took too long")
    from promptless.errors import DSPY_NAMES

    for dspy_name, ours in DSPY_NAMES.items():
        assert getattr(dspy, dspy_name) is getattr(dspy, ours)


# -- settled differences -------------------------------------------------------------------------------------
def test_settled_differences_stay_as_documented():
    assert dspy.Ensemble().reduce_fn is dspy.majority  # DSPy's default is None (a list of outputs)
    with pytest.raises(ValueError, match="trainset is empty"):
        dspy.BootstrapFewShot(metric=lambda e, p: True).compile(dspy.Predict("q -> a"), trainset=[])


# -- the ported example ----------------------------------------------------------------------------------------
PORTED = '''
import promptless as dspy
from promptless.utils import DummyLM
from promptless.teleprompt import BootstrapFewShot


class GenerateAnswer(dspy.Signature):
    """Answer questions with short factoid answers."""

    context = dspy.InputField(desc="may contain relevant facts")
    question = dspy.InputField()
    answer = dspy.OutputField(desc="often between 1 and 5 words")


class RAG(dspy.Module):
    def __init__(self, num_passages=3):
        super().__init__()
        self.num_passages = num_passages
        self.generate_answer = dspy.ChainOfThought(GenerateAnswer)

    def forward(self, question):
        context = ["Paris is the capital of France.", "Berlin is the capital of Germany."][: self.num_passages]
        prediction = self.generate_answer(context=context, question=question)
        return dspy.Prediction(context=context, answer=prediction.answer)


def validate_answer(example, pred):
    return dspy.evaluate.answer_exact_match(example, pred)


lm = DummyLM([{"reasoning": "The facts say so.", "answer": "Paris"}] * 20)
dspy.configure(lm=lm)

trainset = [dspy.Example(question="What is the capital of France?", answer="Paris").with_inputs("question")] * 3
devset = [dspy.Example(question="Capital of France?", answer="Paris").with_inputs("question")] * 6

teleprompter = BootstrapFewShot(metric=validate_answer, max_bootstrapped_demos=2)
compiled_rag = teleprompter.compile(RAG(), trainset=trainset)

evaluate = dspy.Evaluate(devset=devset, metric=validate_answer, num_threads=1, display_progress=True, display_table=5)
result = evaluate(compiled_rag)

compiled_rag.save(SAVE_PATH)
loaded_rag = RAG()
loaded_rag.load(SAVE_PATH)
'''


def test_a_dspy_tutorial_program_runs_unchanged(tmp_path, capsys):
    namespace = {"SAVE_PATH": str(tmp_path / "rag.json"), "__name__": "ported_example"}
    with dspy.context():  # the program configures its own LM; this keeps it from leaking into other tests
        exec(compile(PORTED, "ported_example.py", "exec"), namespace)
    result = namespace["result"]
    assert result.score == 100.0 and len(result.results) == 6
    assert "validate_answer" in capsys.readouterr().out
    compiled, loaded = namespace["compiled_rag"], namespace["loaded_rag"]
    demos = compiled.generate_answer.predict.demos
    assert len(demos) == 3 and all("reasoning" in d for d in demos[:2])  # 2 bootstrapped, topped up with labels
    assert [d.toDict() for d in loaded.generate_answer.predict.demos] == [
        d.toDict() for d in compiled.generate_answer.predict.demos
    ]
    assert loaded.generate_answer.predict.signature == compiled.generate_answer.predict.signature


# -- the migration page's table, checked against the code ----------------------------------------------------
def test_every_name_the_migration_table_gives_exists():
    import importlib
    import re
    from pathlib import Path

    page = Path(__file__).resolve().parents[2] / "docs" / "migration-from-dspy.md"
    table = [line for line in page.read_text(encoding="utf-8").splitlines() if line.startswith("| `")]
    missing, checked = [], 0
    for line in table:
        for root, dotted in re.findall(r"`(pl|promptless)\.([\w.]+)", line):
            parts = [p for p in dotted.split(".") if p]  # `promptless.teleprompt.*` names the module
            if root == "pl":
                target, rest = dspy, parts
            else:  # the longest importable module path, then attributes
                for cut in range(len(parts), 0, -1):
                    try:
                        target = importlib.import_module("promptless." + ".".join(parts[:cut]))
                    except ImportError:
                        continue
                    rest = parts[cut:]
                    break
                else:
                    missing.append(f"promptless.{dotted}")
                    continue
            try:
                for part in rest:
                    target = getattr(target, part)
            except AttributeError:
                missing.append(f"{root}.{dotted}")
            checked += 1
    assert checked > 60 and not missing, f"the migration table names what does not exist: {missing}"
