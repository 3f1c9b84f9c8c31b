"""Predict: the one place an LM is called. Format, call, parse (with one retry), record the trace."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Generator, Mapping, Sequence
from pathlib import Path
from typing import Any

from promptless.adapters import Adapter, default_adapter_for
from promptless.adapters.values import to_jsonable
from promptless.callbacks import observed_format, observed_parse
from promptless.errors import ArtifactError, ParseError
from promptless.fieldtypes import is_optional
from promptless.finetune.artifact import WeightsRecord
from promptless.finetune.runtime import finetuned_lm
from promptless.lm import LM, resolve_lm
from promptless.module import Module, Parameter
from promptless.modules.label_choice import LabelChoice
from promptless.primitives import Example, Prediction, UsageView
from promptless.redact import redact_url
from promptless.settings import current
from promptless.signature import Signature, ensure_signature
from promptless.trace import TraceStep
from promptless.types import History, Request, Response, Usage

SAMPLING_KEYS = frozenset({"temperature", "max_tokens", "n", "stop", "seed", "rollout_id"})
FILE_LIMITS = {"n": 8, "max_tokens": 8192}  # the most a loaded artifact may ask for per call; code may ask for more
SAVED_LM_KEYS = ("model", "temperature", "max_tokens", "api_base", "lora")  # what an artifact's LM description keeps

log = logging.getLogger("promptless.predict")


class Predict(Module, Parameter):
    """Ask the LM for a signature's outputs given its inputs.

    ``config`` holds sampling settings (``temperature``, ``max_tokens``, ``n``,
    ``seed``, ``rollout_id``); a call may override them with ``config={...}``.
    Learned state is ``demos`` (and the signature's instructions).
    """

    _stamps_usage = True  # forward() stamps its Prediction's usage itself (see Module.__call__)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._stamps_usage = cls.forward is Predict.forward  # a forward of its own may call more than the LM

    def __init__(
        self,
        signature: str | Signature | type[Signature],
        *,
        lm: LM | None = None,
        adapter: Adapter | None = None,
        callbacks: Sequence[Any] = (),
        **config: Any,
    ) -> None:
        self.signature = ensure_signature(signature)
        self.callbacks = list(callbacks)  # told of this predictor's calls only; copies of a program share them
        self.lm = lm
        self.adapter = adapter
        self.config = _checked_config(config)
        self.demos: list[Example] = []
        self.choice: LabelChoice | None = None  # pick a finite output by likelihood (optimizers set it)

    def reset(self) -> None:
        """Forget what was learned (demos, label choice). Unlike DSPy's, the LM given to this predictor stays."""
        self.demos = []
        self.choice = None

    # -- calling -------------------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Prediction:
        if args:
            raise _positional(self, args)
        demos = kwargs.get("demos", self.demos)
        lm, adapter, inputs, request = self._prepare(kwargs)
        sink = current().stream_sink
        choice = self._choice_request(lm, adapter, request) if self.choice is not None and sink is None else None
        if choice is not None:
            scored, values = choice
            return self._chosen(lm, lm(scored), scored, adapter, values, demos, inputs)
        streamed = sink is not None and request.n == 1
        response = self._streamed(lm, adapter, request, sink) if streamed else lm(request)
        completions, errors, spent = [], [], [response]
        for text in response.texts:
            try:
                completions.append(observed_parse(adapter, self.signature, text))
            except ParseError as first:

                def send(retry: Request) -> str:
                    spent.append(lm(retry))
                    return spent[-1].text

                try:
                    completions.append(_drive(self._retried(adapter, request, text, first), send))
                except ParseError as error:
                    errors.append(error)
        if not completions:
            lm.forget(request)
        return self._finish(lm, spent, demos, inputs, completions, errors)

    async def aforward(self, *args: Any, **kwargs: Any) -> Prediction:
        """``forward`` without blocking the event loop: the LM call (and any parse retry) is awaited."""
        if args:
            raise _positional(self, args)
        demos = kwargs.get("demos", self.demos)
        lm, adapter, inputs, request = self._prepare(kwargs)
        choice = self._choice_request(lm, adapter, request) if self.choice is not None else None
        if choice is not None:
            scored, values = choice
            return self._chosen(lm, await lm.acomplete(scored), scored, adapter, values, demos, inputs)
        response = await lm.acomplete(request)
        completions, errors, spent = [], [], [response]
        for text in response.texts:
            try:
                completions.append(observed_parse(adapter, self.signature, text))
                continue
            except ParseError as first:
                steps = self._retried(adapter, request, text, first)
            try:
                retry = next(steps)
                while True:
                    spent.append(await lm.acomplete(retry))
                    retry = steps.send(spent[-1].text)
            except StopIteration as done:
                completions.append(done.value)
            except ParseError as error:
                errors.append(error)
        if not completions:
            lm.forget(request)
        return self._finish(lm, spent, demos, inputs, completions, errors)

    # -- choosing a label by likelihood (self.choice) ----------------------------------------------
    def _choice_request(self, lm: LM, adapter: Adapter, request: Request) -> tuple[Request, list[Any]] | None:
        """The scoring request for this call, or None when it must be decoded as usual.

        Sampling (temperature > 0, n > 1: a bootstrap's resampling rounds) and LMs that cannot
        score choices decode as usual; so does a signature without a finite output.
        """
        if request.n != 1 or request.temperature > 0 or not lm.scores_choices:
            return None
        options = adapter.choice_texts(self.signature)
        if options is None:
            return None
        texts = tuple(text for text, _ in options)
        scored = dataclasses.replace(request, choices=texts, grammar=None, schema=None, stop=())
        return scored, [value for _, value in options]

    def _chosen(
        self,
        lm: LM,
        response: Response,
        scored: Request,
        adapter: Adapter,
        values: list[Any],
        demos: Sequence[Any],
        inputs: dict[str, Any],
    ) -> Prediction:
        """The Prediction for the chosen value: its reply text parsed as any reply is, so types come out the same."""
        assert self.choice is not None and response.logprobs is not None and scored.choices is not None
        index = self.choice.pick(values, response.logprobs)
        completion = observed_parse(adapter, self.signature, scored.choices[index])
        return self._finish(lm, [response], demos, inputs, [completion], [])

    def label_scores(self, **kwargs: Any) -> tuple[list[Any], list[float]] | None:
        """The allowed values and their log-probabilities for these inputs, or None if they cannot be scored.

        What calibration measures the model's prior with (the call goes through the LM's cache).
        """
        lm, adapter, _, request = self._prepare(kwargs)
        choice = self._choice_request(lm, adapter, dataclasses.replace(request, temperature=0.0, n=1))
        if choice is None:
            return None
        scored, values = choice
        response = lm(scored)
        assert response.logprobs is not None
        return values, list(response.logprobs)

    def _retried(
        self, adapter: Adapter, request: Request, text: str, error: ParseError
    ) -> Generator[Request, str, dict[str, Any]]:
        """After ``text`` failed to parse: yield a retry request and be sent its answer, up to the retries allowed.

        One routine for ``forward`` and ``aforward``: they differ only in how they send the retry.
        The first parse happens before, in the caller: most answers parse, and need no generator.
        """
        retries = current().max_parse_retries
        while retries > 0:
            retries -= 1
            request = dataclasses.replace(adapter.format_retry(request, text, error), n=1)
            text = yield request
            try:
                return observed_parse(adapter, self.signature, text)
            except ParseError as again:
                error = again
        raise error

    def _finish(
        self,
        lm: LM,
        spent: list[Response],
        demos: Sequence[Any],
        inputs: dict[str, Any],
        completions: list[dict[str, Any]],
        errors: list[ParseError],
    ) -> Prediction:
        """Record the call: annotate its history entry, append the trace step, return the Prediction.

        The Prediction carries the usage of the LM calls made (``spent``: the call and its parse
        retries): a Predict makes no other calls, so it needs no usage tracker of its own
        (``Module.__call__`` skips making one, see ``_stamps_usage``).
        """
        if not completions:
            raise errors[0]
        usage = _usage_of(spent)
        prediction = Prediction.from_completions(completions, usage)
        prediction.__dict__["_usage_by_model"] = UsageView({lm.model: usage})
        response = spent[0]
        entry = response.history
        if entry is not None:  # after a parse retry the fields are the retry's; the retry has its own entry
            entry.signature, entry.demos, entry.inputs, entry.outputs = (
                self.signature.signature,
                list(demos),
                dict(inputs),
                completions,
            )
        trace = current().trace
        if trace is not None:  # copies of list/dict inputs: a program may grow them after this step
            trace.append(TraceStep(self, _snapshot(inputs), prediction))
        return prediction

    def _streamed(self, lm: LM, adapter: Adapter, request: Request, sink: Callable[[Any], None]) -> Response:
        """The LM call when ``promptless.stream`` listens: pieces go to the sink per field."""
        tracker = adapter.field_tracker(self.signature)
        pieces = lm.stream(request)
        while True:
            try:
                piece = next(pieces)
            except StopIteration as done:
                response = done.value
                break
            for kind, field, payload in tracker.feed(piece):
                sink((kind, self, field, payload))
        for kind, field, payload in tracker.finish():
            sink((kind, self, field, payload))
        return response

    def _prepare(self, kwargs: dict[str, Any]) -> tuple[LM, Adapter, dict[str, Any], Request]:
        """Call arguments (inputs plus optional ``config=``, ``demos=``, ``lm=``) to the request to send."""
        config = {**self.config, **_checked_config(kwargs.pop("config"))} if "config" in kwargs else self.config
        demos = kwargs.pop("demos", self.demos)
        lm = resolve_lm(kwargs.pop("lm", None) or self.lm)
        inputs = self._checked_inputs(kwargs)
        adapter = self.adapter or current().adapter or default_adapter_for(lm)
        sampling = {"temperature": lm.temperature, "max_tokens": lm.max_tokens, **config}
        if "stop" in sampling:
            stop = sampling["stop"]
            sampling["stop"] = (stop,) if isinstance(stop, str) else tuple(stop)  # "END" is one stop string
        return lm, adapter, inputs, observed_format(adapter, self.signature, demos, inputs, **sampling)

    def _checked_inputs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        expected = self.signature.input_fields
        if kwargs.keys() == expected.keys():  # the usual call: every input given, nothing else
            return {n: kwargs[n] for n in expected}
        history = self.signature.history_field  # optional: no earlier turns is a conversation's first, as in DSPy
        missing = [n for n, f in expected.items() if n not in kwargs and not is_optional(f.annotation) and n != history]
        extra = [n for n in kwargs if n not in expected]
        if missing or extra:
            problems = []
            if missing:
                problems.append(f"missing input field(s) {missing}")
            if extra:
                problems.append(f"unexpected field(s) {extra}")
            raise TypeError(
                f"{self.signature.signature!r}: {' and '.join(problems)}; received {sorted(kwargs)}, "
                f"expected {list(expected)}"
            )
        return {n: kwargs.get(n) for n in expected if n in kwargs or is_optional(expected[n].annotation)}

    def inspect_prompt(self, **kwargs: Any) -> str:
        """The exact prompt this predictor would send for these arguments, without calling the LM."""
        return self._prepare(kwargs)[3].text

    # -- state -------------------------------------------------------------------------------
    saved_lm: dict[str, Any] | None = None  # the LM a loaded artifact says it was saved with: a description only
    weights: WeightsRecord | None = None  # fine-tuned weights (BootstrapFinetune): a LoRA file run by self.lm

    def predictor_state(self, artifact_dir: str | Path | None = None) -> dict[str, Any]:
        """This predictor's learned state, as one entry of a program artifact (its LM described, never a secret)."""
        return {
            "signature": self.signature.to_dict(),
            "demos": [to_jsonable(dict(demo.items()), field="demo") for demo in self.demos],
            "lm": self.lm.settings() if self.lm is not None else self.saved_lm,
            "config": to_jsonable(self.config, field="config"),
            **({"weights": self.weights.to_state(artifact_dir or Path.cwd())} if self.weights is not None else {}),
            **({"choice": self.choice.to_state()} if self.choice is not None else {}),
        }

    def load_predictor_state(
        self, state: Mapping[str, Any], *, name: str = "self", artifact_dir: str | Path | None = None
    ) -> Predict:
        """Load signature, demos and sampling settings; the saved LM is kept as ``saved_lm``, a description.

        A file never decides where requests and credentials go: no LM is built from it (its
        ``api_base`` included), so the LM given to this predictor, configured with
        ``pl.context``/``configure``, or else the embedded default runs the program. Sampling
        settings a file asks for are capped (``FILE_LIMITS``, with a warning); set
        ``predictor.config`` in code after loading to ask for more.
        Fine-tuned ``weights`` (a LoRA file beside the artifact) are checked before use: the file's
        SHA-256, and that the LM in force runs the base model they were trained on; the predictor
        then runs that embedded model with the adapter (a local file, never a request elsewhere).
        """
        if not isinstance(state, Mapping) or not isinstance(state.get("signature"), Mapping):
            raise ArtifactError(f"predictor {name!r}: no signature in the saved state")
        saved_fields = state["signature"].get("fields", [])
        saved_names = [f.get("name") for f in saved_fields if isinstance(f, Mapping)]
        mine = list(self.signature.fields)
        if saved_names != mine:
            raise ArtifactError(f"predictor {name!r}: saved fields {saved_names} differ from the program's {mine}")
        signature = self.signature.with_instructions(str(state["signature"].get("instructions", "")))
        for saved in saved_fields:
            signature = signature.with_updated_fields(
                saved["name"], desc=saved.get("desc") or "", prefix=saved.get("prefix")
            )
        demos = state.get("demos", [])
        if not isinstance(demos, list) or not all(isinstance(d, Mapping) for d in demos):
            raise ArtifactError(f"predictor {name!r}: 'demos' must be a list of objects")
        config = state.get("config") or {}
        if not isinstance(config, Mapping):
            raise ArtifactError(f"predictor {name!r}: 'config' must be an object")
        try:
            config = _checked_config(dict(config))
        except TypeError as error:
            raise ArtifactError(f"predictor {name!r}: {error}") from None
        saved_lm = state.get("lm")
        if saved_lm is not None and not isinstance(saved_lm, Mapping):
            raise ArtifactError(f"predictor {name!r}: 'lm' must be an object describing the LM, or null")
        history = signature.history_field
        if history is not None:  # saved as {"messages": [...]}: read back as a History
            try:
                demos = [{**d, history: History.coerce(d[history])} if d.get(history) is not None else d for d in demos]
            except TypeError as error:
                raise ArtifactError(f"predictor {name!r}: a demo's {history!r}: {error}") from None
        choice = LabelChoice.from_state(state["choice"], name=name) if state.get("choice") is not None else None
        self.signature = signature
        self.demos = [Example(dict(d)) for d in demos]
        self.choice = choice
        self.config = _file_config(config, name)
        weights = None
        if state.get("weights") is not None:
            running = self.lm or current().lm  # the user's LM, if any, must be the adapter's base model
            weights = WeightsRecord.from_state(state["weights"], artifact_dir or Path.cwd(), name=name, lm=running)
        self.saved_lm = _description(saved_lm) if saved_lm else None
        if weights is not None:
            self.weights = weights
            self.lm = finetuned_lm(weights, like=self.lm or current().lm)
        return self


def _usage_of(responses: list[Response]) -> Usage:
    """What these LM calls spent, as a usage tracker counts it: a cache hit is free and no call."""
    prompt = completion = cached = calls = 0
    for response in responses:
        if not response.cached:
            used = response.usage
            prompt, completion = prompt + used.prompt_tokens, completion + used.completion_tokens
            cached, calls = cached + used.cached_tokens, calls + 1
    return Usage(prompt, completion, cached, calls)


def _positional(predictor: Predict, args: tuple[Any, ...]) -> TypeError:
    names = list(predictor.signature.input_fields)
    example = ", ".join(f"{n}=..." for n in names)
    return TypeError(
        f"{type(predictor).__name__}({predictor.signature.signature!r}) takes its inputs by name, got "
        f"{len(args)} positional argument(s) ({args[0]!r:.40}...); call it as predictor({example})"
    )


def _drive(steps: Generator[Request, str, dict[str, Any]], send: Callable[[Request], str]) -> dict[str, Any]:
    """Run a ``_parsed`` routine to its end, answering each retry request with ``send``."""
    try:
        retry = next(steps)
        while True:
            retry = steps.send(send(retry))
    except StopIteration as done:
        return done.value


def _checked_config(config: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(config) - SAMPLING_KEYS)
    if unknown:
        raise TypeError(f"unknown Predict config {unknown}; known: {sorted(SAMPLING_KEYS)}")
    return dict(config)


def _description(saved_lm: Mapping[str, Any]) -> dict[str, Any]:
    """The saved LM as a description: known keys only, an endpoint's credentials masked."""
    out = {k: saved_lm[k] for k in SAVED_LM_KEYS if k in saved_lm}
    if isinstance(out.get("api_base"), str):
        out["api_base"] = redact_url(out["api_base"])
    return out


def _file_config(config: dict[str, Any], name: str) -> dict[str, Any]:
    """Sampling settings read from a file, checked and capped: a file cannot ask for 50 completions of 1M tokens."""
    checked = dict(config)
    for key in ("n", "max_tokens", "seed", "rollout_id"):
        value = checked.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise ArtifactError(f"predictor {name!r}: config {key}={value!r} is not a whole number")
    for key in ("n", "max_tokens"):
        if checked.get(key) is not None and checked[key] < 1:
            raise ArtifactError(f"predictor {name!r}: config {key}={checked[key]!r} must be at least 1")
    temperature = checked.get("temperature")
    number = isinstance(temperature, (int, float)) and not isinstance(temperature, bool)
    if temperature is not None and not (number and 0 <= temperature <= 2):
        raise ArtifactError(f"predictor {name!r}: config temperature={temperature!r} is not a number from 0 to 2")
    stop = checked.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise ArtifactError(f"predictor {name!r}: config stop={stop!r} is not a string or a list of strings")
    for key, limit in FILE_LIMITS.items():
        if checked.get(key) is not None and checked[key] > limit:
            log.warning(
                "predictor %r: the file asks for %s=%d; capped at %d (set predictor.config[%r] in code to allow more)",
                name, key, checked[key], limit, key,
            )  # fmt: skip
            checked[key] = limit
    return checked


def _snapshot(inputs: dict[str, Any]) -> dict[str, Any]:
    return {k: v.copy() if isinstance(v, (list, dict, History)) else v for k, v in inputs.items()}
