"""BootstrapFinetune for real: a few LoRA steps on SmolLM2-135M (CPU), the adapter loaded back into llama.cpp.

Two to three minutes on 2 shared cores: ~20 s to load the GGUF into transformers (twice: the
second compile resumes from the checkpoint), a few seconds per step, 16 teacher calls.
"""

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("transformers")
pytest.importorskip("gguf")

import promptless as pl
from promptless.finetune.artifact import WeightsRecord
from promptless.optimizers.finetune import BootstrapFinetune
from tests.integration import trec_questions as questions

pytestmark = pytest.mark.integration


def test_bootstrap_finetune_trains_smollm2_and_the_program_answers_through_the_adapter(tmp_path):
    lm = pl.LM("local/smollm2-135m")
    trainset = questions.trainset(16)
    student = pl.Predict(questions.Classify, lm=lm)
    optimizer = BootstrapFinetune(
        questions.correct,
        epochs=2,
        batch_size=4,
        max_steps=5,
        lora_rank=8,
        lora_layers=4,
        train_threads=1,  # on a loaded 2-core machine one torch thread is faster than two
        train_on_labels=True,
        min_examples=4,
        num_threads=1,
        output_dir=tmp_path / "weights",
        checkpoint=tmp_path / "checkpoint",
    )
    compiled = optimizer.compile(student, trainset=trainset)
    [training] = compiled.compile_report.training
    assert training.examples == len(trainset)  # passing traces + labels for the rest
    assert training.steps == 5 and training.stopped_by == "max_steps" and training.epochs_done == 1
    assert training.last_loss < training.first_loss

    predictor = compiled.predictors()[0]
    assert predictor.lm.lora == training.weights and student.lm is lm  # the student is untouched
    for question, _ in questions.QUESTIONS[:3]:
        assert compiled(question=question).kind in ("human", "location", "number")  # grammar still holds
    entry = predictor.lm.history[-1]
    assert entry.response.texts[0].startswith("{")

    state = predictor.weights.to_state(tmp_path)
    record = WeightsRecord.from_state(state, tmp_path, lm=lm)
    assert record.sha256 == training.sha256 and record.base["model"] == "local/smollm2-135m"

    again = optimizer.compile(student, trainset=trainset)  # same data and settings: resumes after epoch 1
    [resumed] = again.compile_report.training
    assert resumed.resumed_epochs == 1 and resumed.steps == 5
    assert again.compile_report.resumed_steps >= 1  # the bootstrapped dataset came from the checkpoint
    assert resumed.sha256 == training.sha256  # and the adapter is the same, bit for bit
