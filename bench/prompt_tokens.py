"""Prompt tokens per call for the same signatures and demos: promptless vs DSPy's ChatAdapter.

    python bench/prompt_tokens.py --dspy-python ../.bench-dspy-venv/bin/python

DSPy formats its messages in its own venv (``--emit-dspy``). Both sides' messages
are then rendered with SmolLM2's chat template and counted with its tokenizer.
Gemma's completion prompt (promptless's default for base models) is counted with
Gemma's tokenizer.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from overhead import SIGNATURES, demo, fields


def dspy_messages() -> dict[str, list[dict[str, str]]]:
    import dspy

    out = {}
    for name, spec in SIGNATURES.items():
        inputs, outputs = fields(spec)
        signature = dspy.Signature(f"{', '.join(inputs)} -> {', '.join(outputs)}")
        demos = [dspy.Example(demo(inputs, outputs, i)) for i in range(4)]
        out[name] = dspy.ChatAdapter().format(signature, demos, {n: f"{n} now" for n in inputs})
    return out


def promptless_requests() -> dict[str, tuple[list[dict[str, str]], str]]:
    import promptless as pl

    out = {}
    for name, spec in SIGNATURES.items():
        inputs, outputs = fields(spec)
        signature = pl.Signature(f"{', '.join(inputs)} -> {', '.join(outputs)}")
        demos = [pl.Example(demo(inputs, outputs, i)) for i in range(4)]
        values = {n: f"{n} now" for n in inputs}
        chat = pl.ChatAdapter().format(signature, demos, values)
        completion = pl.CompletionAdapter().format(signature, demos, values)
        out[name] = (list(chat.messages), completion.prompt)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dspy-python")
    parser.add_argument("--emit-dspy", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.emit_dspy:
        print(json.dumps(dspy_messages()))
        return
    from promptless.lm.llama import LlamaBackend, _formatter

    theirs = json.loads(
        subprocess.run([args.dspy_python, __file__, "--emit-dspy"], check=True, capture_output=True, text=True).stdout
    )
    smol, gemma = LlamaBackend("smollm2-135m"), LlamaBackend("gemma-3-270m")

    def chat_tokens(messages: list[dict[str, str]]) -> int:
        return smol.count_tokens(_formatter(smol.llm)(messages=messages).prompt)

    header = "signature (4 demos) | promptless ChatAdapter | promptless CompletionAdapter (Gemma) | DSPy ChatAdapter"
    print(f"| {header} | ratio (chat) |")
    print("|---|---|---|---|---|")
    for name, (messages, prompt) in promptless_requests().items():
        ours, base, dspy_count = chat_tokens(messages), gemma.count_tokens(prompt), chat_tokens(theirs[name])
        print(f"| {name} | {ours} | {base} | {dspy_count} | {ours / dspy_count:.2f}× |")


if __name__ == "__main__":
    main()
