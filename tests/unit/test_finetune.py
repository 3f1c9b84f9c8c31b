"""BootstrapFinetune's bookkeeping on the scripted LM: trace -> dataset per adapter, tasks, artifacts, bad input.

Training itself runs on a tiny random llama model (tests/unit/test_finetune_train.py) and on
SmolLM2 (tests/integration/test_finetune_embedded.py).
"""

import importlib.util
import json
import re
from pathlib import Path

import pytest

import promptless as pl
from promptless.adapters import ChatAdapter, CompletionAdapter
from promptless.errors import ArtifactError
from promptless.finetune import base as finetune_base
from promptless.finetune.artifact import WeightsRecord
from promptless.finetune.base import FinetuneExtraMissing, TrainingUnsupported, file_sha256
from promptless.finetune.dataset import (
    ALL,
    by_task,
    completion_text,
    from_failed_traces,
    from_labels,
    from_traces,
    render_example,
)
from promptless.finetune.tokens import TokenizedExample, tokenize
from promptless.optimizers.base import CompileReport, attach_report
from promptless.optimizers.better_together import BetterTogether
from promptless.optimizers.finetune import (
    BootstrapFinetune,
    TooFewTraces,
    _example_from_json,
    _example_to_json,
)
from promptless.testing import ScriptedLM


def qa(n):
    return [pl.Example(question=f"q{i}", answer=f"a{i}").with_inputs("question") for i in range(n)]


def answer_lm(model_type="chat", **kwargs):
    def reply(request):
        if "Query:" in request.text:
            return {"answer": "a" + re.findall(r"Query: qq(\d+)", request.text)[-1]}
        if "query" in (request.text.split("\n")[0] + str(request.schema or "")):
            return {"query": "qq" + re.findall(r"Question: q(\d+)", request.text)[-1]}
        return {"answer": "a" + re.findall(r"Question: q(\d+)", request.text)[-1]}

    return ScriptedLM(reply, model_type=model_type, **kwargs)


def exact(example, prediction, trace=None):
    return example.answer == prediction.answer


class Pipeline(pl.Module):
    def __init__(self):
        self.rewrite = pl.Predict("question -> query")
        self.answer = pl.Predict("query -> answer")

    def forward(self, question):
        return self.answer(query=self.rewrite(question=question).query)


def traced(program, example):
    trace = []
    names = {id(p): n for n, p in program.named_predictors()}
    with pl.context(trace=trace):
        program(**example.inputs())
    return trace, names


# -- the dataset is what inference sends ------------------------------------------------------------
@pytest.mark.parametrize("model_type", ["chat", "completion"])
def test_a_training_example_is_the_request_inference_sends_and_the_text_it_parses(model_type):
    lm = answer_lm(model_type)
    program = pl.Predict("question -> answer", lm=lm)
    program.demos = [pl.Example(question="q9", answer="a9")]
    example = qa(1)[0]
    trace, names = traced(program, example)
    sent = lm.requests[-1]
    [item] = from_traces(program, [(0, trace, names)])
    assert (item.request.messages, item.request.prompt) == (sent.messages, sent.prompt)
    assert item.request.schema == sent.schema and item.request.grammar == sent.grammar
    adapter = ChatAdapter() if model_type == "chat" else CompletionAdapter()
    assert adapter.parse(program.signature, item.completion) == {"answer": "a0"}
    if model_type == "chat":
        assert item.completion == '{"answer":"a0"}'  # compact, as constrained decoding writes it
    else:
        assert item.completion == " a0\n"  # the prompt ends with "Answer:"; the line grammar ends with "\n"
        assert sent.prompt.endswith("Answer:")
    assert item.predictor == "self" and item.source == "trace" and item.index == 0


def test_completion_text_writes_every_output_field_in_the_completion_adapter_layout():
    sig = pl.Predict("question -> reasoning, answer: int").signature
    text = completion_text(CompletionAdapter(), sig, {"reasoning": "two and two", "answer": 4})
    assert text == " two and two\nAnswer: 4\n"
    assert CompletionAdapter().parse(sig, text) == {"reasoning": "two and two", "answer": 4}
    with pytest.raises(ValueError, match="missing"):
        completion_text(ChatAdapter(), sig, {"answer": 4})


