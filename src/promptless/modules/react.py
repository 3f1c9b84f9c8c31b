"""ReAct: think, call a tool, read what it returned, repeat; then extract the signature's outputs.

Each step is one LM call whose output is a thought plus a tool call typed as a
union of one model per tool (``{"name": "search", "args": {...}}``), so the
decoder is constrained to a known tool name *and* that tool's argument schema.
A tool that raises becomes an ``Error: ...`` observation; the agent goes on.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Union

from promptless.errors import LMContextOverflow, ParseError
from promptless.module import Module
from promptless.modules.chain_of_thought import ChainOfThought
from promptless.modules.predict import Predict
from promptless.primitives import Prediction
from promptless.signature import InputField, OutputField, Signature, ensure_signature
from promptless.tool import Tool, as_tool

FINISH = "finish"


@dataclass
class Step:
    """One turn of the loop: what the agent thought, which tool it called with what, and what came back."""

    thought: str
    tool_name: str
    tool_args: dict[str, Any]
    observation: str

    def render(self, index: int) -> str:
        args = json.dumps(self.tool_args, ensure_ascii=False)
        return (
            f"Thought {index}: {self.thought}\nAction {index}: {self.tool_name}({args})\n"
            f"Observation {index}: {self.observation}"
        )


@dataclass
class Trajectory:
    steps: list[Step] = field(default_factory=list)
    trimmed: int = 0  # steps dropped from the front to fit the context

    def render(self) -> str:
        if not self.steps:
            return "(no steps yet)"
        note = [f"({self.trimmed} earlier step(s) omitted)"] if self.trimmed else []
        return "\n".join(note + [s.render(i + 1 + self.trimmed) for i, s in enumerate(self.steps)])

    def as_dict(self) -> dict[str, Any]:
        """DSPy's flat form: ``thought_0``, ``tool_name_0``, ``tool_args_0``, ``observation_0``, ..."""
        out: dict[str, Any] = {}
        for i, step in enumerate(self.steps, start=self.trimmed):
            out |= {f"thought_{i}": step.thought, f"tool_name_{i}": step.tool_name}
            out |= {f"tool_args_{i}": step.tool_args, f"observation_{i}": step.observation}
        return out


