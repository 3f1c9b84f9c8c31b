"""Learn each label-choosing predictor's prior: how likely the model finds each label before reading the input.

The prior is the mean probability of each label over inputs without their labels (batch
calibration: the trainset's own inputs) or over content-free inputs ("N/A", "", "[MASK]",
as in "Calibrate Before Use"). It is measured with the program's final prompts (demos
included), so calibrate after the demos are chosen.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from promptless.adapters import default_adapter_for
from promptless.adapters.base import finite_values
from promptless.errors import cannot_recover
from promptless.executor import run_indexed
from promptless.module import Module
from promptless.modules.label_choice import ChoiceMode, LabelChoice
from promptless.primitives import Example
from promptless.settings import context, current

CalibrationSource = Literal["inputs", "content-free"]
CONTENT_FREE = ("N/A", "", "[MASK]")


def choosable(program: Module) -> list[tuple[str, Any]]:
    """(name, predictor) for predictors whose one output has a finite set of values and whose LM scores choices."""
    out = []
    for name, predictor in program.named_predictors():
        lm = predictor.lm or current().lm
        adapter = predictor.adapter or current().adapter
        if lm is None or not lm.scores_choices:
            continue
        adapter = adapter or default_adapter_for(lm)
        if adapter.choice_texts(predictor.signature) is not None:
            out.append((name, predictor))
    return out


def scored_decodings(
    program: Module, decodings: tuple[str, ...], max_labels: int | None
) -> tuple[tuple[str, ...], str | None]:
    """The decodings a search tries on ``program``, and a note when the scored ones were left out.

    Scoring a label costs about one forward pass per token of its reply, so a long label set
    costs far more than greedy decoding (77 labels: 8.8x a greedy call on Gemma-3-270M, 6
    labels 0.5-0.8x; bench/label_choice_cost.py): past ``max_labels`` the search decodes greedily.
    """
    chosen = choosable(program)
    if not chosen:
        return ("greedy",), None
    if max_labels is not None:
        sizes = {name: len(finite_values(predictor.signature) or ()) for name, predictor in chosen}
        large = {name: n for name, n in sizes.items() if n > max_labels}
        if large and any(d != "greedy" for d in decodings):
            shown = ", ".join(f"{name} has {n}" for name, n in large.items())
            note = (
                f"scored label choice left out of the search: {shown} labels, more than "
                f"max_scored_labels={max_labels} (each scored call would cost several greedy ones)"
            )
            return ("greedy",), note
    return decodings, None


def calibration_inputs(examples: Sequence[Example], source: CalibrationSource, limit: int) -> list[dict[str, Any]]:
    """The program inputs the prior is measured on: the first ``limit`` examples' inputs, or content-free ones."""
    if source == "content-free":
        keys = sorted(examples[0].inputs().keys()) if examples else []
        return [dict.fromkeys(keys, text) for text in CONTENT_FREE]
    if source != "inputs":
        raise ValueError(f"calibration source is 'inputs' or 'content-free', got {source!r}")
    return [dict(ex.inputs()) for ex in examples[:limit]]


def with_label_choice(
    program: Module,
    mode: ChoiceMode,
    examples: Sequence[Example] = (),
    *,
    source: CalibrationSource = "inputs",
    limit: int = 32,
    num_threads: int | None = None,
) -> Module:
    """A copy of ``program`` whose label predictors choose by likelihood; with ``mode="calibrated"``, priors learned.

    Runs the program (in likelihood mode) on the calibration inputs and scores, for each
    label predictor, the inputs it saw; the scores come from the LM's cache when it has one.
    """
    copy = program.deepcopy()
    targets = choosable(copy)
    for _, predictor in targets:
        predictor.choice = LabelChoice("likelihood")
    if mode == "likelihood" or not targets:
        return copy
    inputs = calibration_inputs(examples, source, limit)
    runs: dict[int, list[list[float]]] = {id(p): [] for _, p in targets}
    values_of: dict[int, list[Any]] = {}
    results: list[list[tuple[Any, dict[str, Any]]]] = [[] for _ in inputs]

    def one(i: int) -> None:
        trace: list = []
        with context(trace=trace):
            try:
                copy(**inputs[i])
            except Exception as error:  # an input the program cannot run on teaches no prior; the others still do
                if cannot_recover(error):
                    raise
        results[i] = [(step.predictor, step.inputs) for step in trace if id(step.predictor) in runs]

    run_indexed(one, len(inputs), num_threads or current().num_threads)
    for steps in results:  # in input order, so the prior does not depend on thread timing
        for predictor, step_inputs in steps:
            scored = predictor.label_scores(**step_inputs)
            if scored is not None:
                values_of[id(predictor)] = scored[0]
                runs[id(predictor)].append(scored[1])
    for _, predictor in targets:
        measured = runs[id(predictor)]
        if measured:
            prior = LabelChoice.learn_prior(values_of[id(predictor)], measured)
            predictor.choice = LabelChoice("calibrated", prior, len(measured))
    return copy
