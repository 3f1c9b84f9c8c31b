"""Predict: the one place an LM is called. Format, call, parse (with one retry), record the trace."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from promptless.adapters import Adapter, ParseError, default_adapter_for
from promptless.adapters.values import to_jsonable
from promptless.callbacks import observed_parse
from promptless.fieldtypes import is_optional
from promptless.inspection import note_call
from promptless.lm import LM, resolve_lm
from promptless.lm.base import Request, Response
from promptless.module import ArtifactError, Module
from promptless.primitives import Example, Prediction
from promptless.settings import current
from promptless.signature import Signature, ensure_signature
from promptless.trace import TraceStep

SAMPLING_KEYS = frozenset({"temperature", "max_tokens", "n", "stop", "seed", "rollout_id"})


class Predict(Module):
    """Ask the LM for a signature's outputs given its inputs.

    ``config`` holds sampling settings (``temperature``, ``max_tokens``, ``n``,
    ``seed``, ``rollout_id``); a call may override them with ``config={...}``.
    Learned state is ``demos`` (and the signature's instructions).
    """

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

    def reset(self) -> None:
        self.demos = []

    # -- calling -------------------------------------------------------------------------------
    def forward(self, **kwargs: Any) -> Prediction:
        demos = kwargs.get("demos", self.demos)
        lm, adapter, inputs, request = self._prepare(kwargs)
        sink = current().stream_sink
        if sink is not None and request.n == 1:
            from promptless.streaming import stream_call

            response = stream_call(self, lm, adapter, request, sink)
        else:
            response = lm(request)
        completions = self._parse_all(adapter, lm, request, response)
        prediction = Prediction.from_completions(completions)
        note_call(response, self.signature, demos, inputs, completions)
        trace = current().trace
        if trace is not None:  # copies of list/dict inputs: a program may grow them after this step
            trace.append(TraceStep(self, _snapshot(inputs), prediction))
        return prediction

    async def aforward(self, **kwargs: Any) -> Prediction:
        """``forward`` without blocking the event loop: the LM call (and any parse retry) is awaited."""
        demos = kwargs.get("demos", self.demos)
        lm, adapter, inputs, request = self._prepare(kwargs)
        response = await lm.acomplete(request)
        retries = current().max_parse_retries
        completions, errors = [], []
        for text in response.texts:
            attempt_request, attempt_text = request, text
            for remaining in range(retries, -1, -1):
                try:
                    completions.append(observed_parse(adapter, self.signature, attempt_text))
                    break
                except ParseError as error:
                    if remaining == 0:
                        errors.append(error)
                        break
                    attempt_request = dataclasses.replace(
                        adapter.format_retry(attempt_request, attempt_text, error), n=1
                    )
                    attempt_text = (await lm.acomplete(attempt_request)).text
        if not completions:
            raise errors[0]
        prediction = Prediction.from_completions(completions)
        note_call(response, self.signature, demos, inputs, completions)
        trace = current().trace
        if trace is not None:
            trace.append(TraceStep(self, _snapshot(inputs), prediction))
        return prediction

    def _prepare(self, kwargs: dict[str, Any]) -> tuple[LM, Adapter, dict[str, Any], Request]:
        """Call arguments (inputs plus optional ``config=``, ``demos=``, ``lm=``) to the request to send."""
        config = {**self.config, **_checked_config(kwargs.pop("config", {}))}
        demos = kwargs.pop("demos", self.demos)
        lm = resolve_lm(kwargs.pop("lm", None) or self.lm)
        inputs = self._checked_inputs(kwargs)
        adapter = self.adapter or current().adapter or default_adapter_for(lm)
        sampling = {"temperature": lm.temperature, "max_tokens": lm.max_tokens, **config}
        if "stop" in sampling:
            stop = sampling["stop"]
            sampling["stop"] = (stop,) if isinstance(stop, str) else tuple(stop)  # "END" is one stop string
        return lm, adapter, inputs, adapter.format(self.signature, demos, inputs, **sampling)

    def _checked_inputs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        expected = self.signature.input_fields
        missing = [n for n, f in expected.items() if n not in kwargs and not is_optional(f.annotation)]
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

    def _parse_all(self, adapter: Adapter, lm: LM, request: Request, response: Response) -> list[dict[str, Any]]:
        """Parse every completion; a failure gets the configured retries, then the first error is raised."""
        retries = current().max_parse_retries
        completions, errors = [], []
        for text in response.texts:
            try:
                completions.append(self._parse_with_retries(adapter, lm, request, text, retries))
            except ParseError as error:
                errors.append(error)
        if not completions:
            raise errors[0]
        return completions

    def _parse_with_retries(
        self, adapter: Adapter, lm: LM, request: Request, text: str, retries: int
    ) -> dict[str, Any]:
        try:
            return observed_parse(adapter, self.signature, text)
        except ParseError as error:
            if retries <= 0:
                raise
            retry = dataclasses.replace(adapter.format_retry(request, text, error), n=1)
            return self._parse_with_retries(adapter, lm, retry, lm(retry).text, retries - 1)

    def inspect_prompt(self, **kwargs: Any) -> str:
        """The exact prompt this predictor would send for these arguments, without calling the LM."""
        return self._prepare(kwargs)[3].text

    # -- state -------------------------------------------------------------------------------
    def predictor_state(self) -> dict[str, Any]:
        """This predictor's learned state, as one entry of a program artifact."""
        return {
            "signature": self.signature.to_dict(),
            "demos": [to_jsonable(dict(demo.items()), field="demo") for demo in self.demos],
            "lm": self.lm.settings() if self.lm is not None else None,
            "config": to_jsonable(self.config, field="config"),
        }

    def load_predictor_state(self, state: Mapping[str, Any], *, name: str = "self") -> Predict:
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
        self.signature = signature
        self.demos = [Example(dict(d)) for d in demos]
        self.config = _checked_config(dict(state.get("config") or {}))
        saved_lm = state.get("lm")
        if self.lm is None and isinstance(saved_lm, Mapping) and saved_lm.get("model"):
            self.lm = LM(
                **{k: v for k, v in saved_lm.items() if k in ("model", "temperature", "max_tokens", "api_base")}
            )
        return self


def _checked_config(config: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(config) - SAMPLING_KEYS)
    if unknown:
        raise TypeError(f"unknown Predict config {unknown}; known: {sorted(SAMPLING_KEYS)}")
    return dict(config)


def _snapshot(inputs: dict[str, Any]) -> dict[str, Any]:
    return {k: v.copy() if isinstance(v, (list, dict)) else v for k, v in inputs.items()}
