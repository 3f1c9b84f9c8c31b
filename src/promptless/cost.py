"""What LM calls cost, in US dollars, from a price table the user sets: never a guessed number.

``configure(prices={"openai/gpt-4o-mini": Price(0.15, 0.60, cached_input_per_million=0.075)})``.
A key is a model name as given to ``LM(...)`` (``"openai/gpt-4o-mini"``), the same
name without its provider prefix (``"gpt-4o-mini"``), or a prefix ending in ``*``
(``"openai/gpt-4o*"``; the longest matching prefix wins). A value is a ``Price`` or a
tuple ``(input, output[, cached_input])`` in dollars per million tokens.

Built in: the embedded models (``local/...``) cost 0; a table entry overrides that.
A model with no price has cost ``None`` (unknown). A call answered from promptless'
own cache costs 0 whatever the model: nothing was sent.

Per call: ``call_cost(model, response)``. Per run: ``track_usage()``'s ``.cost`` (None
when any call went to an unpriced model; ``cost_summary`` gives the known part and
the unpriced calls). Per compile: ``CompileReport.cost``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from promptless.settings import current

if TYPE_CHECKING:
    from promptless.types import Response, Usage

PER_MILLION = 1_000_000


@dataclass(frozen=True)
class Price:
    """Dollars per million tokens; cached input tokens cost ``input_per_million`` unless priced apart."""

    input_per_million: float
    output_per_million: float
    cached_input_per_million: float | None = None

    def __post_init__(self) -> None:
        for name in ("input_per_million", "output_per_million", "cached_input_per_million"):
            value = getattr(self, name)
            if value is None and name == "cached_input_per_million":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"Price({name}=) must be a number >= 0, got {value!r}")

    def cost(self, usage: Usage) -> float:
        """The cost of ``usage``; its ``cached_tokens`` are part of its ``prompt_tokens`` (as OpenAI reports)."""
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        cached_rate = self.input_per_million if self.cached_input_per_million is None else self.cached_input_per_million
        return (
            (usage.prompt_tokens - cached) * self.input_per_million
            + cached * cached_rate
            + usage.completion_tokens * self.output_per_million
        ) / PER_MILLION


FREE = Price(0.0, 0.0)
BUILT_IN: Mapping[str, Price] = MappingProxyType({"local/*": FREE})  # the embedded models run here: no fee


def as_price(key: str, value: Any) -> Price:
    """A table entry as a Price, or an error naming the entry and showing what it holds."""
    if isinstance(value, Price):
        return value
    if isinstance(value, (tuple, list)) and len(value) in (2, 3):
        try:
            return Price(*value)
        except ValueError as error:
            raise ValueError(f"prices[{key!r}]: {error}") from None
    raise TypeError(
        f"prices[{key!r}] must be a Price or a tuple (input, output[, cached_input]) in $ per million tokens, "
        f"got {value!r}"
    )


def price_for(model: str, prices: Mapping[str, Any] | None = None) -> Price | None:
    """The price of ``model``: from ``prices`` (default: the ``prices`` setting), then the built-in table."""
    if prices is None:
        prices = current().prices
    for table in (prices or {}, BUILT_IN):
        found = _lookup(model, table)
        if found is not None:
            return as_price(found[0], found[1])
    return None


def _lookup(model: str, table: Mapping[str, Any]) -> tuple[str, Any] | None:
    bare = model.split("/", 1)[1] if "/" in model else None
    for name in (model, bare):
        if name is not None and name in table:
            return name, table[name]
    names = (model,) if bare is None else (model, bare)
    matches = [key for key in table if key.endswith("*") and any(name.startswith(key[:-1]) for name in names)]
    if not matches:
        return None
    best = max(matches, key=len)  # the most specific prefix
    return best, table[best]


def usage_cost(model: str, usage: Usage, prices: Mapping[str, Any] | None = None) -> float | None:
    """The cost of ``usage`` on ``model``; None when the model has no price."""
    price = price_for(model, prices)
    return None if price is None else price.cost(usage)


def call_cost(model: str, response: Response, prices: Mapping[str, Any] | None = None) -> float | None:
    """One call's cost: 0 for a hit in promptless' cache, None for an unpriced model."""
    if response.cached:
        return 0.0
    return usage_cost(model, response.usage, prices)


@dataclass(frozen=True)
class CostSummary:
    """A run's cost: the priced part, and the calls whose model has no price (then the total is unknown)."""

    known: float = 0.0
    unpriced_calls: int = 0
    unpriced_models: tuple[str, ...] = field(default=())

    @property
    def total(self) -> float | None:
        return self.known if self.unpriced_calls == 0 else None


def cost_summary(by_model: Mapping[str, Usage], prices: Mapping[str, Any] | None = None) -> CostSummary:
    """Price usage per model (cost is linear in tokens, so per-model sums price exactly).

    Cache hits are not in a tracker's usage (they cost nothing), so an unpriced
    model that was only ever answered from the cache does not make the total unknown.
    """
    known, unpriced, models = 0.0, 0, []
    for model, usage in by_model.items():
        if usage.calls == 0 and usage.total_tokens == 0:
            continue
        cost = usage_cost(model, usage, prices)
        if cost is None:
            unpriced += usage.calls
            models.append(model)
        else:
            known += cost
    return CostSummary(known, unpriced, tuple(sorted(models)))
