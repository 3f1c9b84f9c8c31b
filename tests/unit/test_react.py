"""Tool and ReAct control flow, on ScriptedLM (a test double, not a model)."""

from __future__ import annotations

import json

import pytest

import promptless as pl
from promptless.lm.errors import LMContextOverflow
from promptless.modules.react import ReAct
from promptless.testing import ScriptedLM
from promptless.tool import Tool, ToolArgumentError


def add(a: int, b: int = 1) -> int:
    """Add two integers.

    More text that is not part of the description.
    """
    return a + b


def lookup(title: str) -> str:
    """Look up a page by title."""
    if title == "missing":
        raise KeyError(f"no page {title!r}")
    return f"{title} is a page"


def call(name: str, **args: object) -> dict:
    return {"name": name, "args": args}


def test_tool_infers_name_description_and_schema():
    tool = Tool(add)
    assert tool.name == "add"
    assert tool.desc == "Add two integers."
    assert tool.args == {"a": {"title": "A", "type": "integer"}, "b": {"default": 1, "title": "B", "type": "integer"}}
    assert tool(a="2", b=3) == 5  # coerced


def test_tool_rejects_bad_arguments_naming_them():
    tool = Tool(add)
    with pytest.raises(ToolArgumentError, match=r"tool 'add': a: Input should be a valid integer.*received"):
        tool(a="two")
    with pytest.raises(ToolArgumentError, match="c: Extra inputs are not permitted"):
        tool(a=1, c=2)
    assert tool.observe({"a": "x"}).startswith("Error: ToolArgumentError: tool 'add'")


def test_tool_error_becomes_observation_text():
    assert Tool(lookup).observe({"title": "missing"}) == "Error: KeyError: \"no page 'missing'\""


def test_tool_name_and_callable_checked():
    with pytest.raises(TypeError, match="needs a callable"):
        Tool("not a function")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="letters, digits"):
        Tool(add, name="add numbers")


def test_async_tool():
    import asyncio

    async def slow_double(x: int) -> int:
        """Double it."""
        return 2 * x

    tool = Tool(slow_double)
    assert tool.is_async
    assert asyncio.run(tool.acall(x=4)) == 8
    assert tool(x=2) == 4


def test_react_calls_tools_then_extracts():
    lm = ScriptedLM(
        [
            {"next_thought": "add them", "next_tool_call": call("add", a=2, b=3)},
            {"next_thought": "look it up", "next_tool_call": call("lookup", title="five")},
            {"next_thought": "done", "next_tool_call": call("finish")},
            {"reasoning": "2+3=5", "answer": "5"},
        ]
    )
    agent = ReAct("question -> answer", tools=[add, lookup], max_iters=5)
    with pl.context(lm=lm):
        result = agent(question="what is 2 + 3?")
    assert result.answer == "5"
    assert [s.tool_name for s in result.steps] == ["add", "lookup", "finish"]
    assert result.steps[0].observation == "5"
    assert result.trajectory["observation_1"] == "five is a page"
    assert result.trajectory["tool_args_0"] == {"a": 2, "b": 3}
    # the extraction step saw the whole trajectory
    last = lm.requests[-1].text
    assert "Observation 1: 5" in last and "Observation 2: five is a page" in last


def test_react_tool_call_is_constrained_to_each_tools_schema():
    agent = ReAct("question -> answer", tools=[add, lookup])
    schema = agent.react.signature.output_fields["next_tool_call"]
    from promptless.adapters.schema import output_json_schema

    full = output_json_schema(agent.react.signature)
    members = full["properties"]["next_tool_call"]["anyOf"]
    names = sorted(full["$defs"][m["$ref"].split("/")[-1]]["properties"]["name"]["const"] for m in members)
    assert names == ["add", "finish", "lookup"]
    add_args = full["$defs"]["add_args"]
    assert add_args["required"] == ["a"] and add_args["additionalProperties"] is False
    assert schema.kind == "output"


def test_react_tool_error_goes_into_trajectory_and_run_continues():
    lm = ScriptedLM(
        [
            {"next_thought": "try", "next_tool_call": call("lookup", title="missing")},
            {"next_thought": "stop", "next_tool_call": call("finish")},
            {"reasoning": "none found", "answer": "unknown"},
        ]
    )
    with pl.context(lm=lm):
        result = ReAct("question -> answer", tools=[lookup])(question="q")
    assert result.steps[0].observation.startswith("Error: KeyError")
    assert "Observation 1: Error: KeyError" in lm.requests[1].text
    assert result.answer == "unknown"