def test_exclude_demos_renders_the_prompt_without_them():
    program = pl.Predict("question -> answer", lm=answer_lm())
    program.demos = [pl.Example(question="q9", answer="a9")]
    with_demos = render_example(program, "self", {"question": "q1"}, {"answer": "a1"})
    without = render_example(program, "self", {"question": "q1"}, {"answer": "a1"}, exclude_demos=True)
    assert "q9" in with_demos.request.text and "q9" not in without.request.text


def test_every_step_of_a_trace_trains_its_own_predictor_and_multitask_groups_them():
    lm = answer_lm()
    program = Pipeline()
    program.set_lm(lm)
    traces = [(i, *traced(program, ex)) for i, ex in enumerate(qa(3))]
    data = from_traces(program, traces)
    assert [d.predictor for d in data] == ["rewrite", "answer"] * 3
    assert json.loads(data[0].completion) == {"query": "qq0"} and json.loads(data[1].completion) == {"answer": "a0"}
    assert "Query: qq0" in data[1].request.text
    assert list(by_task(data, multitask=True)) == [ALL]
    per = by_task(data, multitask=False)
    assert {k: len(v) for k, v in per.items()} == {"rewrite": 3, "answer": 3}


def test_the_report_counts_each_steps_training_examples_from_traces_without_intermediate_labels():
    from promptless.optimizers.checkpoint import Checkpoint

    program = Pipeline()
    program.set_lm(answer_lm())
    optimizer = BootstrapFinetune(exact, train_on_labels=True)
    report = CompileReport("BootstrapFinetune")
    data = optimizer._dataset(program, program, qa(8), Checkpoint(None, optimizer="t", key="k"), report)
    assert len(data) == 16 and {d.source for d in data} == {"trace"}  # no label reaches either step
    assert report.notes[-1].endswith("16 training examples from traces + 0 from labels (per predictor: rewrite: 8 + 0, "
                                     "answer: 8 + 0)")  # fmt: skip


def test_labels_train_only_the_predictors_whose_fields_an_example_holds():
    program = Pipeline()
    program.set_lm(answer_lm())
    assert from_labels(program, qa(2)) == []  # no step reads "question" and writes "answer"
    single = pl.Predict("question -> answer", lm=answer_lm())
    data = from_labels(single, qa(3), skip={1})
    got = [(d.index, d.source, d.completion) for d in data]
    assert got == [(0, "label", '{"answer":"a0"}'), (2, "label", '{"answer":"a2"}')]


def test_a_failed_trace_teaches_its_last_step_the_label_with_the_inputs_the_first_step_gave():
    """A pipeline's last step learns the gold answer from the query the model itself wrote; the rewrite learns
    nothing from a failed run (no label names a query)."""
    program = Pipeline()
    program.set_lm(answer_lm())
    examples = [pl.Example(question=f"q{i}", answer=f"gold{i}").with_inputs("question") for i in range(3)]
    traces = [(i, *traced(program, ex)) for i, ex in enumerate(examples)]  # each answers a{i}: every run fails
    data = from_failed_traces(program, traces, examples)
    assert [(d.predictor, d.source, d.index) for d in data] == [("answer", "label", i) for i in range(3)]
    assert json.loads(data[1].completion) == {"answer": "gold1"} and "Query: qq1" in data[1].request.text
    single = pl.Predict("question -> answer", lm=answer_lm())
    single_traces = [(i, *traced(single, ex)) for i, ex in enumerate(examples)]
    assert from_failed_traces(single, single_traces, examples) == []  # from_labels already learns those

    optimizer = BootstrapFinetune(exact, train_on_labels=True)
    from promptless.optimizers.checkpoint import Checkpoint

    report = CompileReport("BootstrapFinetune")
    mixed = [*qa(4), *examples]  # the first four pass (a{i}), the last three fail
    built = optimizer._dataset(program, program, mixed, Checkpoint(None, optimizer="t", key="k"), report)
    assert sorted((d.predictor, d.source) for d in built).count(("answer", "label")) == 3
    assert report.notes[-1].endswith(
        "8 training examples from traces + 3 from labels (per predictor: rewrite: 4 + 0, answer: 4 + 3)"
    )


