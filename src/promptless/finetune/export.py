"""PEFT LoRA tensors -> a GGUF LoRA adapter that llama.cpp applies at load time (``lora_path=``).

The layout is llama.cpp's (gguf-py's constants and its LoRA converter describe it):

- ``general.type = "adapter"``, ``adapter.type = "lora"``, ``adapter.lora.alpha``, and
  ``general.architecture`` equal to the base model's;
- per target, ``blk.N.<tensor>.weight.lora_a`` of shape (rank, in) and ``.lora_b`` of
  shape (out, rank) (numpy order; GGUF stores dimensions reversed), where
  ``<tensor>`` is the GGUF name of the module (``q_proj`` -> ``attn_q`` ...);
- llama.cpp scales by ``alpha / rank``, as PEFT does.

The llama architecture's GGUF stores ``attn_q`` and ``attn_k`` with their rows
permuted for its rotary embedding (transformers undoes it when it loads the GGUF);
the delta ``B @ A`` lives in the same row space, so the rows of B are permuted the
same way. gemma3's converter permutes nothing (llama.cpp's gemma3 graph rotates in
the Hugging Face layout), so its A and B are written as PEFT has them; its norm
weights, stored +1 in the GGUF, are not LoRA targets. The file is written to a
temporary name and renamed: a full disk leaves no half-written adapter.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

from promptless.finetune.base import BaseModel

GGUF_NAMES = {
    "q_proj": "attn_q",
    "k_proj": "attn_k",
    "v_proj": "attn_v",
    "o_proj": "attn_output",
    "gate_proj": "ffn_gate",
    "up_proj": "ffn_up",
    "down_proj": "ffn_down",
}
ROTARY_PERMUTED = frozenset({"llama"})  # architectures whose GGUF q/k rows llama.cpp's converter permutes
_PEFT_NAME = re.compile(r"layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)\.lora_([AB])(?:\.\w+)?\.weight$")


def permute_rows(weights: Any, n_head: int) -> Any:
    """The row order llama.cpp's converter gives q/k weights (``n_head`` heads, two rotary halves each)."""
    rows = weights.shape[0]
    return weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def gguf_tensors(adapter: dict[str, Any], base: BaseModel) -> dict[str, Any]:
    """GGUF name -> float32 numpy array, in llama.cpp's layout."""
    pairs: dict[tuple[int, str], dict[str, Any]] = {}
    for name, tensor in adapter.items():
        match = _PEFT_NAME.search(name)
        if match is None:
            raise ValueError(f"unexpected adapter tensor {name!r} (only LoRA A/B of decoder-layer projections)")
        layer, module, which = int(match[1]), match[2], match[3]
        if module not in GGUF_NAMES:
            raise ValueError(f"LoRA on {module!r} cannot be exported; targets: {sorted(GGUF_NAMES)}")
        pairs.setdefault((layer, module), {})[which] = tensor.detach().float().cpu().numpy()
    out: dict[str, Any] = {}
    for (layer, module), ab in sorted(pairs.items()):
        if set(ab) != {"A", "B"}:
            raise ValueError(f"layer {layer} {module}: LoRA needs both A and B, got {sorted(ab)}")
        a, b = ab["A"], ab["B"]
        if base.architecture in ROTARY_PERMUTED and module == "q_proj":
            b = permute_rows(b, base.n_head)
        elif base.architecture in ROTARY_PERMUTED and module == "k_proj":
            b = permute_rows(b, base.n_head_kv)
        stem = f"blk.{layer}.{GGUF_NAMES[module]}.weight"
        out[f"{stem}.lora_a"] = a.copy(order="C")
        out[f"{stem}.lora_b"] = b.copy(order="C")
    return out


def write_lora_gguf(adapter: dict[str, Any], base: BaseModel, alpha: float, path: str | os.PathLike[str]) -> Path:
    """Write the adapter as a GGUF file at ``path`` (atomically); returns the path."""
    import gguf  # lazy: the optional training extra

    tensors = gguf_tensors(adapter, base)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        writer = gguf.GGUFWriter(tmp, base.architecture)
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
        writer.add_string(gguf.Keys.General.NAME, f"promptless LoRA for {base.model}")
        for name, array in tensors.items():
            writer.add_tensor(name, array)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.chmod(tmp, 0o644)  # mkstemp made it private; an adapter is as readable as the model it adapts
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