def test_react_stops_at_max_iters():
    lm = ScriptedLM(
        [{"next_thought": "again", "next_tool_call": call("add", a=1)}] * 3 + [{"reasoning": "r", "answer": "2"}]
    )
    with pl.context(lm=lm):
        result = ReAct("question -> answer", tools=[add], max_iters=3)(question="q")
    assert len(result.steps) == 3 and len(lm.requests) == 4
    assert result.answer == "2"


def test_react_trims_oldest_steps_when_context_overflows():
    replies = iter(
        [
            {"next_thought": "one", "next_tool_call": call("add", a=1)},
            {"next_thought": "two", "next_tool_call": call("add", a=2)},
            {"next_thought": "done", "next_tool_call": call("finish")},
        ]
    )

    def script(request):
        if "Thought 1: one" in request.text and "Thought 2: two" in request.text:
            return LMContextOverflow("prompt too long")
        if "next_tool_call" not in request.schema["properties"]:  # the extraction step
            return {"reasoning": "r", "answer": "3"}
        return next(replies)

    lm = ScriptedLM(script)
    with pl.context(lm=lm):
        result = ReAct("question -> answer", tools=[add], max_iters=5)(question="q")
    assert result.answer == "3"
    assert result.steps[0].thought == "two"  # "one" was dropped
    assert "(1 earlier step(s) omitted)" in lm.requests[-1].text


def test_react_unparsable_step_ends_loop_and_still_answers():
    lm = ScriptedLM(["not json at all", "still not json", {"reasoning": "r", "answer": "a"}])
    with pl.context(lm=lm):
        result = ReAct("question -> answer", tools=[add])(question="q")
    assert result.answer == "a"
    assert result.steps[0].tool_name == "(unparsable step)"


def test_react_predictors_are_compilable_and_named():
    agent = ReAct("question -> answer", tools=[add])
    assert [name for name, _ in agent.named_predictors()] == ["react", "extract.predict"]
    state = agent.dump_state()
    restored = ReAct("question -> answer", tools=[add])
    restored.load_state(json.loads(json.dumps(state)))


def test_react_rejects_bad_tools():
    with pytest.raises(ValueError, match="may not be named 'finish'"):
        ReAct("q -> a", tools=[Tool(add, name="finish")])
    with pytest.raises(ValueError, match="unique"):
        ReAct("q -> a", tools=[add, Tool(lookup, name="add")])
    with pytest.raises(ValueError, match="max_iters"):
        ReAct("q -> a", tools=[add], max_iters=0)


def test_react_acall_awaits_each_step_and_async_tools_on_the_loop():
    import asyncio
    import threading

    seen_threads: list[int] = []

    async def lookup_async(title: str) -> str:
        """Look up a page by title."""
        seen_threads.append(threading.get_ident())
        await asyncio.sleep(0)
        return f"{title} is a page"

    lm = ScriptedLM(
        [
            {"next_thought": "add them", "next_tool_call": call("add", a=2, b=3)},
            {"next_thought": "look it up", "next_tool_call": call("lookup_async", title="five")},
            {"next_thought": "done", "next_tool_call": call("finish")},
            {"reasoning": "2+3=5", "answer": "5"},
        ]
    )
    agent = ReAct("question -> answer", tools=[add, lookup_async], max_iters=5)

    async def main():
        with pl.context(lm=lm):
            return await agent.acall(question="what is 2 + 3?"), threading.get_ident()

    result, loop_thread = asyncio.run(main())
    assert result.answer == "5"
    assert [s.tool_name for s in result.steps] == ["add", "lookup_async", "finish"]
    assert result.steps[1].observation == "five is a page"
    assert seen_threads == [loop_thread]  # the async tool ran on the event loop, not in a worker thread
    assert "Observation 2: five is a page" in lm.requests[-1].text


def test_react_acall_trims_on_overflow_and_ends_on_unparsable_steps():
    import asyncio

    replies = iter(
        [
            {"next_thought": "one", "next_tool_call": call("add", a=1)},
            {"next_thought": "two", "next_tool_call": call("add", a=2)},
            "not json at all",
            "still not json",
        ]
    )

    def script(request):
        if "Thought 1: one" in request.text and "Thought 2: two" in request.text:
            return LMContextOverflow("prompt too long")
        if "next_tool_call" not in request.schema["properties"]:
            return {"reasoning": "r", "answer": "3"}
        return next(replies)

    lm = ScriptedLM(script)

    async def main():
        with pl.context(lm=lm):
            return await ReAct("question -> answer", tools=[add], max_iters=5).acall(question="q")

    result = asyncio.run(main())
    assert result.answer == "3"
    assert [s.thought for s in result.steps][:1] == ["two"]  # "one" was dropped to fit
    assert result.steps[-1].tool_name == "(unparsable step)"
