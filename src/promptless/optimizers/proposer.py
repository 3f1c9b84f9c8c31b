"""The grounded instruction proposer MIPROv2 uses: new instructions written from what the task looks like.

Each proposal is grounded in three things, as in DSPy's GroundedProposer: a summary
of the training data (one LM call, shared by every proposal), the program's
structure (its predictors and their signatures, written out by code), and demos
of the predictor being rewritten. A "tip" varies per candidate so the proposals
differ in style, not only in sampling noise.

Error contract: ``summarize`` and ``propose`` raise what the LM call raises
(``ParseError`` when the reply cannot be read, ``ValueError`` for an empty
instruction); the caller decides which errors are fatal.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from promptless.module import Module
from promptless.modules.predict import Predict
from promptless.signature import InputField, OutputField, Signature

# DSPy's tips; "none" leaves the style to the model.
TIPS: dict[str, str] = {
    "none": "",
    "creative": "Don't be afraid to be creative when creating the new instruction!",
    "simple": "Keep the instruction clear and concise.",
    "description": "Make sure your instruction is very informative and descriptive.",
    "high_stakes": "The instruction should include a high stakes scenario in which the LM must solve the task!",
    "persona": 'Include a persona that is relevant to the task in the instruction (ie. "You are a ...")',
}

PROPOSAL_TEMPERATURE = 0.5  # some variety between candidates; the seed keeps it reproducible
SUMMARY_EXAMPLES = 8
VALUE_CHARS = 300  # long inputs (passages) are cut: the proposer needs their shape, not all of them


class DescribeDataset(Signature):
    """Describe the task these examples come from, in a few sentences.

    Say what the inputs are, what the outputs look like, and what makes the task hard."""

    examples: str = InputField(desc="examples of the task, one per block")
    summary: str = OutputField(desc="a short description of the task and its data")


class ProposeInstruction(Signature):
    """Write a better instruction for one step of a language-model program.

    Ground it in the description of the data, the program's structure and the examples of the step's inputs and
    outputs: say what the step must do and what a good output looks like. Follow the tip. Reply with the
    instruction only."""

    dataset_summary: str = InputField(desc="what the task and its data look like")
    program_structure: str = InputField(desc="the program's steps and their signatures")
    step: str = InputField(desc="the step to write the instruction for")
    current_instruction: str = InputField(desc="the step's instruction now")
    examples: str = InputField(desc="examples of the step's inputs and outputs")
    tip: str = InputField(desc="a tip on the style of the instruction")
    proposed_instruction: str = OutputField(desc="the new instruction for the step")


def describe_program(program: Module) -> str:
    """The program's predictors and their signatures as text: what a proposer needs to know of the code."""
    predictors = program.named_predictors()
    lines = [f"Program {type(program).__name__} with {len(predictors)} step(s):"]
    for i, (name, predictor) in enumerate(predictors, 1):
        lines.append(f"{i}. {describe_step(name, predictor)}")
    return "\n".join(lines)


def describe_step(name: str, predictor: Predict) -> str:
    """One predictor: its name, its signature and its fields' descriptions."""
    signature = predictor.signature
    parts = [f"`{name}`: {signature.signature}"]
    for field in signature.fields.values():
        if field.desc:
            parts.append(f"   {field.kind} `{field.name}`: {field.desc}")
    return "\n".join(parts)


def render_examples(examples: Sequence[Mapping[str, Any]], limit: int | None = None) -> str:
    """Examples as ``Field: value`` blocks, long values cut to ``VALUE_CHARS``."""
    blocks = []
    for example in list(examples)[:limit]:
        lines = []
        for key in example:
            text = str(example[key])
            if len(text) > VALUE_CHARS:
                text = text[:VALUE_CHARS] + " ..."
            lines.append(f"{key.replace('_', ' ').capitalize()}: {text}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) if blocks else "(no examples)"


def tip_order(seed: int) -> list[str]:
    """The tips in a seeded order; candidate ``i`` (from 1) gets ``order[(i - 1) % len(order)]``."""
    order = list(TIPS)
    random.Random(seed).shuffle(order)
    return order


class GroundedProposer:
    """Writes instructions for ``program``'s predictors; ``lm`` answers (None: the LM in force at the call)."""

    def __init__(self, program: Module, *, lm: Any = None, seed: int = 0) -> None:
        self.structure = describe_program(program)
        self.seed = seed
        self._summarize = Predict(DescribeDataset, lm=lm, temperature=PROPOSAL_TEMPERATURE, seed=seed)
        self._propose = Predict(ProposeInstruction, lm=lm, temperature=PROPOSAL_TEMPERATURE, seed=seed)

    def summarize(self, trainset: Sequence[Mapping[str, Any]]) -> str:
        """One LM call: a description of the task from a seeded sample of training examples."""
        examples = list(trainset)
        sample = random.Random(self.seed).sample(examples, min(SUMMARY_EXAMPLES, len(examples)))
        summary = str(self._summarize(examples=render_examples(sample)).summary).strip()
        if not summary:
            raise ValueError("the dataset summary came back empty")
        return summary

    def prompt_inputs(
        self, name: str, predictor: Predict, summary: str, demos: Sequence[Mapping[str, Any]], tip: str
    ) -> dict[str, str]:
        """What a proposal for predictor ``name`` is grounded in (also handy for inspecting the prompt)."""
        return {
            "dataset_summary": summary or "(no summary)",
            "program_structure": self.structure,
            "step": describe_step(name, predictor),
            "current_instruction": predictor.signature.instructions,
            "examples": render_examples(demos, limit=4),
            "tip": TIPS[tip] or "(none)",
        }

    def propose(self, name: str, predictor: Predict, summary: str, demos: Sequence[Mapping[str, Any]], tip: str) -> str:
        """One LM call: a new instruction for predictor ``name``."""
        inputs = self.prompt_inputs(name, predictor, summary, demos, tip)
        text = str(self._propose(**inputs).proposed_instruction)
        text = text.strip().strip('"').strip()
        if not text:
            raise ValueError(f"the proposed instruction for {name!r} came back empty")
        return text
