"""BootstrapFinetune on Gemma-3-270M (a base model: CompletionAdapter prompts), the adapter checked in llama.cpp.

The real test of the GGUF mapping: llama.cpp's next-token logits with the exported adapter must agree
with transformers + PEFT's with the trained tensors as closely as the two agree on the base model
alone. The GGUF is Q4_K_M; llama.cpp runs its matmuls on quantized activations, transformers on the
dequantized float32 weights, so they never agree exactly. Measured: base against base, a mean |logit
difference| of 0.12-0.26 per position (262k logits reaching ~20; correlation 0.999, same top-5); with
this test's adapter 0.10-0.21 (max 0.82), and the adapter's change to the logits (mean 2.0) correlates
0.995 between the two. The same kind of adapter exported with the llama architecture's q/k row
permutation (wrong for gemma3) was off by 0.81 on average.

About 1.5 minutes on 2 shared cores, most of it transformers reading the GGUF's 262k-token vocabulary
and dequantizing the weights; 12 teacher calls and 3 training steps.
"""

import pytest

pytest.importorskip("llama_cpp")
torch = pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("transformers")
gguf = pytest.importorskip("gguf")

import numpy as np  # noqa: E402

import promptless as pl  # noqa: E402
from promptless.finetune.base import resolve_base  # noqa: E402
from promptless.finetune.export import gguf_tensors  # noqa: E402
from promptless.finetune.tokens import LlamaTokenizer  # noqa: E402
from promptless.finetune.train import load_model, with_lora  # noqa: E402
from tests.integration import trec_questions as questions  # noqa: E402

pytestmark = pytest.mark.integration
MAX_MEAN_DIFF = 0.5  # base against base: 0.12-0.26; the wrong q/k layout: 0.81
MIN_DELTA_CORRELATION = 0.95  # measured 0.995 (0.994-0.997 in other runs)


def llama_cpp_logits(path, ids, lora=None):
    from llama_cpp import Llama

    extra = {"lora_path": str(lora)} if lora is not None else {}
    llm = Llama(model_path=str(path), n_ctx=512, n_threads=1, logits_all=True, verbose=False, **extra)
    try:
        llm.eval(ids)
        return np.array(llm.scores[: len(ids)])
    finally:
        llm.close()


def test_bootstrap_finetune_trains_gemma_and_llama_cpp_applies_the_adapter_as_peft_does(tmp_path):
    lm = pl.LM("local/gemma-3-270m")
    trainset = questions.trainset(12)
    student = pl.Predict(questions.Classify, lm=lm)
    optimizer = pl.BootstrapFinetune(
        questions.correct,
        epochs=1,
        batch_size=4,
        lr=2e-3,
        lora_rank=8,
        lora_layers=4,
        train_threads=1,
        train_on_labels=True,
        min_examples=4,
        num_threads=1,
        output_dir=tmp_path / "weights",
        checkpoint=tmp_path / "checkpoint",  # after the epoch: the adapter's tensors by their PEFT names
    )
    compiled = optimizer.compile(student, trainset=trainset)
    [training] = compiled.compile_report.training
    assert training.examples == len(trainset) and training.steps == 3 and training.epochs_done == 1
    assert training.last_loss < training.first_loss

    predictor = compiled.predictors()[0]
    assert predictor.lm.lora == training.weights and predictor.weights.base["architecture"] == "gemma3"
    for question, _ in questions.QUESTIONS[:3]:
        assert compiled(question=question).kind in ("human", "location", "number")
    entry = predictor.lm.history[-1]
    assert entry.request.prompt.endswith("Kind:")  # the plain-text completion prompt it was trained on
    assert entry.response.texts[0].strip() in ("human", "location", "number")

    base = resolve_base(lm)
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "checkpoint" / "train-all" / "train-state.safetensors"))
    adapter = {k.removeprefix("model."): v for k, v in saved.items() if k.startswith("model.")}
    reader = gguf.GGUFReader(str(training.weights))
    fields = {k: reader.fields[k].contents() for k in ("general.architecture", "adapter.type", "adapter.lora.alpha")}
    assert fields == {"general.architecture": "gemma3", "adapter.type": "lora", "adapter.lora.alpha": 16.0}
    exported = {t.name: np.asarray(t.data) for t in reader.tensors}
    expected = gguf_tensors(adapter, base)
    assert sorted(exported) == sorted(expected)  # blk.N.attn_q.weight.lora_a ...: the top 4 of 18 layers
    assert all(np.array_equal(exported[k].reshape(v.shape), v) for k, v in expected.items())

    tokenizer = LlamaTokenizer.for_file(str(base.path))
    prompt = tokenizer.prompt_ids(entry.request)
    ids = prompt + tokenizer.completion_ids(" human\n")[:-1]  # the next-token logits along a trained completion
    model = load_model(base, 1)  # the model training used, kept for the process
    peft = with_lora(model, optimizer.settings.train_settings())
    try:
        missing = peft.load_state_dict(adapter, strict=False).missing_keys
        assert not [k for k in missing if "lora_" in k]
        peft.eval()
        with torch.no_grad():
            tuned = peft(torch.tensor([ids])).logits[0].numpy()
            with peft.disable_adapter():
                plain = peft(torch.tensor([ids])).logits[0].numpy()
    finally:
        peft.unload()
    cpp_tuned = llama_cpp_logits(base.path, ids, lora=training.weights)
    cpp_plain = llama_cpp_logits(base.path, ids)

    last = len(prompt) - 1  # from the prompt's last token on: where the adapter was trained
    diff = np.abs(cpp_tuned - tuned)[last:].mean(axis=1)
    assert diff.max() < MAX_MEAN_DIFF, diff
    assert np.abs(cpp_plain - plain)[last:].mean(axis=1).max() < MAX_MEAN_DIFF  # the base weights map too
    for ours, theirs in ((cpp_tuned, tuned), (tuned, cpp_tuned)):  # each one's favourite is among the other's top 3
        top3 = np.argsort(-theirs[last:], axis=1)[:, :3]
        assert all(best in row for best, row in zip(ours[last:].argmax(-1), top3, strict=True))
    change_cpp, change_peft = (cpp_tuned - cpp_plain)[last:].ravel(), (tuned - plain)[last:].ravel()
    assert np.corrcoef(change_cpp, change_peft)[0, 1] > MIN_DELTA_CORRELATION
    assert np.abs(change_cpp).mean() > 2 * diff.mean()  # and the adapter does change llama.cpp's logits
