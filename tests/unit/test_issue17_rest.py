"""Issue 17, the rest: dspy.History, per-model get_lm_usage(), Parallel's stragglers, SemanticF1's result."""

from __future__ import annotations

import json
import threading
import time

import pytest

import promptless as dspy
from promptless.testing import ScriptedLM


# -- get_lm_usage: DSPy's dict per model -----------------------------------------------------------------
class TwoModels(dspy.Module):
    def __init__(self, small, large):
        super().__init__()
        self.draft = dspy.Predict("question -> answer", lm=small)
        self.check = dspy.Predict("question, answer -> verdict", lm=large)

    def forward(self, question):
        draft = self.draft(question=question)
        return dspy.Prediction(answer=draft.answer, verdict=self.check(question=question, answer=draft.answer).verdict)


def test_get_lm_usage_is_a_dict_per_model_and_usage_stays_the_sum():
    small = ScriptedLM([{"answer": "Paris"}, {"answer": "Rome"}, {"answer": "x"}], model="openai/small")
    large = ScriptedLM([{"verdict": "yes"}, {"verdict": "no"}], model="openai/large")
    program = TwoModels(small, large)
    pred = program(question="Capital of France?")
    usage = pred.get_lm_usage()
    assert sorted(usage) == ["openai/large", "openai/small"]
    sent_small, sent_large = small.history[-1].response.usage, large.history[-1].response.usage
    assert usage["openai/small"] == {
        "prompt_tokens": sent_small.prompt_tokens,
        "completion_tokens": sent_small.completion_tokens,
        "total_tokens": sent_small.prompt_tokens + sent_small.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    assert usage["openai/large"]["prompt_tokens"] == sent_large.prompt_tokens
    assert pred.usage.calls == 2
    assert pred.usage.prompt_tokens == sent_small.prompt_tokens + sent_large.prompt_tokens
    # each call has its own view; the inner predictors' Predictions only their own model
    again = program(question="Capital of Italy?")
    assert again.get_lm_usage()["openai/small"]["prompt_tokens"] == small.history[-1].response.usage.prompt_tokens
    assert list(program.draft(question="x").get_lm_usage()) == ["openai/small"]


def test_get_lm_usage_leaves_out_cache_hits_and_is_none_on_a_hand_made_prediction():
    lm = ScriptedLM(default={"answer": "a"}, model="openai/cached", cache=True)
    predict = dspy.Predict("question -> answer", lm=lm)
    assert "openai/cached" in predict(question="same").get_lm_usage()
    assert predict(question="same").get_lm_usage() == {}  # answered from the cache: nothing spent, as in DSPy
    assert dspy.Prediction(answer="x").get_lm_usage() is None


# -- dspy.History: earlier turns rendered as the conversation --------------------------------------------
class Chat(dspy.Signature):
    """Answer the question."""

    question: str = dspy.InputField()
    history: dspy.History = dspy.InputField()
    answer: str = dspy.OutputField()


EARLIER = dspy.History(messages=[{"question": "Capital of France?", "answer": "Paris"}, {"question": "Of Italy?"}])


def test_history_renders_as_user_assistant_turns_before_the_current_input():
    lm = ScriptedLM([{"answer": "Berlin"}])
    pred = dspy.Predict(Chat, lm=lm)(question="And Germany?", history=EARLIER)
    assert pred.answer == "Berlin"
    assert lm.requests[-1].messages == (
        {"role": "system", "content": 'Answer the question.\n\nReply with a JSON object with keys "answer".'},
        {"role": "user", "content": "Question: Capital of France?"},
        {"role": "assistant", "content": '{"answer":"Paris"}'},
        # a turn with no outputs runs into the next user message: the roles keep alternating
        {"role": "user", "content": "Question: Of Italy?\n\nQuestion: And Germany?"},
    )


def test_history_with_the_json_adapter_and_default_instructions_leaves_the_field_out_of_the_spec():
    lm = ScriptedLM([{"answer": "Berlin"}])
    predict = dspy.Predict("question, history: History -> answer", lm=lm, adapter=dspy.JSONAdapter())
    history = dspy.History(messages=[{"question": "Capital of France?", "answer": "Paris"}])
    predict(question="And Germany?", history=history)
    assert lm.requests[-1].messages == (
        {"role": "system", "content": 'Given question: reply with a JSON object with keys "answer".'},
        {"role": "user", "content": '{"question": "Capital of France?"}'},
        {"role": "assistant", "content": '{"answer":"Paris"}'},
        {"role": "user", "content": '{"question": "And Germany?"}'},
    )


def test_history_on_the_completion_adapter_is_label_value_blocks():
    lm = ScriptedLM(["Berlin"], model_type="completion")
    dspy.Predict(Chat, lm=lm)(question="And Germany?", history=EARLIER)
    assert lm.requests[-1].prompt == (
        "Answer the question.\n\nGiven Question; write Answer.\n\n---\n\n"
        "Question: Capital of France?\nAnswer: Paris\n\n---\n\n"
        "Question: Of Italy?\n\n---\n\n"
        "Question: And Germany?\nAnswer:"
    )


def test_a_conversation_grows_its_history_and_the_first_turn_needs_none():
    lm = ScriptedLM([{"answer": "Paris"}, {"answer": "Yes, Paris."}])
    predict = dspy.Predict(Chat, lm=lm)
    history = dspy.History(messages=[])
    first = predict(question="Capital of France?")  # no history: a conversation's first turn, as in DSPy
    assert lm.requests[-1].messages[1:] == ({"role": "user", "content": "Question: Capital of France?"},)
    history.messages.append({"question": "Capital of France?", **first})
    predict(question="Are you sure?", history=history)
    assert [m["content"] for m in lm.requests[-1].messages[1:]] == [
        "Question: Capital of France?",
        '{"answer":"Paris"}',
        "Question: Are you sure?",
    ]


def test_history_in_demos_is_rendered_saved_as_json_and_loaded_back(tmp_path):
    demo_history = dspy.History(messages=[{"question": "Capital of Spain?", "answer": "Madrid"}])
    predict = dspy.Predict(Chat)
    predict.demos = [dspy.Example(question="And Portugal?", history=demo_history, answer="Lisbon")]
    lm = ScriptedLM([{"answer": "Berlin"}, {"answer": "Berlin"}])
    predict(question="And Germany?", history=EARLIER, lm=lm)
    expected = (
        {"role": "system", "content": 'Answer the question.\n\nReply with a JSON object with keys "answer".'},
        {"role": "user", "content": "Question: Capital of Spain?"},  # the demo's own earlier turn, then the demo
        {"role": "assistant", "content": '{"answer":"Madrid"}'},
        {"role": "user", "content": "Question: And Portugal?"},
        {"role": "assistant", "content": '{"answer":"Lisbon"}'},
        {"role": "user", "content": "Question: Capital of France?"},
        {"role": "assistant", "content": '{"answer":"Paris"}'},
        {"role": "user", "content": "Question: Of Italy?\n\nQuestion: And Germany?"},
    )
    assert lm.requests[-1].messages == expected

    path = predict.save(tmp_path / "chat.json")
    text = path.read_text()
    assert '"history": {\n' in text and '"messages": [' in text  # JSON, as DSPy writes it
    saved = json.loads(text)["predictors"]["self"]
    assert saved["demos"][0]["history"] == {"messages": [{"question": "Capital of Spain?", "answer": "Madrid"}]}
    assert [f["type"] for f in saved["signature"]["fields"]] == ["str", "History", "str"]

    loaded = dspy.Predict(Chat).load(path)
    assert isinstance(loaded.demos[0].history, dspy.History) and loaded.demos[0].history == demo_history
    loaded(question="And Germany?", history=EARLIER, lm=lm)
    assert lm.requests[-1].messages == expected


def test_history_in_a_dspy_state_file_loads():
    state = {
        "self": {
            "demos": [{"question": "q", "history": {"messages": [{"question": "a", "answer": "b"}]}, "answer": "c"}],
            "signature": {
                "instructions": "Answer the question.",
                "fields": [
                    {"prefix": "Question:", "description": "${question}"},
                    {"prefix": "History:", "description": "${history}"},
                    {"prefix": "Answer:", "description": "${answer}"},
                ],
            },
            "lm": None,
        },
        "metadata": {"dependency_versions": {"python": "3.11", "dspy": "3.4.1", "cloudpickle": "3.1"}},
    }
    predict = dspy.Predict(Chat)
    predict.load_state(state)
    assert predict.demos[0].history == dspy.History(messages=[{"question": "a", "answer": "b"}])


def test_history_values_are_checked_and_traced_as_a_copy():
    with pytest.raises(TypeError, match="list of dicts"):
        dspy.History(messages="hello")
    with pytest.raises(TypeError, match="message 0"):
        dspy.History(messages=["hello"])
    lm = ScriptedLM(default={"answer": "x"})
    with pytest.raises(TypeError, match="'history'"):
        dspy.Predict(Chat, lm=lm)(question="q", history="earlier text")
    # a plain list of turns (or the saved {"messages": [...]}) is read as a History
    dspy.Predict(Chat, lm=lm)(question="q", history=[{"question": "a", "answer": "b"}])
    assert lm.requests[-1].messages[1]["content"] == "Question: a"

    history = dspy.History(messages=[{"question": "a", "answer": "b"}])
    trace: list = []
    with dspy.context(trace=trace):
        dspy.Predict(Chat, lm=lm)(question="q", history=history)
    history.messages.append({"question": "later", "answer": "turn"})
    assert trace[0].inputs["history"].messages == [{"question": "a", "answer": "b"}]


# -- Parallel(timeout=, straggler_limit=): stragglers are started once more ------------------------------
class Sleepy(dspy.Module):
    """Answers through a ScriptedLM; the first attempt at a question in ``slow`` waits on its event first."""

    def __init__(self, lm, slow, failing=()):
        super().__init__()
        self.predict = dspy.Predict("question -> answer", lm=lm)
        self.slow, self.failing = slow, set(failing)
        self.attempts: dict[str, int] = {}
        self.lock = threading.Lock()

    def forward(self, question):
        with self.lock:
            attempt = self.attempts[question] = self.attempts.get(question, 0) + 1
        if attempt == 1 and question in self.slow:
            self.slow[question].wait(10)
        if question in self.failing:
            raise ValueError(f"no answer to {question} (attempt {attempt})")
        return self.predict(question=question)


def echo_lm():
    return ScriptedLM(lambda request: {"answer": request.messages[-1]["content"].removeprefix("Question: ").upper()})


def test_parallel_restarts_a_straggler_and_keeps_input_order():
    lm, release = echo_lm(), threading.Event()
    program = Sleepy(lm, slow={"q0": release})
    pairs = [(program, {"question": f"q{i}"}) for i in range(6)]
    began = time.monotonic()
    try:
        results = dspy.Parallel(num_threads=3, timeout=0.2, straggler_limit=2)(pairs)
        elapsed = time.monotonic() - began
        assert [r.answer for r in results] == [f"Q{i}" for i in range(6)]
        assert elapsed < 5  # the first copy of q0 is still waiting: its second copy answered
        assert program.attempts == {"q0": 2, **{f"q{i}": 1 for i in range(1, 6)}}
        assert len(lm.requests) == 6  # one LM call per pair: each result counted once
    finally:
        release.set()


def test_parallel_without_timeout_waits_for_the_slow_pair_and_starts_nothing_twice():
    release = threading.Event()
    threading.Timer(0.5, release.set).start()
    program = Sleepy(echo_lm(), slow={"q0": release})
    results = dspy.Parallel(num_threads=2)([(program, {"question": f"q{i}"}) for i in range(3)])
    assert [r.answer for r in results] == ["Q0", "Q1", "Q2"] and program.attempts == {"q0": 1, "q1": 1, "q2": 1}
    assert dspy.Parallel().timeout is None  # off unless asked for
    with pytest.raises(ValueError, match="timeout"):
        dspy.Parallel(timeout="soon")
    with pytest.raises(ValueError, match="straggler_limit"):
        dspy.Parallel(straggler_limit=-1)


def test_parallel_a_straggler_only_once_few_pairs_remain():
    slow_q0, slow_q1 = threading.Event(), threading.Event()
    program = Sleepy(echo_lm(), slow={"q0": slow_q0, "q1": slow_q1})
    parallel = dspy.Parallel(num_threads=4, timeout=0.1, straggler_limit=1)
    out: list = []
    runner = threading.Thread(target=lambda: out.append(parallel([(program, {"question": f"q{i}"}) for i in range(4)])))
    runner.start()
    try:
        time.sleep(0.4)  # q0 and q1 are past the timeout, but two pairs are unfinished: more than straggler_limit
        assert program.attempts == {"q0": 1, "q1": 1, "q2": 1, "q3": 1}
        slow_q1.set()  # q1 ends: one pair left, so q0 is started once more and its second copy answers
        runner.join(5)
        assert [r.answer for r in out[0]] == ["Q0", "Q1", "Q2", "Q3"]
        assert program.attempts == {"q0": 2, "q1": 1, "q2": 1, "q3": 1}
    finally:
        slow_q0.set()
        slow_q1.set()


def test_parallel_a_straggler_that_fails_is_one_failure():
    lm, release = echo_lm(), threading.Event()
    program = Sleepy(lm, slow={"bad": release}, failing={"bad"})
    pairs = [(program, dspy.Example(question=q).with_inputs("question")) for q in ("a", "bad", "c")]
    try:
        results, failed, errors = dspy.Parallel(
            num_threads=3, timeout=0.1, straggler_limit=3, max_errors=1, return_failed_examples=True
        )(pairs)
        assert results[0].answer == "A" and results[1] is None and results[2].answer == "C"
        assert failed == [pairs[1][1]] and len(errors) == 1 and "attempt 2" in str(errors[0])
    finally:
        release.set()


# -- SemanticF1: DSPy 3.4.1 returns Prediction(score=...) as a metric; here a float that reads the same ----------
def test_semantic_f1_metric_result_reads_as_dspys_prediction_and_as_a_float():
    lm = ScriptedLM(default={"reasoning": "r", "recall": 0.5, "precision": 1.0})
    metric = dspy.SemanticF1(lm=lm)
    example = dspy.Example(question="Why?", response="Because A and B.").with_inputs("question")
    pred = dspy.Prediction(response="Because A.")
    score = metric(example, pred)
    assert score.score == score["score"] == pytest.approx(2 / 3) == float(score)  # DSPy's .score, and a float
    assert f"{score:.2f}" == "0.67" and score >= 0.5 and score + score == pytest.approx(4 / 3)
    assert metric(example, pred, trace=[]) is True  # DSPy: Prediction(score=True); a bool, as optimizers read it
    judged = metric(question="Why?", ground_truth="Because A and B.", system_response="Because A.")
    assert isinstance(judged, dspy.Prediction) and judged.score == pytest.approx(2 / 3) and judged.recall == 0.5
    result = dspy.Evaluate(devset=[example], metric=metric, num_threads=1, display_progress=False)(
        lambda question: dspy.Prediction(response="Because A.")
    )
    assert result.score == pytest.approx(66.67, abs=0.01)


def test_a_prediction_with_usage_copies_and_pickles():
    import copy
    import pickle

    pred = dspy.Predict("question -> answer", lm=ScriptedLM(default={"answer": "a"}, model="openai/x"))(question="q")
    for clone in (copy.deepcopy(pred), copy.copy(pred), pickle.loads(pickle.dumps(pred))):
        assert clone.answer == "a" and clone.get_lm_usage() == pred.get_lm_usage() and clone.usage == pred.usage
    assert list(pred.get_lm_usage()) == ["openai/x"]
