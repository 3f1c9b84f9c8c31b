"""Module: a plain class whose parameters are the predictors reachable from its attributes.

Like ``torch.nn.Module``: parameters register themselves by being attributes
(also inside lists, tuples and dicts), are named by path (``"hop[0].generate"``),
and their state saves to and loads from a JSON artifact. Loading never runs code.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from promptless.artifact_file import check_version, loads_bounded, read_regular_text
from promptless.atomic import write_text_atomic
from promptless.callbacks import callback_scope, module_inputs, with_callbacks
from promptless.distributed import resolve_executor
from promptless.dspy_format import from_dspy_state, is_dspy_state
from promptless.errors import ArtifactError, RunGuard
from promptless.executor import Outcome
from promptless.primitives import Example, Prediction
from promptless.settings import context, current, override, restore, run_in_context
from promptless.trace import UsageTracker
from promptless.types import ARTIFACT_FORMAT, ARTIFACT_VERSION

__all__ = ["ARTIFACT_FORMAT", "ARTIFACT_VERSION", "ArtifactError", "IncompatibleNames", "Module", "Parameter"]

log = logging.getLogger("promptless.module")


class Parameter:
    """Marks what a Module learns: its state saves and loads (``Predict`` is one, as torch's ``nn.Parameter``).

    It sits below ``Module`` so the container finds its parameters without importing what it contains.
    """

    def predictor_state(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_predictor_state(self, state: Mapping[str, Any], *, name: str = "self") -> Any:
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError


class IncompatibleNames(NamedTuple):
    """What ``load_state(strict=False)`` could not match: as torch's ``load_state_dict`` returns its keys."""

    missing: list[str]  # predictors of the program that the state has no entry for
    unexpected: list[str]  # entries of the state that name no predictor of the program


class Module:
    """Subclass it, create sub-modules in ``__init__``, compose them in ``forward``."""

    def __init__(self, callbacks: Sequence[Any] | None = None) -> None:
        """``Module(callbacks=[...])`` as in DSPy: callbacks told of this module's own calls (optional to call)."""
        self.callbacks = list(callbacks or [])

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    _stamps_usage = False  # True: forward() makes only its own LM calls and stamps their usage itself (Predict)

    @with_callbacks("module", module_inputs)
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._stamps_usage:  # no tracker to make and install: the module calls no other module
            return self.forward(*args, **kwargs)
        tracker = UsageTracker(parent=current().usage_tracker)  # this call's usage, stamped on its Prediction
        token = override("usage_tracker", tracker)
        try:
            result = self.forward(*args, **kwargs)
        finally:
            restore(token)
        if isinstance(result, Prediction):
            stamp = result.__dict__
            stamp["_usage"] = tracker.total
            stamp["_usage_by_model"] = tracker  # read per model by get_lm_usage(), only if asked
        return result

    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        """Await ``aforward`` when the module defines one; else run ``forward`` in a worker thread.

        Either way the event loop stays free; settings follow into the thread.
        """
        if type(self).aforward is Module.aforward:
            import asyncio  # lazy: asyncio costs ~35 ms of import time; only async callers pay it

            return await asyncio.to_thread(run_in_context(self.__call__), *args, **kwargs)
        tracker = UsageTracker(parent=current().usage_tracker)
        with callback_scope("module", self, lambda: module_inputs(self, args, kwargs)) as scope:
            with context(usage_tracker=tracker):
                result = await self.aforward(*args, **kwargs)
            if isinstance(result, Prediction):
                result._usage = tracker.total
                result.__dict__["_usage_by_model"] = tracker
            scope.outputs = result
        return result

    async def aforward(self, *args: Any, **kwargs: Any) -> Any:
        """Override for a natively async module (compose sub-modules with ``await m.acall(...)``)."""
        raise NotImplementedError(f"{type(self).__name__} has no aforward(); acall() runs forward() in a thread")

    # -- parameters ---------------------------------------------------------------------------
    def named_sub_modules(self, type_: type | None = None, skip_compiled: bool = False) -> Iterator[tuple[str, Any]]:
        """Every module reachable from this one's attributes, each once, named as DSPy names them.

        ``"self"``, ``"self.gen"``, ``"self.hops[0]"``, ``"self.table[key]"``, breadth first;
        ``type_`` keeps modules of that class only, ``skip_compiled`` does not enter compiled sub-programs.
        """
        type_ = type_ or Module
        queue: deque[tuple[str, Any]] = deque([("self", self)])
        seen: set[int] = {id(self)}

        def add(path: str, value: Any) -> None:
            if id(value) not in seen:
                seen.add(id(value))
                queue.append((path, value))

        while queue:  # the same walk as DSPy's, so the names and their order are DSPy's
            path, value = queue.popleft()
            if isinstance(value, type_):
                yield path, value
            if isinstance(value, Module):
                if skip_compiled and getattr(value, "_compiled", False):
                    continue
                for name, attr in vars(value).items():
                    if not name.startswith("_"):
                        add(f"{path}.{name}", attr)
            elif isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    add(f"{path}[{i}]", item)
            elif isinstance(value, dict):
                for key, item in value.items():
                    add(f"{path}[{key}]", item)

    def _walk(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """Every module reachable from this one's attributes, depth first, each once, by parameter path."""
        seen: set[int] = set()

        def walk(value: Any, path: str) -> Iterator[tuple[str, Module]]:
            if isinstance(value, Module):
                if id(value) in seen:
                    return
                seen.add(id(value))
                yield path, value
                for name, attr in vars(value).items():
                    if not name.startswith("_"):
                        yield from walk(attr, f"{path}.{name}" if path else name)
            elif isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    yield from walk(item, f"{path}[{i}]")
            elif isinstance(value, dict):
                for key, item in value.items():
                    yield from walk(item, f"{path}[{key!r}]")

        yield from walk(self, prefix)

    def named_predictors(self) -> list[tuple[str, Any]]:
        """The parameters (Predict objects) reachable from this module, by path."""
        return [(name or "self", m) for name, m in self._walk() if isinstance(m, Parameter)]

    def predictors(self) -> list[Any]:
        return [p for _, p in self.named_predictors()]

    named_parameters = named_predictors
    parameters = predictors

    def set_lm(self, lm: Any) -> None:
        for predictor in self.predictors():
            predictor.lm = lm

    # -- copies -------------------------------------------------------------------------------
    def deepcopy(self) -> Module:
        """An independent copy; LMs are devices and callbacks observers: both stay shared.

        An attribute that cannot be copied (a lock, a client, a connection) is shared by the copy, as in DSPy;
        sub-modules are still copied, also inside lists, tuples and dicts.
        """
        observers = [module for _, module in self._walk()]
        shared = {id(cb): cb for module in observers for cb in getattr(module, "callbacks", None) or ()}
        try:
            return copy.deepcopy(self, dict(shared))
        except Exception as error:  # something inside cannot be copied: copy what can be, share the rest
            log.debug("%s.deepcopy(): %r; sharing what cannot be copied", type(self).__name__, error)
            return _copy_sharing(self, dict(shared))

    def reset_copy(self) -> Module:
        """A copy with every predictor's learned state (demos) cleared."""
        clone = self.deepcopy()
        for predictor in clone.predictors():
            predictor.reset()
        return clone

    # -- state --------------------------------------------------------------------------------
    def dump_state(self, artifact_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """The program's state; weights files are named relative to ``artifact_dir`` (default: the cwd)."""
        return {
            "format": ARTIFACT_FORMAT,
            "version": ARTIFACT_VERSION,
            "program": type(self).__name__,
            "predictors": {name: p.predictor_state(artifact_dir) for name, p in self.named_predictors()},
        }

    state_dict = dump_state

    def load_state(
        self, state: dict[str, Any], *, strict: bool = True, artifact_dir: str | os.PathLike[str] | None = None
    ) -> IncompatibleNames:
        """Load saved state into this program's predictors; returns what did not match (nothing when strict).

        ``strict`` (the default) refuses a state whose predictors differ from the program's, naming all of them.
        A state DSPy 3.x saved (``dspy_format``) is read too, for a program of the same shape.
        """
        if is_dspy_state(state):
            fields_of = {name: list(p.signature.fields.values()) for name, p in self.named_predictors()}
            state = from_dspy_state(state, fields_of, type(self).__name__)
        if not isinstance(state, dict) or state.get("format") != ARTIFACT_FORMAT:
            raise ArtifactError("not a promptless program (its 'format' is not 'promptless.program')")
        check_version(state)  # an integer from 1 to ARTIFACT_VERSION, nothing else
        saved = state.get("predictors")
        if not isinstance(saved, dict):
            raise ArtifactError("artifact has no 'predictors' object")
        mine = dict(self.named_predictors())
        missing, unexpected = sorted(set(mine) - set(saved)), sorted(set(saved) - set(mine))
        if strict and (missing or unexpected):
            raise ArtifactError(
                f"artifact of program {state.get('program')!r} does not fit {type(self).__name__}: "
                f"predictors missing from the file {missing}, in the file but not in the program {unexpected}"
            )
        for name, predictor in mine.items():
            if name in saved:
                predictor.load_predictor_state(saved[name], name=name, artifact_dir=artifact_dir)
        return IncompatibleNames(missing, unexpected)

    load_state_dict = load_state

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the program's state as JSON, atomically: a crash never leaves half a file."""
        state = self.dump_state(artifact_dir=Path(path).parent)
        return write_text_atomic(path, json.dumps(state, indent=2, ensure_ascii=False) + "\n")

    def load(self, path: str | os.PathLike[str], *, strict: bool = True) -> Module:
        """Load state saved by ``save`` into this (freshly constructed) program."""
        path = Path(path)
        text = read_regular_text(path)  # a FIFO, device or directory is refused at once, never read
        try:
            state = loads_bounded(text, path)
        except json.JSONDecodeError as error:
            raise ArtifactError(f"{path}: not valid JSON ({error.msg} at line {error.lineno}); truncated?") from None
        try:
            incompatible = self.load_state(state, strict=strict, artifact_dir=path.parent)
        except ArtifactError as error:
            raise ArtifactError(f"{path}: {error}") from None
        if incompatible.missing or incompatible.unexpected:
            log.warning(
                "%s: loaded without predictors %s (not in the file); ignored %s (not in the program)",
                path,
                incompatible.missing,
                incompatible.unexpected,
            )
        return self

    # -- many inputs ----------------------------------------------------------------------------
    def batch(
        self,
        examples: Sequence[Example | dict[str, Any]],
        num_threads: int | None = None,
        *,
        return_failed_examples: bool = False,
        executor: Any = None,
    ) -> Any:
        """Run on many inputs in threads (settings follow), results in input order.

        A failing input yields None in its place; with ``return_failed_examples``
        the call returns ``(results, failed_examples, exceptions)``. An error no
        further input can avoid (``promptless.errors``: fatal, or outages in a row)
        stops the batch and is raised. ``executor`` (``"ray"``, a ``RayExecutor``; default
        the ``executor`` setting, else threads) runs the inputs elsewhere, with the same results.
        """
        items = list(examples)
        guard = RunGuard()
        outcomes: list[tuple[Any, BaseException | None]] = [(None, None)] * len(items)

        def record(index: int, outcome: Outcome) -> None:
            if outcome.error is not None:
                outcomes[index] = (None, outcome.error)
                guard.failed(outcome.error)  # raises what no further input can avoid: the batch stops
                return
            guard.succeeded()
            outcomes[index] = (outcome.prediction, None)

        resolve_executor(executor).map_program(
            self, items, num_threads=num_threads or current().num_threads, on_outcome=record
        )
        results = [result for result, _ in outcomes]
        if not return_failed_examples:
            return results
        failed = [ex for ex, (_, err) in zip(items, outcomes, strict=True) if err is not None]
        errors = [err for _, err in outcomes if err is not None]
        return results, failed, errors

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={p.signature.signature!r}" for name, p in self.named_predictors())
        return f"{type(self).__name__}({inner})"


def _copy_sharing(value: Any, memo: dict[int, Any]) -> Any:
    """A deep copy that shares what cannot be copied; modules and their containers are always copied."""
    if id(value) in memo:
        return memo[id(value)]
    if isinstance(value, Module) and not hasattr(type(value), "__deepcopy__"):
        clone = type(value).__new__(type(value))
        memo[id(value)] = clone
        clone.__dict__.update({name: _copy_sharing(attr, memo) for name, attr in vars(value).items()})
        return clone
    if isinstance(value, (list, tuple, dict)) and _holds_module(value):
        if isinstance(value, dict):
            return type(value)({key: _copy_sharing(item, memo) for key, item in value.items()})
        items = [_copy_sharing(item, memo) for item in value]
        return items if type(value) is list else type(value)(items)
    try:
        return copy.deepcopy(value, memo)
    except Exception:  # a lock, a client, a connection: the copy shares it
        memo[id(value)] = value
        return value


def _holds_module(value: list | tuple | dict) -> bool:
    items = value.values() if isinstance(value, dict) else value
    return any(isinstance(item, (Module, list, tuple, dict)) for item in items)