def test_dataset_round_trips_through_the_checkpoint_json():
    program = pl.Predict("question -> answer", lm=answer_lm("completion"))
    item = render_example(program, "self", {"question": "q1"}, {"answer": "a1"})
    back = _example_from_json(json.loads(json.dumps(_example_to_json(item))))
    assert back == item
    chat = render_example(pl.Predict("question -> answer", lm=answer_lm()), "self", {"question": "q"}, {"answer": "a"})
    assert _example_from_json(json.loads(json.dumps(_example_to_json(chat)))) == chat


def test_tokenize_refuses_an_example_longer_than_max_length():
    class Chars:
        eos = 0

        def prompt_ids(self, request):
            return [ord(c) for c in request.text]

        def completion_ids(self, text):
            return [*map(ord, text), 0]

    item = render_example(pl.Predict("question -> answer", lm=answer_lm()), "self", {"question": "q"}, {"answer": "a"})
    [tokens] = tokenize([item], Chars())
    assert isinstance(tokens, TokenizedExample) and tokens.completion[-1] == 0
    with pytest.raises(ValueError, match="max_length=10"):
        tokenize([item], Chars(), max_length=10)


# -- bad input ----------------------------------------------------------------------------------------
@pytest.fixture
def fake_base(tmp_path, monkeypatch):
    """A stand-in GGUF for local/smollm2-135m, so artifacts and checks run without the real file."""
    path = tmp_path / "base.gguf"
    path.write_bytes(b"GGUF fake base model")
    monkeypatch.setattr(finetune_base, "model_path", lambda name: path)
    monkeypatch.setattr(finetune_base, "require_extra", lambda: None)
    monkeypatch.setattr("promptless.optimizers.finetune.require_extra", lambda: None)
    return path


def test_a_model_without_training_support_is_refused_before_any_call(fake_base):
    lm = answer_lm()
    with pytest.raises(TrainingUnsupported, match="embedded models only"):
        BootstrapFinetune(exact).compile(pl.Predict("question -> answer", lm=lm), trainset=qa(4))
    other = ScriptedLM(default={"answer": "x"}, model="local/tinyllama-1b", model_type="completion")
    message = (
        r"no training support for 'local/tinyllama-1b'; trainable base models: local/gemma-3-270m, local/smollm2-135m"
    )
    with pytest.raises(TrainingUnsupported, match=message):
        BootstrapFinetune(exact).compile(pl.Predict("question -> answer", lm=other), trainset=qa(4))
    assert lm.requests == [] and other.requests == []


def test_gemma_is_a_trainable_base_model_planned_with_its_own_load_time(fake_base):
    gemma = answer_lm("completion", model="local/gemma-3-270m")
    base = finetune_base.resolve_base(gemma)
    assert (base.architecture, base.n_head, base.n_head_kv, base.n_layers) == ("gemma3", 4, 1, 18)
    assert base.identity()["model"] == "local/gemma-3-270m" and base.path == fake_base
    plan = BootstrapFinetune(exact, epochs=1, batch_size=4).plan(pl.Predict("question -> answer", lm=gemma), qa(8))
    assert plan.train_steps == 2 and f"~{base.load_s:.0f} s to load the model" in plan.summary()
    smollm2 = finetune_base.resolve_base(answer_lm(model="local/smollm2-135m"))
    assert base.load_s > smollm2.load_s  # 262k vocabulary entries against 49k: transformers reads them all


def test_a_gemma_adapter_loads_back_only_onto_gemma(fake_base, tmp_path):
    base = finetune_base.resolve_base(ScriptedLM(model="local/gemma-3-270m", model_type="completion"))
    weights = tmp_path / "weights" / "a.gguf"
    weights.parent.mkdir()
    weights.write_bytes(b"GGUF gemma adapter")
    state = WeightsRecord.for_file(weights, base, lora_rank=8, lora_alpha=16).to_state(tmp_path)
    assert state["base"]["model"] == "local/gemma-3-270m" and state["base"]["architecture"] == "gemma3"
    back = WeightsRecord.from_state(state, tmp_path, lm=ScriptedLM(model="local/gemma-3-270m"))
    assert back.path == weights.resolve() and back.base == state["base"]
    with pytest.raises(ArtifactError, match="trained on local/gemma-3-270m, the program runs local/smollm2-135m"):
        WeightsRecord.from_state(state, tmp_path, lm=ScriptedLM(model="local/smollm2-135m"))


