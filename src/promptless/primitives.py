"""Example and Prediction: dict-like records of field values."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from promptless.types import Usage


class Example:
    """A record of named values; ``with_inputs(...)`` marks which are inputs, the rest are labels."""

    def __init__(self, base: Example | dict[str, Any] | None = None, **values: Any) -> None:
        # Private fields bypass the field-setting __setattr__ (an Example is built on every call).
        inner = self.__dict__
        inner["_input_keys"] = None
        inner["_version"] = 0  # bumped on every change, so rendered demos can be memoised safely
        if isinstance(base, Example):
            store = dict(base._store)
            inner["_input_keys"] = base._input_keys
        elif isinstance(base, dict):
            store = dict(base)
        elif base is None:
            store = {}
        else:
            raise TypeError(f"Example() takes a dict or an Example, got {type(base).__name__}")
        store.update(values)
        inner["_store"] = store

    # -- dict behaviour --------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._store[name]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no field {name!r}; it has {list(self._store)}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            self._store[name] = value
            self._version += 1

    def __getitem__(self, key: str) -> Any:
        return self._store[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._store[key] = value
        self._version += 1

    def __delitem__(self, key: str) -> None:
        del self._store[key]
        self._version += 1

    def __contains__(self, key: object) -> bool:
        return key in self._store

    def __iter__(self) -> Iterator[str]:
        return iter(self._store)

    def __len__(self) -> int:
        return len(self._store)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Example) and self._store == other._store

    def __hash__(self) -> int:
        return hash(tuple(sorted((k, repr(v)) for k, v in self._store.items())))

    def __repr__(self) -> str:
        inputs = "" if self._input_keys is None else f", input_keys={sorted(self._input_keys)}"
        return f"{type(self).__name__}({self._store!r}{inputs})"

    def keys(self) -> list[str]:
        return list(self._store)

    def values(self) -> list[Any]:
        return list(self._store.values())

    def items(self) -> list[tuple[str, Any]]:
        return list(self._store.items())

    def get(self, key: str, default: Any = None) -> Any:
        return self._store.get(key, default)

    def copy(self, **changes: Any) -> Example:
        clone = type(self)(self)
        clone._store.update(changes)
        return clone

    def without(self, *keys: str) -> Example:
        clone = self.copy()
        for key in keys:
            clone._store.pop(key, None)
        return clone

    def toDict(self) -> dict[str, Any]:  # noqa: N802  (DSPy's name)
        return dict(self._store)

    to_dict = toDict

    # -- inputs and labels -------------------------------------------------------------
    def with_inputs(self, *keys: str) -> Example:
        missing = [k for k in keys if k not in self._store]
        if missing:
            raise KeyError(f"with_inputs{keys}: no field(s) {missing} in this example; it has {list(self._store)}")
        clone = self.copy()
        clone._input_keys = frozenset(keys)
        return clone

    @property
    def input_keys(self) -> frozenset[str] | None:
        return self._input_keys

    def inputs(self) -> Example:
        if self._input_keys is None:
            raise ValueError("inputs() needs the input fields first: call example.with_inputs('question', ...)")
        clone = type(self)({k: v for k, v in self._store.items() if k in self._input_keys})
        clone._input_keys = self._input_keys
        return clone

    def labels(self) -> Example:
        keys = self._input_keys or frozenset()
        return type(self)({k: v for k, v in self._store.items() if k not in keys})


class Prediction(Example):
    """The output of a module: its fields, the other ``completions`` when n > 1, and ``usage``."""

    def __init__(self, base: Example | dict[str, Any] | None = None, **values: Any) -> None:
        super().__init__(base, **values)
        self.__dict__["_completions"] = [dict(self._store)]
        self.__dict__["_usage"] = Usage()
        self.__dict__["_usage_by_model"] = None  # the call's UsageTracker (anything with ``snapshot()``), once run

    @classmethod
    def from_completions(cls, completions: list[dict[str, Any]], usage: Usage | None = None) -> Prediction:
        if not completions:
            raise ValueError("a Prediction needs at least one completion")
        if cls.__init__ is not Prediction.__init__:  # a subclass sets more in its __init__
            pred = cls(completions[0])
            pred.__dict__.update(_completions=[dict(c) for c in completions], _usage=usage or Usage())
            return pred
        pred = cls.__new__(cls)  # what __init__ would set, without its copies: Predict builds one per call
        pred.__dict__.update(
            _input_keys=None,
            _version=0,
            _store=dict(completions[0]),
            _completions=[dict(c) for c in completions],
            _usage=usage or Usage(),
            _usage_by_model=None,
        )
        return pred

    def __getstate__(self) -> dict[str, Any]:
        """For copy and pickle: the call's usage tracker (it holds a lock) becomes a fixed per-model view."""
        state = dict(self.__dict__)
        tracker = state.get("_usage_by_model")
        if tracker is not None and not isinstance(tracker, UsageView):
            state["_usage_by_model"] = UsageView(tracker.snapshot())
        return state

    @property
    def completions(self) -> Completions:
        return Completions(self._completions)

    @property
    def usage(self) -> Usage:
        return self._usage

    def get_lm_usage(self) -> dict[str, dict[str, Any]] | None:
        """DSPy's shape: per model, ``{"prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details"}``.

        ``{"openai/x": {"prompt_tokens": 40, "completion_tokens": 7, "total_tokens": 47,
        "prompt_tokens_details": {"cached_tokens": 0}}}``; a model answered only from the cache
        spent nothing and is left out, as in DSPy. None for a Prediction no module returned.
        ``usage`` is the same, summed over models, as one ``Usage``.
        """
        tracker = self._usage_by_model
        if tracker is None:
            return None
        return {
            model: {
                "prompt_tokens": used.prompt_tokens,
                "completion_tokens": used.completion_tokens,
                "total_tokens": used.prompt_tokens + used.completion_tokens,
                "prompt_tokens_details": {"cached_tokens": used.cached_tokens},
            }
            for model, used in tracker.snapshot().items()
            if used.calls
        }


class UsageView:
    """Usage per model, fixed: what a copied Prediction keeps of its call's tracker (and what a Predict stamps)."""

    def __init__(self, by_model: dict[str, Usage]) -> None:
        self.by_model = by_model

    def snapshot(self) -> dict[str, Usage]:
        return dict(self.by_model)


class Completions:
    """All sampled completions of one call: ``pred.completions.answer`` is a list, ``[i]`` a Prediction."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self._items = items

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> Prediction:
        return Prediction(self._items[index])

    def __iter__(self) -> Iterator[Prediction]:
        return (Prediction(item) for item in self._items)

    def __getattr__(self, name: str) -> list[Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        if self._items and name not in self._items[0]:
            raise AttributeError(f"completions have no field {name!r}; they have {list(self._items[0])}")
        return [item[name] for item in self._items]
