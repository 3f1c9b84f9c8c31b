"""LoRA training and GGUF export on a tiny random llama model: loss goes down, runs are deterministic,
a resumed run equals an uninterrupted one, limits stop cleanly, and the GGUF has llama.cpp's layout."""

import errno
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")
gguf = pytest.importorskip("gguf")

from promptless.finetune.base import BaseModel  # noqa: E402
from promptless.finetune.export import gguf_tensors, permute_rows, write_lora_gguf  # noqa: E402
from promptless.finetune.tokens import TokenizedExample  # noqa: E402
from promptless.finetune.train import TrainSettings, evaluate_loss, train  # noqa: E402

BASE = BaseModel("tiny", "llama", n_head=4, n_head_kv=2, path=Path("/nonexistent/tiny.gguf"))


def tiny_model():
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    return transformers.LlamaForCausalLM(config).eval()


def data(n=12):
    # prompt "a b c", completion "label eos": the label is a function of the prompt's first token
    return [TokenizedExample((10 + i % 4, 20, 21), (40 + i % 4, 1)) for i in range(n)]


def settings(**changes):
    return TrainSettings(**{"epochs": 3, "lr": 5e-3, "lora_rank": 4, "batch_size": 4, "num_threads": 1, **changes})


def test_loss_goes_down_only_on_completion_tokens_and_the_run_is_deterministic():
    examples = data()
    first = train(BASE, examples, settings(), pad_id=0, val_examples=examples[:4], model=tiny_model())
    assert first.steps == 9 and first.epochs_done == 3 and first.stopped_by is None
    assert first.val_loss_after < first.val_loss_before
    assert first.last_loss < first.first_loss
    assert first.train_tokens == 9 * 4 * 5
    again = train(BASE, examples, settings(), pad_id=0, model=tiny_model())
    assert again.losses == first.losses
    assert all(torch.equal(first.adapter[k], again.adapter[k]) for k in first.adapter)
    # only completion tokens count: a loss over the prompt tokens too would differ
    model = tiny_model()
    longer = [TokenizedExample((*e.prompt, 30, 31), e.completion) for e in examples]
    assert evaluate_loss(model, examples, 0) != evaluate_loss(model, longer, 0)  # the completion's context changed
    same = [TokenizedExample(e.prompt, e.completion) for e in examples]
    assert evaluate_loss(model, same, 0) == evaluate_loss(model, examples, 0)


def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path):
    examples = data()
    full = train(BASE, examples, settings(), pad_id=0, model=tiny_model())

    class Killed(Exception):
        pass

    def kill_in_epoch_three(step, total, loss):
        if step == 7:
            raise Killed

    with pytest.raises(Killed):  # the process dies during the third epoch
        train(
            BASE, examples, settings(), pad_id=0, checkpoint_dir=tmp_path, fingerprint="k",
            progress=kill_in_epoch_three, model=tiny_model(),
        )  # fmt: skip
    assert (tmp_path / "train-state.safetensors").is_file()
    assert not any(p.suffix == ".pkl" or p.name.endswith(".bin") for p in tmp_path.iterdir())  # never pickle
    resumed = train(BASE, examples, settings(), pad_id=0, checkpoint_dir=tmp_path, fingerprint="k", model=tiny_model())
    assert resumed.resumed_epochs == 2 and resumed.steps == full.steps
    assert resumed.losses == pytest.approx(full.losses)
    assert all(torch.allclose(full.adapter[k], resumed.adapter[k], atol=1e-6) for k in full.adapter)
    other = train(BASE, examples, settings(), pad_id=0, checkpoint_dir=tmp_path, fingerprint="x", model=tiny_model())
    assert other.resumed_epochs == 0  # another fingerprint: not resumed


def test_max_steps_and_max_time_stop_cleanly_with_the_adapter_so_far():
    examples = data()
    capped = train(BASE, examples, settings(max_steps=4), pad_id=0, model=tiny_model())
    assert capped.steps == 4 and capped.stopped_by == "max_steps" and capped.adapter
    timed = train(BASE, examples, settings(max_time_s=1e-9), pad_id=0, model=tiny_model())
    assert timed.steps == 0 and timed.stopped_by == "max_time_s" and timed.adapter


def test_lora_layers_adapts_only_the_top_layers():
    result = train(BASE, data(), settings(lora_layers=1, max_steps=1), pad_id=0, model=tiny_model())
    assert result.adapter and all(".layers.1." in k for k in result.adapter)


