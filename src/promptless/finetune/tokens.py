"""Token ids for training, taken from llama.cpp itself so they are the ids inference sees.

The prompt is tokenized exactly as the llama.cpp backend tokenizes it (chat
messages rendered with the model's own chat template, BOS added as the model's
metadata asks, special tokens parsed); the completion is tokenized on its own, as
the model writes it one token after the prompt, and ends with the model's
end-of-generation token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from promptless.finetune.dataset import TrainingExample
from promptless.lm import Request
from promptless.lm.llama import _formatter  # the backend's own chat-template renderer


class Tokenizer(Protocol):
    def prompt_ids(self, request: Request) -> list[int]: ...

    def completion_ids(self, text: str) -> list[int]: ...


@dataclass(frozen=True)
class TokenizedExample:
    """Prompt ids then completion ids; the loss is taken on the completion only."""

    prompt: tuple[int, ...]
    completion: tuple[int, ...]
    task: str = ""

    @property
    def length(self) -> int:
        return len(self.prompt) + len(self.completion)


class LlamaTokenizer:
    """Tokenizes with a loaded ``llama_cpp.Llama`` (the backend's, or a ``vocab_only`` copy)."""

    def __init__(self, llm: Any) -> None:
        self.llm = llm
        self.eos = int(llm.token_eos())

    @classmethod
    def for_file(cls, path: str) -> LlamaTokenizer:
        """Only the vocabulary and metadata of a GGUF file (fast, no weights)."""
        from llama_cpp import Llama  # lazy: llama-cpp-python loads a native library

        return cls(Llama(model_path=str(path), vocab_only=True, verbose=False))

    def prompt_text(self, request: Request) -> str:
        if request.prompt is not None:
            return request.prompt
        return _formatter(self.llm)(messages=list(request.messages or ())).prompt

    def prompt_ids(self, request: Request) -> list[int]:
        return list(self.llm.tokenize(self.prompt_text(request).encode(), add_bos=True, special=True))

    def completion_ids(self, text: str) -> list[int]:
        return [*self.llm.tokenize(text.encode(), add_bos=False, special=True), self.eos]


def tokenize(
    examples: Sequence[TrainingExample], tokenizer: Tokenizer, *, task: str = "", max_length: int = 2048
) -> list[TokenizedExample]:
    """Token ids of each example; one longer than ``max_length`` raises, naming it (it would be cut silently)."""
    out = []
    for i, example in enumerate(examples):
        item = TokenizedExample(
            tuple(tokenizer.prompt_ids(example.request)), tuple(tokenizer.completion_ids(example.completion)), task
        )
        if item.length > max_length:
            raise ValueError(
                f"training example {i} ({example.predictor}) has {item.length} tokens, more than max_length="
                f"{max_length}; shorten its inputs or demos, or raise max_length"
            )
        out.append(item)
    return out