def test_too_few_passing_traces_says_how_many_passed(fake_base):
    lm = ScriptedLM(lambda r: {"answer": "a0" if "q0" in r.text else "wrong"}, model="local/smollm2-135m")
    program = pl.Predict("question -> answer", lm=lm)
    with pytest.raises(TooFewTraces, match=r"only 1 of 5 teacher runs passed .* at least min_examples=8"):
        BootstrapFinetune(exact, num_threads=1).compile(program, trainset=qa(5))


def test_the_missing_extra_is_one_line_naming_the_pip_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "peft" else real(name, *a))
    with pytest.raises(FinetuneExtraMissing, match=r"needs peft: pip install 'promptless\[finetune\]'"):
        BootstrapFinetune(exact).compile(pl.Predict("question -> answer", lm=answer_lm()), trainset=qa(2))


def test_settings_are_checked_and_dspy_train_kwargs_are_understood():
    with pytest.raises(ValueError, match=r"epochs=\) must be a positive number"):
        BootstrapFinetune(exact, epochs=0)
    with pytest.raises(ValueError, match=r"lora_rank=\) must be an int"):
        BootstrapFinetune(exact, lora_rank=2.5)
    with pytest.raises(TypeError, match="unexpected keyword"):
        BootstrapFinetune(exact, learning_rat=1e-4)
    optimizer = BootstrapFinetune(exact, train_kwargs={"learning_rate": 3e-4, "num_train_epochs": 3})
    assert (optimizer.settings.lr, optimizer.settings.epochs) == (3e-4, 3)
    assert optimizer.settings.train_settings().lora_alpha == 2 * optimizer.settings.lora_rank


def test_multitask_needs_one_base_model(fake_base):
    program = Pipeline()
    program.rewrite.lm = answer_lm(model="local/smollm2-135m")
    program.answer.lm = answer_lm(model="openai/gpt-4o-mini")
    with pytest.raises(TrainingUnsupported):
        BootstrapFinetune(exact).compile(program, trainset=qa(2))


def test_plan_forecasts_teacher_calls_and_training_steps(fake_base):
    lm = answer_lm(model="local/smollm2-135m")
    program = pl.Predict("question -> answer", lm=lm)
    plan = BootstrapFinetune(exact, epochs=2, batch_size=4).plan(program, qa(20), valset=qa(6))
    assert plan.bootstrap.phases == {"probe": 3, "bootstrap": 20, "baseline": 6, "finetuned": 6}
    assert plan.lm_calls == 35 and plan.train_examples == 20 and plan.train_steps == 10
    assert plan.train_time_s > 0 and "training: ~20 examples, 10 steps" in plan.summary()
    capped = BootstrapFinetune(exact, epochs=2, batch_size=4, max_steps=3, multitask=False).plan(program, qa(20))
    assert capped.train_steps == 3


def test_plan_prices_the_prompt_prefix_all_examples_share_once_per_batch(fake_base, monkeypatch):
    from promptless.optimizers import finetune_forecast

    class Long(pl.Signature):
        """Answer the question. """ + "These instructions are the same in every prompt. " * 40

        question: str = pl.InputField()
        answer: str = pl.OutputField()

    program = pl.Predict(Long, lm=answer_lm(model="local/smollm2-135m"))
    share = finetune_forecast.shared_prompt_share(program, qa(8))
    assert 0.8 < share < 1.0  # the instructions; each question differs
    assert finetune_forecast.shared_prompt_share(pl.Predict("q -> a", lm=program.lm), qa(8)) == 0.0  # no labels fit
    optimizer = BootstrapFinetune(exact, epochs=2, batch_size=8)
    shared = optimizer.plan(program, qa(32))
    monkeypatch.setattr(finetune_forecast, "shared_prompt_share", lambda student, examples: 0.0)
    whole = optimizer.plan(program, qa(32))
    assert shared.train_tokens == whole.train_tokens and shared.train_steps == whole.train_steps == 8
    assert shared.train_time_s - 20 < (whole.train_time_s - 20) / 3  # 8 prompts a step, the shared part once
    assert "each prompt all prompts share runs once per batch" in shared.note