def test_the_gguf_has_llama_cpp_adapter_layout_with_q_and_k_rows_permuted(tmp_path):
    result = train(BASE, data(), settings(max_steps=2), pad_id=0, model=tiny_model())
    path = write_lora_gguf(result.adapter, BASE, 8.0, tmp_path / "w" / "adapter.gguf")
    reader = gguf.GGUFReader(str(path))
    fields = {name: field.contents() for name, field in reader.fields.items() if not name.startswith("GGUF.")}
    assert fields["general.type"] == "adapter" and fields["adapter.type"] == "lora"
    assert fields["adapter.lora.alpha"] == 8.0 and fields["general.architecture"] == "llama"
    tensors = {t.name: t for t in reader.tensors}
    assert len(tensors) == 2 * 7 * 2  # A and B, seven projections, two layers
    q_b = tensors["blk.0.attn_q.weight.lora_b"]
    assert list(q_b.shape) == [4, 32]  # GGUF order: (rank, out)
    peft_q_b = next(v for k, v in result.adapter.items() if "layers.0.self_attn.q_proj.lora_B" in k).numpy()
    assert (q_b.data.reshape(32, 4) == permute_rows(peft_q_b, 4)).all()
    peft_v_b = next(v for k, v in result.adapter.items() if "layers.0.self_attn.v_proj.lora_B" in k).numpy()
    assert (tensors["blk.0.attn_v.weight.lora_b"].data.reshape(16, 4) == peft_v_b).all()  # v is not permuted
    assert list(tensors["blk.1.ffn_down.weight.lora_a"].shape) == [64, 4]  # (in, rank)
    assert [p.name for p in path.parent.iterdir()] == ["adapter.gguf"]


def test_permute_rows_matches_the_rotary_layout_of_llama_cpp():
    import numpy as np

    w = np.arange(8 * 3).reshape(8, 3)
    out = permute_rows(w, 2)  # 2 heads of 4 rows: halves [0,1],[2,3] interleave to 0,2,1,3
    assert out[:4, 0].tolist() == [0, 6, 3, 9] and out[4:, 0].tolist() == [12, 18, 15, 21]


def test_a_full_disk_leaves_no_adapter_file_behind(tmp_path, monkeypatch):
    result = train(BASE, data(), settings(max_steps=1), pad_id=0, model=tiny_model())

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensors_to_file", full)
    with pytest.raises(OSError, match="No space left"):
        write_lora_gguf(result.adapter, BASE, 8.0, tmp_path / "adapter.gguf")
    assert list(tmp_path.iterdir()) == []


def test_unknown_adapter_tensors_are_refused():
    with pytest.raises(ValueError, match="unexpected adapter tensor"):
        gguf_tensors({"model.embed_tokens.lora_A.weight": torch.zeros(2, 2)}, BASE)


def test_a_shared_prompt_prefix_runs_once_per_batch_with_the_same_loss_and_gradients(monkeypatch):
    from promptless.finetune import train as train_module
    from promptless.finetune.train import shared_prefix, with_lora

    shared = tuple(range(2, 22))  # 20 prompt tokens every item has, like a signature's instructions and labels
    items = [TokenizedExample((*shared, 30 + i % 3, 40 + i), (50 + i % 4, 51, 1)) for i in range(5)]
    items.append(TokenizedExample((*shared, 33), (52, 1)))  # shorter: the suffixes are padded
    assert shared_prefix(items) == 20
    assert shared_prefix([items[0], TokenizedExample(shared[:5], (1,))]) == 4  # each keeps a prompt token
    assert shared_prefix(data(4)) == 0

    def loss_and_grads(min_shared):
        monkeypatch.setattr(train_module, "MIN_SHARED_PREFIX", min_shared)
        model = with_lora(tiny_model(), settings())
        params = [p for p in model.parameters() if p.requires_grad]
        for p in params:  # lora_B starts at zero; make the adapter matter so its gradients are compared too
            torch.nn.init.normal_(p, std=0.1)
        total, count = train_module._loss(model, items, 0)
        total.backward()
        return total.item(), count, [p.grad.clone() for p in params]

    whole, whole_count, whole_grads = loss_and_grads(10_000)  # every item run whole
    once, once_count, once_grads = loss_and_grads(16)  # the 20 shared tokens run once for the batch
    assert once_count == whole_count == 5 * 3 + 2
    assert once == pytest.approx(whole, rel=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5, rtol=1e-4) for a, b in zip(once_grads, whole_grads, strict=True))