class ReAct(Module):
    """``ReAct("question -> answer", tools=[search, calculator], max_iters=5)``.

    Its predictors (``react`` for the steps, ``extract.predict`` for the answer)
    compile like any other. The Prediction carries ``trajectory`` (DSPy's flat
    dict) and ``steps`` (the list of Step objects).
    """

    def __init__(
        self,
        signature: str | Signature | type[Signature],
        tools: Sequence[Tool | Callable[..., Any]],
        max_iters: int = 10,
    ) -> None:
        if max_iters < 1:
            raise ValueError(f"ReAct(max_iters=) must be at least 1, got {max_iters}")
        self.signature = ensure_signature(signature)
        self.tools = {tool.name: tool for tool in map(as_tool, tools)}
        if FINISH in self.tools:
            raise ValueError(f"a tool may not be named {FINISH!r}: ReAct uses that name to stop")
        if len(self.tools) != len(tools):
            raise ValueError(f"ReAct(tools=): tool names must be unique, got {[as_tool(t).name for t in tools]}")
        self.max_iters = max_iters
        self.react = Predict(self._step_signature())
        extract = self.signature.append("trajectory", InputField(desc="the steps taken so far"), str)
        self.extract = ChainOfThought(extract)

    def _step_signature(self) -> Signature:
        outputs = ", ".join(f"`{name}`" for name in self.signature.output_fields)
        lines = [
            self.signature.instructions.strip(),
            f"You are an agent. Each step, think, then call one tool. When you have what you need for {outputs}, "
            f"call `{FINISH}`.",
            "Tools:",
            *(f"- {tool.describe()}" for tool in self.tools.values()),
            f"- {FINISH}(): stop; the answer is written from the trajectory.",
        ]
        call_type = _tool_call_type([*self.tools.values()])
        step = self.signature.append("trajectory", InputField(desc="earlier thoughts, tool calls and observations"))
        step = step.append("next_thought", OutputField(desc="what to do next, and why"), str)
        call_desc = 'the tool to call, as {"name": tool, "args": {argument: value}}'
        step = step.append("next_tool_call", OutputField(desc=call_desc), call_type)
        for name in self.signature.output_fields:
            step = step.delete(name)
        return step.with_instructions("\n".join(line for line in lines if line))

    def forward(self, **inputs: Any) -> Prediction:
        trajectory = Trajectory()
        for _ in range(self.max_iters):
            try:
                step = self._call_trimming(self.react, trajectory, inputs)
            except ParseError as error:  # the LM broke the format even after retries: answer from what we have
                trajectory.steps.append(_unparsable(error))
                break
            call = _tool_call(step, trajectory)
            if call is None:
                break
            name, args = call
            trajectory.steps.append(Step(step.next_thought, name, args, self.tools[name].observe(args)))
        answer = self._call_trimming(self.extract, trajectory, inputs)
        return _prediction(answer, trajectory)

    async def aforward(self, **inputs: Any) -> Prediction:
        """``forward`` awaited end to end: LM calls through ``acall``, async tools awaited, sync tools in a thread."""
        trajectory = Trajectory()
        for _ in range(self.max_iters):
            try:
                step = await self._acall_trimming(self.react, trajectory, inputs)
            except ParseError as error:
                trajectory.steps.append(_unparsable(error))
                break
            call = _tool_call(step, trajectory)
            if call is None:
                break
            name, args = call
            observation = await self.tools[name].aobserve(args)
            trajectory.steps.append(Step(step.next_thought, name, args, observation))
        answer = await self._acall_trimming(self.extract, trajectory, inputs)
        return _prediction(answer, trajectory)

    @staticmethod
    def _call_trimming(module: Module, trajectory: Trajectory, inputs: dict[str, Any]) -> Prediction:
        """Call with the trajectory; when the prompt overflows the context, drop the oldest step and try again."""
        while True:
            try:
                return module(**inputs, trajectory=trajectory.render())
            except LMContextOverflow:
                if not trajectory.steps:  # nothing left to drop: the inputs alone do not fit
                    raise
                _drop_oldest(trajectory)

    @staticmethod
    async def _acall_trimming(module: Module, trajectory: Trajectory, inputs: dict[str, Any]) -> Prediction:
        while True:
            try:
                return await module.acall(**inputs, trajectory=trajectory.render())
            except LMContextOverflow:
                if not trajectory.steps:  # nothing left to drop: the inputs alone do not fit
                    raise
                _drop_oldest(trajectory)


def _drop_oldest(trajectory: Trajectory) -> None:
    trajectory.steps.pop(0)
    trajectory.trimmed += 1


def _unparsable(error: ParseError) -> Step:
    return Step("", "(unparsable step)", {}, f"Error: {error.reason}")


def _tool_call(step: Prediction, trajectory: Trajectory) -> tuple[str, dict[str, Any]] | None:
    """The step's tool name and arguments; ``None`` (with the finish recorded) when it says finish."""
    call = step.next_tool_call.root
    if call.name == FINISH:
        trajectory.steps.append(Step(step.next_thought, FINISH, {}, "Completed."))
        return None
    return call.name, call.args.model_dump()


def _prediction(answer: Prediction, trajectory: Trajectory) -> Prediction:
    return Prediction(**dict(answer.items()), trajectory=trajectory.as_dict(), steps=list(trajectory.steps))


def _tool_call_type(tools: list[Tool]) -> Any:
    """A union of ``{"name": Literal[tool], "args": <tool's args model>}``, one member per tool plus finish.

    Wrapped in a RootModel named ``ToolCall`` so prompts show that name, not the union's members.
    """
    from pydantic import BaseModel, ConfigDict, RootModel, create_model

    class _NoArgs(BaseModel):
        model_config = ConfigDict(extra="forbid")

    members = [
        create_model(f"call_{tool.name}", name=(Literal[tool.name], ...), args=(tool.args_model, ...))
        for tool in tools
    ]
    members.append(create_model(f"call_{FINISH}", name=(Literal[FINISH], ...), args=(_NoArgs, ...)))
    union = Union[tuple(members)]  # noqa: UP007 - a runtime-built union needs the subscript form
    return type("ToolCall", (RootModel[union],), {"__doc__": "One tool call.", "__module__": __name__})