# -- the weights record -------------------------------------------------------------------------------
def test_weights_record_round_trips_by_relative_path_and_verifies_the_hash(fake_base, tmp_path):
    base = finetune_base.resolve_base(ScriptedLM(model="local/smollm2-135m"))
    weights = tmp_path / "program" / "weights" / "a.gguf"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"GGUF adapter bytes")
    record = WeightsRecord.for_file(weights, base, lora_rank=4, lora_alpha=8, predictors=("self",))
    state = record.to_state(tmp_path / "program")
    assert state["path"] == "weights/a.gguf" and state["sha256"] == file_sha256(weights)
    assert state["base"] == {"model": "local/smollm2-135m", "architecture": "llama", "sha256": file_sha256(fake_base)}
    json.dumps(state)
    back = WeightsRecord.from_state(state, tmp_path / "program", lm=ScriptedLM(model="local/smollm2-135m"))
    assert back.path == weights.resolve() and back.lora_rank == 4 and back.predictors == ("self",)

    moved = tmp_path / "elsewhere"
    (moved / "weights").mkdir(parents=True)
    (moved / "weights" / "a.gguf").write_bytes(weights.read_bytes())
    assert WeightsRecord.from_state(state, moved).path == (moved / "weights" / "a.gguf").resolve()

    weights.write_bytes(b"GGUF other bytes")
    with pytest.raises(ArtifactError, match="SHA-256"):
        WeightsRecord.from_state(state, tmp_path / "program")


def test_weights_record_refuses_another_base_model_and_paths_outside_the_artifact(fake_base, tmp_path):
    weights = tmp_path / "a.gguf"
    weights.write_bytes(b"adapter")
    base = finetune_base.resolve_base(ScriptedLM(model="local/smollm2-135m"))
    state = WeightsRecord.for_file(weights, base).to_state(tmp_path)
    other = {**state, "base": {**state["base"], "sha256": "0" * 64}}
    with pytest.raises(ArtifactError, match="another file of local/smollm2-135m"):
        WeightsRecord.from_state(other, tmp_path, lm=ScriptedLM(model="local/smollm2-135m"))
    gemma = {**state, "base": {**state["base"], "model": "local/gemma-3-270m"}}
    with pytest.raises(ArtifactError, match="trained on local/gemma-3-270m, the program runs local/smollm2-135m"):
        WeightsRecord.from_state(gemma, tmp_path, lm=ScriptedLM(model="local/smollm2-135m"))
    with pytest.raises(ArtifactError, match="trained on local/smollm2-135m; the program's LM cannot run them"):
        WeightsRecord.from_state(state, tmp_path, lm=ScriptedLM(model="openai/gpt-4o-mini"))
    for bad in ("../a.gguf", "/etc/passwd"):
        with pytest.raises(ArtifactError, match="inside the artifact"):
            WeightsRecord.from_state({**state, "path": bad}, tmp_path)
    with pytest.raises(ArtifactError, match="missing"):
        WeightsRecord.from_state({**state, "path": "gone.gguf"}, tmp_path)
    with pytest.raises(ArtifactError, match="unknown kind"):
        WeightsRecord.from_state({**state, "kind": "pickle"}, tmp_path)


def test_the_package_stays_importable_without_torch():
    """Nothing under promptless.finetune imports torch at module level."""
    source = Path(finetune_base.__file__).parent
    for path in source.glob("*.py"):
        for line in path.read_text().splitlines():
            if re.match(r"(import|from) (torch|transformers|peft|gguf|safetensors)\b", line):
                pytest.fail(f"{path.name}: top-level `{line}`")


