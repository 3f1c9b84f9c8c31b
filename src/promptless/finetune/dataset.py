"""Trace steps become training examples: the exact request a predictor sends, and the text it should get back.

A training example is rendered by the predictor's own adapter, so the prompt the
model is trained on is the prompt it will see at inference, token for token:

- ``ChatAdapter`` (and ``JSONAdapter``): the request's messages (rendered later with
  the model's chat template, as the llama.cpp backend does) and the assistant's
  JSON object, compact, as constrained decoding writes it;
- ``CompletionAdapter`` (the default for a base model such as Gemma-3-270M): the
  plain-text prompt ending in ``Label0:`` and the continuation its line grammar
  allows, ``" value0\\nLabel1: value1\\n"``.

Both completions are the adapter's own ``reply_text``, the one definition of what
it expects the model to write.

The tokenizer (``finetune.tokens``) appends the model's end-of-generation token:
after a complete answer, a grammar lets the model write only that.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from promptless.adapters import Adapter, ChatAdapter, CompletionAdapter, default_adapter_for
from promptless.lm import Request, resolve_lm
from promptless.settings import current

if TYPE_CHECKING:
    from promptless.module import Module
    from promptless.modules.predict import Predict
    from promptless.primitives import Example
    from promptless.signature import Signature
    from promptless.trace import TraceStep

ALL = "*"  # the task name of the one shared adapter when training is multitask


@dataclass(frozen=True)
class TrainingExample:
    """One step to learn: which predictor, the request it sends, and the completion to learn."""

    predictor: str
    request: Request
    completion: str
    source: str = "trace"  # "trace": a passing teacher trace; "label": the example's own labels
    index: int = -1  # the trainset example it came from


def completion_text(adapter: Adapter, signature: Signature, outputs: Mapping[str, Any]) -> str:
    """The text ``adapter.parse`` reads back as ``outputs`` (what the model should write)."""
    missing = [n for n in signature.output_fields if n not in outputs]
    if missing:
        raise ValueError(f"{signature.signature!r}: outputs {missing} missing from the step to learn")
    if isinstance(adapter, (ChatAdapter, CompletionAdapter)):  # JSONAdapter too: the same assistant turn
        return adapter.reply_text(signature, outputs)  # what the adapter's own grammar lets the model write
    raise TypeError(f"no training format for {type(adapter).__name__}; use ChatAdapter or CompletionAdapter")


def render_example(
    predictor: Predict,
    name: str,
    inputs: Mapping[str, Any],
    outputs: Mapping[str, Any],
    *,
    exclude_demos: bool = False,
    source: str = "trace",
    index: int = -1,
) -> TrainingExample:
    """The training example for one call of ``predictor``: formatted exactly as ``Predict`` formats it."""
    lm = resolve_lm(predictor.lm)
    adapter = predictor.adapter or current().adapter or default_adapter_for(lm)
    demos = [] if exclude_demos else list(predictor.demos)
    own_inputs = {k: v for k, v in inputs.items() if k in predictor.signature.input_fields}
    request = adapter.format(predictor.signature, demos, own_inputs, max_tokens=lm.max_tokens)
    return TrainingExample(name, request, completion_text(adapter, predictor.signature, outputs), source, index)


def from_traces(
    student: Module,
    traces: Iterable[tuple[int, Sequence[TraceStep], Mapping[int, str]]],
    *,
    exclude_demos: bool = False,
) -> list[TrainingExample]:
    """One example per step of every passing trace, for the student's predictor of the same name.

    ``traces`` holds ``(trainset index, steps, {id(teacher predictor): name})``; a step of a
    predictor the student does not have (a teacher with extra parts) is skipped.
    """
    predictors = dict(student.named_predictors())
    out = []
    for index, steps, names in traces:
        for step in steps:
            name = names.get(id(step.predictor))
            if name is None or name not in predictors:
                continue
            outputs = {k: v for k, v in step.outputs.toDict().items() if k in predictors[name].signature.output_fields}
            out.append(
                render_example(predictors[name], name, step.inputs, outputs, exclude_demos=exclude_demos, index=index)
            )
    return out


def from_labels(
    student: Module, examples: Sequence[Example], *, skip: Iterable[int] = (), exclude_demos: bool = False
) -> list[TrainingExample]:
    """Examples straight from labelled data, for each predictor whose inputs and outputs the example all has.

    In a one-step program that is every example; an intermediate step has no labels and gets none
    (a later step's labels come with the inputs the earlier steps gave: ``from_failed_traces``).
    """
    skipped = set(skip)
    out = []
    for name, predictor in student.named_predictors():
        fields = [*predictor.signature.input_fields, *predictor.signature.output_fields]
        for index, example in enumerate(examples):
            if index in skipped or not all(f in example for f in fields):
                continue
            out.append(
                render_example(
                    predictor, name, example, example, exclude_demos=exclude_demos, source="label", index=index
                )
            )
    return out


def from_failed_traces(
    student: Module,
    traces: Iterable[tuple[int, Sequence[TraceStep], Mapping[int, str]]],
    examples: Sequence[Example],
    *,
    exclude_demos: bool = False,
) -> list[TrainingExample]:
    """Labels for the later steps of failed teacher runs: the inputs the earlier steps gave, the labelled outputs.

    This is how a label reaches the last step of a pipeline, whose inputs the example does not
    have (they are what the earlier steps wrote): that step's last call in the trace is learned
    with the example's value of every output it writes. A step whose inputs the example holds is
    learned by ``from_labels``; an intermediate step, whose outputs no label names, gets nothing.
    """
    predictors = dict(student.named_predictors())
    out = []
    for index, steps, names in traces:
        example = examples[index]
        last = {names[id(step.predictor)]: step for step in steps if names.get(id(step.predictor)) in predictors}
        for name, step in last.items():
            signature = predictors[name].signature
            if not all(f in example for f in signature.output_fields):
                continue
            if all(f in example for f in signature.input_fields):
                continue  # from_labels learns it with the example's own inputs
            outputs = {f: example[f] for f in signature.output_fields}
            item = render_example(
                predictors[name], name, step.inputs, outputs, exclude_demos=exclude_demos, source="label", index=index
            )
            out.append(item)
    return out


def by_task(examples: Sequence[TrainingExample], *, multitask: bool) -> dict[str, list[TrainingExample]]:
    """Multitask: one task (``ALL``) for every predictor; otherwise one task per predictor name."""
    tasks: dict[str, list[TrainingExample]] = {}
    for example in examples:
        tasks.setdefault(ALL if multitask else example.predictor, []).append(example)
    return tasks
