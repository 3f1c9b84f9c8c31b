"""LoRA training on CPU with torch + PEFT, starting from the embedded model's own GGUF file.

The base weights are the GGUF llama.cpp runs (transformers dequantizes it to
float32), so the adapter learns a correction to exactly the weights it will be
applied to. The loss is the mean cross-entropy over completion tokens only.

Determinism: the adapter's initialisation, the shuffling (per epoch, from
``seed`` and the epoch number) and the thread count are fixed, so the same data
and settings give the same adapter. Checkpoints (safetensors + JSON, never pickle)
are written after every epoch; a run given the same checkpoint directory resumes
after the last finished epoch.

torch, transformers and peft are imported inside the functions that need them.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from promptless.atomic import write_text_atomic
from promptless.finetune.base import BaseModel
from promptless.finetune.tokens import TokenizedExample

log = logging.getLogger("promptless.finetune")

TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
CHECKPOINT_NAME = "train-state"
MIN_SHARED_PREFIX = 16  # a shorter shared prompt prefix is not worth a forward pass of its own


@dataclass(frozen=True)
class TrainSettings:
    """The knobs of one LoRA run (DSPy's ``train_kwargs``)."""

    epochs: int = 2
    lr: float = 1e-3
    lora_rank: int = 16
    lora_alpha: float = 32.0
    batch_size: int = 8
    max_steps: int | None = None
    max_time_s: float | None = None
    warmup_steps: int = 5
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    target_modules: tuple[str, ...] = TARGET_MODULES
    lora_layers: int | None = None  # LoRA on the top N decoder layers only (None: all); fewer is faster
    seed: int = 0
    num_threads: int = 2

    def total_steps(self, n_examples: int) -> int:
        steps = self.epochs * math.ceil(n_examples / self.batch_size)
        return min(steps, self.max_steps) if self.max_steps is not None else steps


@dataclass
class TrainResult:
    """What one run produced: the adapter's tensors (PEFT names) and how training went."""

    adapter: dict[str, Any]  # name -> torch tensor (lora_A / lora_B of each target module)
    steps: int = 0
    epochs_done: int = 0
    losses: list[float] = field(default_factory=list)  # per step
    val_loss_before: float | None = None
    val_loss_after: float | None = None
    wall_time_s: float = 0.0
    stopped_by: str | None = None  # "max_steps" / "max_time_s" when a limit cut the run short
    resumed_epochs: int = 0
    train_tokens: int = 0

    @property
    def first_loss(self) -> float | None:
        return _mean(self.losses[: max(1, len(self.losses) // 10)]) if self.losses else None

    @property
    def last_loss(self) -> float | None:
        return _mean(self.losses[-max(1, len(self.losses) // 10) :]) if self.losses else None


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def load_model(base: BaseModel, num_threads: int = 2) -> Any:
    """The base model in float32, from its GGUF file, offline; the last one loaded is kept for the process.

    Training adds LoRA layers and removes them again (``unload``), so the kept model is the base model
    again when the next compile (a rerun, BetterTogether's next ``w`` step) asks for it.
    """
    import torch  # lazy: the optional training extra

    torch.set_num_threads(num_threads)
    stat = base.path.stat()
    return _load_model(str(base.path), stat.st_size, stat.st_mtime_ns, base.model)


@functools.lru_cache(maxsize=1)
def _load_model(path: str, size: int, mtime_ns: int, name: str) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch  # lazy: the optional training extra
    from transformers import AutoModelForCausalLM  # lazy: the optional training extra
    from transformers.utils import logging as hf_logging  # lazy: the optional training extra

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    _quiet_gguf_progress()
    started = time.perf_counter()
    folder, file = os.path.split(path)
    with _one_gguf_parse(path):
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=file, dtype=torch.float32)
    log.info("loaded %s for training in %.1fs", name, time.perf_counter() - started)
    return model


@contextlib.contextmanager
def _one_gguf_parse(path: str) -> Iterator[None]:
    """Within the block, every ``gguf.GGUFReader(path)`` is one reader, parsed once.

    transformers reads the file's metadata twice (for the config, then again with the
    weights), and ``GGUFReader`` parses every vocabulary entry each time: Gemma-3's
    262k tokens take ~30 s a parse on a shared core. The reader is read-only (a memory
    map), so the second read can be the first. Other paths get a reader of their own.
    """
    import gguf  # lazy: the optional training extra

    real = gguf.GGUFReader
    target = os.path.realpath(path)
    parsed: list[Any] = []

    def reader(file: Any, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs or os.path.realpath(file) != target:
            return real(file, *args, **kwargs)
        if not parsed:
            parsed.append(real(file))
        return parsed[0]

    gguf.GGUFReader = reader  # type: ignore[misc]  # transformers imports it from the package at call time
    try:
        yield
    finally:
        gguf.GGUFReader = real  # type: ignore[misc]


def _quiet_gguf_progress() -> None:
    """transformers' GGUF loader draws a tqdm bar of its own that ignores its logging switches."""
    try:
        from transformers import modeling_gguf_pytorch_utils as gguf_utils  # lazy: the optional training extra
    except ImportError:
        return
    bar = getattr(gguf_utils, "tqdm", None)
    if bar is not None and not getattr(bar, "_promptless_quiet", False):
        quiet = functools.partial(bar, disable=True)
        quiet._promptless_quiet = True  # type: ignore[attr-defined]
        gguf_utils.tqdm = quiet


def with_lora(model: Any, settings: TrainSettings) -> Any:
    import torch  # lazy: the optional training extra
    from peft import LoraConfig, get_peft_model  # lazy: the optional training extra

    torch.manual_seed(settings.seed)
    layers = None
    if settings.lora_layers is not None:
        n_layers = int(model.config.num_hidden_layers)
        layers = list(range(max(0, n_layers - settings.lora_layers), n_layers))
    config = LoraConfig(
        layers_to_transform=layers,
        r=settings.lora_rank,
        lora_alpha=settings.lora_alpha,
        lora_dropout=0.0,
        target_modules=list(settings.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def _batches(examples: Sequence[TokenizedExample], settings: TrainSettings, epoch: int) -> list[list[int]]:
    order = list(range(len(examples)))
    random.Random(f"{settings.seed}:{epoch}").shuffle(order)
    return [order[i : i + settings.batch_size] for i in range(0, len(order), settings.batch_size)]


def _collate(items: Sequence[TokenizedExample], pad_id: int, start: int = 0) -> tuple[Any, Any, Any]:
    """Ids, attention mask and labels (-100 except on completion tokens) of each item from token ``start`` on."""
    import torch  # lazy: the optional training extra

    width = max(item.length for item in items) - start
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    labels = torch.full((len(items), width), -100, dtype=torch.long)
    for row, item in enumerate(items):
        tokens = [*item.prompt, *item.completion][start:]
        ids[row, : len(tokens)] = torch.tensor(tokens)
        mask[row, : len(tokens)] = 1
        labels[row, len(item.prompt) - start : len(tokens)] = torch.tensor(item.completion)
    return ids, mask, labels


def shared_prefix(items: Sequence[TokenizedExample]) -> int:
    """How many leading prompt tokens all items have in common, leaving each at least one prompt token of its own."""
    limit = max(0, min(len(item.prompt) for item in items) - 1)
    first = items[0].prompt
    for n in range(limit):
        if any(item.prompt[n] != first[n] for item in items[1:]):
            return n
    return limit


def _loss(model: Any, items: Sequence[TokenizedExample], pad_id: int) -> tuple[Any, int]:
    """Summed cross-entropy over completion tokens, and how many there were.

    The prompt tokens all items of a batch share (the instructions, a ``Literal``'s label
    list, the demos) run once for the batch, with gradients, and the rest of each item
    attends to their keys and values: the loss of running every item whole, for a fraction
    of the tokens when the shared part is long (on BANKING77 the 77 labels are ~580 of ~610
    prompt tokens). The output layer (576 x 49k for SmolLM2, 640 x 262k for Gemma) runs
    only where a completion token is predicted, not over the whole prompt.
    """
    import torch  # lazy: the optional training extra

    causal = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = causal.get_decoder()
    start = shared_prefix(items) if len(items) > 1 else 0
    start = start if start >= MIN_SHARED_PREFIX else 0
    ids, mask, labels = _collate(items, pad_id, start)
    if start:
        prefix = torch.tensor([items[0].prompt[:start]], dtype=torch.long)
        from transformers import DynamicCache  # lazy: the optional training extra

        cache = DynamicCache(config=causal.config)
        decoder(input_ids=prefix, use_cache=True, **{_cache_keyword(decoder): cache})
        cache.batch_repeat_interleave(len(items))
        whole = torch.cat([torch.ones((len(items), start), dtype=torch.long), mask], dim=1)
        out = decoder(input_ids=ids, attention_mask=whole, use_cache=True, **{_cache_keyword(decoder): cache})
    else:
        out = decoder(input_ids=ids, attention_mask=mask)
    hidden = out.last_hidden_state[:, :-1]
    target = labels[:, 1:]
    where = target != -100
    logits = causal.get_output_embeddings()(hidden[where])
    total = torch.nn.functional.cross_entropy(logits.float(), target[where], reduction="sum")
    return total, int(where.sum())


def _cache_keyword(decoder: Any) -> str:
    """``cache`` in transformers 5.x, ``past_key_values`` before."""
    import inspect

    return "cache" if "cache" in inspect.signature(decoder.forward).parameters else "past_key_values"


def evaluate_loss(model: Any, examples: Sequence[TokenizedExample], pad_id: int, batch_size: int = 8) -> float | None:
    """Mean completion-token loss on ``examples`` without gradients."""
    if not examples:
        return None
    import torch  # lazy: the optional training extra

    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            loss, n = _loss(model, examples[start : start + batch_size], pad_id)
            total, count = total + float(loss), count + n
    return total / max(1, count)


def adapter_tensors(model: Any) -> dict[str, Any]:
    """The trained LoRA tensors, by their PEFT names."""
    return {k: v.detach().clone() for k, v in model.state_dict().items() if ".lora_A." in k or ".lora_B." in k}


def train(
    base: BaseModel,
    examples: Sequence[TokenizedExample],
    settings: TrainSettings,
    *,
    pad_id: int,
    val_examples: Sequence[TokenizedExample] = (),
    checkpoint_dir: str | os.PathLike[str] | None = None,
    fingerprint: str = "",
    progress: Callable[[int, int, float], None] | None = None,
    model: Any = None,
) -> TrainResult:
    """Train one LoRA adapter on ``examples``; see the module docstring for determinism and checkpoints.

    ``progress(step, total_steps, loss)`` is called after every step. ``model``: an
    already loaded base model (it gets a fresh adapter), to load the weights once
    when several adapters are trained.
    """
    import torch  # lazy: the optional training extra

    if not examples:
        raise ValueError("no training examples")
    started = time.perf_counter()
    torch.set_num_threads(settings.num_threads)
    model = with_lora(model if model is not None else load_model(base, settings.num_threads), settings)
    try:
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
        total = settings.total_steps(len(examples))
        warmup = min(settings.warmup_steps, max(1, total // 10))

        def lr_at(step: int) -> float:  # linear warm-up, then linear decay to 10 % of lr
            if step < warmup:
                return (step + 1) / warmup
            return max(0.1, 1.0 - 0.9 * (step - warmup) / max(1, total - warmup))

        result = TrainResult({})
        store = _CheckpointStore(checkpoint_dir, fingerprint) if checkpoint_dir is not None else None
        if store is not None and store.load(model, optimizer, result):
            log.info("resumed after epoch %d (step %d) from %s", result.epochs_done, result.steps, checkpoint_dir)
            result.resumed_epochs = result.epochs_done
        if result.steps == 0:
            result.val_loss_before = evaluate_loss(model, val_examples, pad_id, settings.batch_size)
        budget_start = time.perf_counter()
        for epoch in range(result.epochs_done, settings.epochs):
            for batch in _batches(examples, settings, epoch):
                if settings.max_steps is not None and result.steps >= settings.max_steps:
                    result.stopped_by = "max_steps"
                    break
                if settings.max_time_s is not None and time.perf_counter() - budget_start >= settings.max_time_s:
                    result.stopped_by = "max_time_s"
                    break
                for group in optimizer.param_groups:
                    group["lr"] = settings.lr * lr_at(result.steps)
                items = [examples[i] for i in batch]
                loss_sum, count = _loss(model, items, pad_id)
                loss = loss_sum / max(1, count)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
                optimizer.step()
                result.steps += 1
                result.train_tokens += sum(item.length for item in items)
                result.losses.append(loss.item())
                if progress is not None:
                    progress(result.steps, total, result.losses[-1])
            else:
                result.epochs_done = epoch + 1
                if store is not None:
                    store.save(model, optimizer, result)
                continue
            break  # a limit stopped the run inside this epoch
        model.eval()
        result.val_loss_after = evaluate_loss(model, val_examples, pad_id, settings.batch_size)
        result.adapter = adapter_tensors(model)
    finally:  # the base model without LoRA layers again (it is kept for the next adapter), also after an error
        model.unload()
    result.wall_time_s = time.perf_counter() - started
    return result


class _CheckpointStore:
    """After each epoch: adapter + optimizer tensors (safetensors) and the loop's state (JSON), each atomic."""

    def __init__(self, directory: str | os.PathLike[str], fingerprint: str) -> None:
        self.dir = Path(directory)
        self.fingerprint = fingerprint

    def save(self, model: Any, optimizer: Any, result: TrainResult) -> None:
        from safetensors.torch import save_file  # lazy: the optional training extra

        tensors = {f"model.{k}": v.contiguous() for k, v in adapter_tensors(model).items()}
        names = {id(p): n for n, p in model.named_parameters() if p.requires_grad}
        steps = {}
        for group in optimizer.param_groups:
            for param in group["params"]:
                state = optimizer.state.get(param, {})
                name = names[id(param)]
                for key in ("exp_avg", "exp_avg_sq"):
                    if key in state:
                        tensors[f"optim.{key}.{name}"] = state[key].contiguous()
                if "step" in state:
                    steps[name] = float(state["step"])
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".{CHECKPOINT_NAME}.safetensors.tmp"
        save_file(tensors, str(tmp))
        os.replace(tmp, self.dir / f"{CHECKPOINT_NAME}.safetensors")
        meta = {
            "fingerprint": self.fingerprint,
            "epochs_done": result.epochs_done,
            "steps": result.steps,
            "losses": result.losses,
            "val_loss_before": result.val_loss_before,
            "train_tokens": result.train_tokens,
            "optimizer_steps": steps,
        }
        write_text_atomic(self.dir / f"{CHECKPOINT_NAME}.json", json.dumps(meta), fsync=True)

    def load(self, model: Any, optimizer: Any, result: TrainResult) -> bool:
        meta_path, tensor_path = self.dir / f"{CHECKPOINT_NAME}.json", self.dir / f"{CHECKPOINT_NAME}.safetensors"
        if not meta_path.is_file() or not tensor_path.is_file():
            return False
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("fingerprint") != self.fingerprint:
            log.warning("checkpoint in %s is from other data or settings; starting afresh", self.dir)
            return False
        import torch  # lazy: the optional training extra
        from safetensors.torch import load_file  # lazy: the optional training extra

        tensors = load_file(str(tensor_path))
        own = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
        missing = [k for k in adapter_tensors(model) if k not in own]
        if missing:
            log.warning("checkpoint in %s lacks %d adapter tensors; starting afresh", self.dir, len(missing))
            return False
        model.load_state_dict(own, strict=False)
        for name, param in model.named_parameters():
            if not param.requires_grad:
                continue
            if f"optim.exp_avg.{name}" in tensors:
                optimizer.state[param] = {
                    "step": torch.tensor(meta["optimizer_steps"].get(name, 0.0)),
                    "exp_avg": tensors[f"optim.exp_avg.{name}"].clone(),
                    "exp_avg_sq": tensors[f"optim.exp_avg_sq.{name}"].clone(),
                }
        result.epochs_done = int(meta["epochs_done"])
        result.steps = int(meta["steps"])
        result.losses = list(meta["losses"])
        result.val_loss_before = meta.get("val_loss_before")
        result.train_tokens = int(meta.get("train_tokens", 0))
        return True


def settings_dict(settings: TrainSettings) -> dict[str, Any]:
    """JSON-able settings (for fingerprints and reports)."""
    data = asdict(settings)
    data["target_modules"] = list(settings.target_modules)
    return data