@pytest.mark.skipif(not hasattr(pl.Predict, "weights"), reason="Predict does not save weights records yet")
def test_a_saved_program_keeps_its_weights_by_relative_path_and_load_verifies_them(fake_base, tmp_path):
    base = finetune_base.resolve_base(ScriptedLM(model="local/smollm2-135m"))
    weights = tmp_path / "out" / "weights" / "a.gguf"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"GGUF adapter bytes")
    program = pl.Predict("question -> answer", lm=pl.LM("local/smollm2-135m", lora=weights))
    program.weights = WeightsRecord.for_file(weights, base, lora_rank=4, lora_alpha=8, predictors=("self",))
    program.save(tmp_path / "out" / "program.json")
    saved = json.loads((tmp_path / "out" / "program.json").read_text())
    assert saved["predictors"]["self"]["weights"]["path"] == "weights/a.gguf"

    with pl.context(lm=pl.LM("local/smollm2-135m")):
        loaded = pl.Predict("question -> answer").load(tmp_path / "out" / "program.json")
    assert loaded.weights.sha256 == program.weights.sha256
    assert loaded.lm.model == "local/smollm2-135m" and loaded.lm.lora == str(weights.resolve())

    with pl.context(lm=ScriptedLM(model="openai/gpt-4o-mini")), pytest.raises(ArtifactError, match="cannot run them"):
        pl.Predict("question -> answer").load(tmp_path / "out" / "program.json")
    weights.write_bytes(b"tampered")
    with pytest.raises(ArtifactError, match="SHA-256"):
        pl.Predict("question -> answer").load(tmp_path / "out" / "program.json")


# -- BetterTogether -----------------------------------------------------------------------------------
class MarkWeights(pl.Optimizer):
    """Stands in for BootstrapFinetune: marks the program's predictors and records what it was given."""

    def __init__(self):
        self.seen = []

    def compile(self, student, *, trainset, valset=None, teacher=None):
        self.seen.append([len(p.demos) for p in student.predictors()])
        program = student.deepcopy()
        for predictor in program.predictors():
            predictor.config = {**predictor.config, "seed": 7}
        report = CompileReport("fake weights")
        report.notes.append("trained")
        report.training = [f"adapter {len(self.seen)}"]
        return attach_report(program, report)


def test_better_together_runs_the_strategy_in_order_and_chooses_honestly():
    lm = answer_lm()
    weights = MarkWeights()
    optimizer = BetterTogether(exact, prompt_optimizer=pl.LabeledFewShot(k=2), weight_optimizer=weights)
    compiled = optimizer.compile(pl.Predict("question -> answer", lm=lm), trainset=qa(6), valset=qa(4))
    assert weights.seen == [[2]]  # the weight step learned from the prompt-optimized program
    report = compiled.compile_report
    assert [c.name for c in report.candidates] == ["baseline", "p", "p -> w", "p -> w -> p"]
    assert any(note == "[p -> w] trained" for note in report.notes)
    assert report.chosen == "baseline"  # every candidate scores 100 % like the baseline: nothing significant
    with pytest.raises(ValueError, match="strategy"):
        BetterTogether(exact, strategy="p -> x")


def test_better_together_without_a_valset_returns_the_last_step():
    weights = MarkWeights()
    prompts = pl.LabeledFewShot(k=1)
    optimizer = BetterTogether(exact, prompt_optimizer=prompts, weight_optimizer=weights, strategy="w -> p")
    compiled = optimizer.compile(pl.Predict("question -> answer", lm=answer_lm()), trainset=qa(3))
    assert weights.seen == [[0]] and compiled.config == {"seed": 7} and len(compiled.demos) == 1


def test_better_together_reports_the_training_of_every_weight_step():
    weights = MarkWeights()
    optimizer = BetterTogether(
        exact, prompt_optimizer=pl.LabeledFewShot(k=1), weight_optimizer=weights, strategy="w -> p -> w"
    )
    compiled = optimizer.compile(pl.Predict("question -> answer", lm=answer_lm()), trainset=qa(3), valset=qa(3))
    assert compiled.compile_report.training == ["adapter 1", "adapter 2"]
