"""The values every floor speaks: what an LM call asks for and gets back, and the names of defaults.

They live at the bottom so that records, adapters, backends and views can all use
them without importing the LM class (as httpx keeps ``Request``/``Response`` below its
transports).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from typing import Any, Literal

ModelType = Literal["chat", "completion"]

DEFAULT_MODEL = "local/gemma-3-270m"  # what runs when nothing is configured
ARTIFACT_FORMAT = "promptless.program"  # the "format" of a saved program
ARTIFACT_VERSION = 1


@dataclass(frozen=True, init=False)
class Request:
    """What one LM call asks for: chat ``messages`` or a completion ``prompt``.

    ``schema`` is the JSON schema the output must follow (servers get it as
    ``response_format``); ``grammar`` is a GBNF grammar for backends that take one
    (llama.cpp), used in preference to the schema. ``rollout_id`` only changes the
    cache key, so a resample at temperature > 0 is not answered from the cache.
    ``choices``: instead of generating, score each of these continuations of the prompt
    (their summed token log-probabilities come back as ``Response.logprobs``); only
    backends that implement ``score_choices`` take such a request.
    """

    messages: tuple[dict[str, str], ...] | None = None
    prompt: str | None = None
    temperature: float = 0.0
    max_tokens: int = 512
    n: int = 1
    stop: tuple[str, ...] = ()
    seed: int | None = None
    schema: dict[str, Any] | None = None
    grammar: str | None = None
    rollout_id: int | None = None
    choices: tuple[str, ...] | None = None

    def __init__(
        self,
        messages: tuple[dict[str, str], ...] | None = None,
        prompt: str | None = None,
        temperature: float = 0.0,
        max_tokens: int = 512,
        n: int = 1,
        stop: tuple[str, ...] = (),
        seed: int | None = None,
        schema: dict[str, Any] | None = None,
        grammar: str | None = None,
        rollout_id: int | None = None,
        choices: tuple[str, ...] | None = None,
    ) -> None:
        """Written out, not generated: a frozen dataclass sets each field through ``object.__setattr__``,
        and a Request is made on every call."""
        if (messages is None) == (prompt is None):
            raise ValueError("Request needs exactly one of `messages` or `prompt`")
        if n < 1:
            raise ValueError(f"Request.n must be >= 1, got {n!r}")
        if choices is not None and (len(choices) < 1 or not all(isinstance(c, str) for c in choices)):
            raise ValueError(f"Request.choices must be a non-empty tuple of strings, got {choices!r}")
        self.__dict__.update(
            messages=messages,
            prompt=prompt,
            temperature=temperature,
            max_tokens=max_tokens,
            n=n,
            stop=stop,
            seed=seed,
            schema=schema,
            grammar=grammar,
            rollout_id=rollout_id,
            choices=choices,
        )

    def cache_key(self, model_id: str) -> str:
        """Stable digest of everything that changes the answer (never secrets).

        A request without ``choices`` keys as it did before the field existed, so caches stay valid.
        """
        state = vars(self)
        if self.choices is None:
            state = {k: v for k, v in state.items() if k != "choices"}
        payload = json.dumps([model_id, state], sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()

    @property
    def text(self) -> str:
        """The prompt as one string, for display and token counting."""
        if self.prompt is not None:
            return self.prompt
        return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in self.messages or ())


@dataclass
class Usage:
    """Tokens and calls; ``cached_tokens`` are the prompt tokens the backend reused (part of ``prompt_tokens``)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    calls: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cached_tokens + other.cached_tokens,
            self.calls + other.calls,
        )

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Response:
    """What came back: one text per requested completion, plus accounting.

    ``history`` is the entry the LM recorded for this call (Predict annotates it with
    what it parsed); it is never cached, compared or serialized. ``logprobs`` answers a
    request with ``choices``: one summed log-probability per choice, in its order (the
    ``texts`` then hold the likeliest choice).
    """

    texts: list[str]
    usage: Usage = field(default_factory=Usage)
    finish_reasons: list[str] = field(default_factory=list)
    latency_s: float = 0.0
    model: str = ""
    cached: bool = False
    logprobs: list[float] | None = None
    history: HistoryEntry | None = field(default=None, repr=False, compare=False)

    @property
    def text(self) -> str:
        return self.texts[0]

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "history"}
        out["usage"] = vars(self.usage).copy()
        out["texts"], out["finish_reasons"] = list(self.texts), list(self.finish_reasons)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Response:
        data = {k: v for k, v in data.items() if k != "history"}
        data["usage"] = Usage(**data.get("usage", {}))
        return cls(**data)


@dataclass
class HistoryEntry:
    """One recorded call; Predict fills the last four fields after parsing (None for a call made outside Predict)."""

    request: Request
    response: Response
    model: str
    timestamp: float
    signature: str | None = None
    demos: list[Any] | None = None
    inputs: dict[str, Any] | None = None
    outputs: list[dict[str, Any]] | None = None  # the parsed fields of each completion


class History:
    """Earlier turns of a conversation, for an input field typed ``History`` (DSPy's ``dspy.History``).

    ``History(messages=[{"question": "Capital of France?", "answer": "Paris"}, ...])``: each
    message holds a turn's field values, named as in the signature. Adapters render the turns
    as the conversation itself (chat: user/assistant message pairs before the current input;
    completion: ``Label: value`` blocks), not as a field of the current input. A program that
    keeps a conversation appends to ``messages`` (``history.messages.append({"question": q, **pred})``).
    Saved in demos as ``{"messages": [...]}``, JSON, and read back as a History.
    """

    __slots__ = ("messages",)

    def __init__(self, *, messages: Any) -> None:
        if not isinstance(messages, (list, tuple)):
            raise TypeError(f"History(messages=) takes a list of dicts, got {type(messages).__name__}")
        turns = []
        for i, message in enumerate(messages):
            if not hasattr(message, "items"):  # a dict, or an Example/Prediction
                raise TypeError(f"History(messages=): message {i} is a {type(message).__name__}, not a dict")
            turns.append({str(k): v for k, v in message.items()})
        self.messages: list[dict[str, Any]] = turns

    @classmethod
    def coerce(cls, value: Any, *, field: str = "history") -> History:
        """A History from a History, ``{"messages": [...]}`` (as saved) or a list of turns; None is no turns."""
        if isinstance(value, History):
            return value
        if value is None:
            return cls(messages=[])
        if isinstance(value, dict) and set(value) == {"messages"}:
            return cls(messages=value["messages"])
        if isinstance(value, (list, tuple)):
            return cls(messages=value)
        raise TypeError(f"field {field!r}: a History holds earlier turns; got a {type(value).__name__} ({value!r:.80})")

    def copy(self) -> History:
        """An independent copy (the turns' dicts copied too), so a later append does not reach it."""
        return History(messages=self.messages)

    def model_dump(self, mode: str = "python") -> dict[str, Any]:
        """``{"messages": [...]}``, as DSPy's pydantic History dumps."""
        return {"messages": [dict(m) for m in self.messages]}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, History) and self.messages == other.messages

    __hash__ = None  # type: ignore[assignment]  # its turns can grow

    def __repr__(self) -> str:
        return f"History(messages={self.messages!r})"