# -- gemma3: no q/k permutation, sliding-window layers ------------------------------------------------
GEMMA = BaseModel("tiny-gemma", "gemma3", n_head=4, n_head_kv=1, path=Path("/nonexistent/tiny-gemma.gguf"))


def tiny_gemma(sliding_window=4):
    """Gemma-3's layout in miniature: q/k norms, (1 + w) RMSNorms, a sliding-window layer then a global one."""
    torch.manual_seed(0)
    config = transformers.Gemma3TextConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=8,
        query_pre_attn_scalar=8,
        sliding_window=sliding_window,
        layer_types=["sliding_attention", "full_attention"],
        max_position_embeddings=64,
    )
    return transformers.Gemma3ForCausalLM(config).eval()


def test_a_gemma3_adapter_is_written_as_peft_has_it_under_llama_cpp_names(tmp_path):
    result = train(GEMMA, data(), settings(max_steps=2), pad_id=0, model=tiny_gemma())
    assert result.last_loss < result.first_loss
    path = write_lora_gguf(result.adapter, GEMMA, 8.0, tmp_path / "adapter.gguf")
    reader = gguf.GGUFReader(str(path))
    fields = {name: field.contents() for name, field in reader.fields.items() if not name.startswith("GGUF.")}
    assert fields["general.architecture"] == "gemma3" and fields["general.type"] == "adapter"
    assert fields["adapter.type"] == "lora" and fields["adapter.lora.alpha"] == 8.0
    tensors = {t.name: t for t in reader.tensors}
    assert len(tensors) == 2 * 7 * 2 and not any("norm" in name for name in tensors)
    for module, stem, rows in [("q_proj", "attn_q", 32), ("k_proj", "attn_k", 8), ("o_proj", "attn_output", 32)]:
        peft_b = next(v for k, v in result.adapter.items() if f"layers.1.self_attn.{module}.lora_B" in k).numpy()
        assert (tensors[f"blk.1.{stem}.weight.lora_b"].data.reshape(rows, 4) == peft_b).all()  # not permuted
    peft_q_a = next(v for k, v in result.adapter.items() if "layers.0.self_attn.q_proj.lora_A" in k).numpy()
    assert (tensors["blk.0.attn_q.weight.lora_a"].data.reshape(4, 32) == peft_q_a).all()


def test_a_shared_prefix_longer_than_the_sliding_window_gives_the_same_loss_and_gradients(monkeypatch):
    from promptless.finetune import train as train_module
    from promptless.finetune.train import with_lora

    shared = tuple(range(2, 22))  # 20 shared tokens, five times the window: the window slides inside the prefix
    items = [TokenizedExample((*shared, 30 + i % 3, 40 + i), (50 + i % 4, 51, 1)) for i in range(4)]
    items.append(TokenizedExample((*shared, 33), (52, 1)))

    def loss_and_grads(min_shared, window=4):
        monkeypatch.setattr(train_module, "MIN_SHARED_PREFIX", min_shared)
        model = with_lora(tiny_gemma(window), settings())
        params = [p for p in model.parameters() if p.requires_grad]
        for p in params:
            torch.nn.init.normal_(p, std=0.1)
        total, count = train_module._loss(model, items, 0)
        total.backward()
        return total.item(), count, [p.grad.clone() for p in params]

    whole, whole_count, whole_grads = loss_and_grads(10_000)
    once, once_count, once_grads = loss_and_grads(16)
    assert once_count == whole_count == 4 * 3 + 2
    assert loss_and_grads(10_000, window=64)[0] != pytest.approx(whole, rel=1e-4)  # the window is in play
    assert once == pytest.approx(whole, rel=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5, rtol=1e-4) for a, b in zip(once_grads, whole_grads, strict=True))


def test_the_gguf_file_is_parsed_once_while_transformers_loads_it(tmp_path):
    from promptless.finetune.train import _one_gguf_parse

    paths = []
    for name in ("model.gguf", "other.gguf"):
        writer = gguf.GGUFWriter(str(tmp_path / name), "llama")
        writer.add_tensor("x", torch.zeros(2).numpy())
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        paths.append(str(tmp_path / name))
    real = gguf.GGUFReader
    with _one_gguf_parse(paths[0]):
        first = gguf.GGUFReader(paths[0])
        assert gguf.GGUFReader(str(Path(paths[0]))) is first  # the config read, then the weights read: one parse
        assert gguf.GGUFReader(paths[1]) is not first and isinstance(first, real)
    assert gguf.GGUFReader is real and real(paths[0]) is not first
