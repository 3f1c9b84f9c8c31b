"""A ReAct agent with three real tools on the embedded model: a calculator, a Wikipedia-paragraph lookup, a date tool.

    python examples/agent.py [--model local/smollm2-135m] [--max-iters 3] [--compile]

The questions come with their answers, so the run reports how many the agent got
right, how many tool calls it made and how many of them failed. With
``--compile`` the agent is first compiled with BootstrapFewShot on a few
questions of the same kinds (the tiny default models rarely produce a passing
trace, so expect few or no demos).
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import operator
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _data import hotpotqa_corpus
from rich.console import Console
from rich.table import Table

import promptless as pl

_OPERATORS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.Pow: operator.pow, ast.USub: operator.neg, ast.Mod: operator.mod,
}  # fmt: skip


def calculator(expression: str) -> float:
    """Evaluate an arithmetic expression such as (17 + 3) * 4 / 2."""

    def value(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](value(node.operand))
        raise ValueError(f"only numbers and + - * / ** % are allowed, not {ast.unparse(node)!r}")

    return float(value(ast.parse(expression.strip(), mode="eval").body))


def days_between(start: str, end: str) -> int:
    """Number of days from start to end, both dates as YYYY-MM-DD."""
    return (dt.date.fromisoformat(end) - dt.date.fromisoformat(start)).days


def make_lookup(retriever: pl.BM25Retriever):
    def lookup(query: str) -> str:
        """Search Wikipedia paragraphs; returns the best matching paragraph with its title."""
        best = retriever(query, k=1)
        return f"{best[0].title}: {best[0].text[:400]}" if best else "nothing found"

    return lookup


QUESTIONS = [
    pl.Example(question="What is 17 times 23?", answer="391").with_inputs("question"),
    pl.Example(question="What is 1250 divided by 25, plus 8?", answer="58").with_inputs("question"),
    pl.Example(question="How many days are there from 2024-02-01 to 2024-03-01?", answer="29").with_inputs("question"),
    pl.Example(question="How many days are there from 2023-12-25 to 2024-01-08?", answer="14").with_inputs("question"),
    pl.Example(question="What is 2 to the power of 10?", answer="1024").with_inputs("question"),
    pl.Example(question="How many days are there from 2025-01-01 to 2025-12-31?", answer="364").with_inputs("question"),
]
TRAIN = [
    pl.Example(question="What is 12 times 12?", answer="144").with_inputs("question"),
    pl.Example(question="How many days are there from 2024-01-01 to 2024-01-31?", answer="30").with_inputs("question"),
    pl.Example(question="What is 300 minus 45?", answer="255").with_inputs("question"),
]


def correct(example: pl.Example, prediction: pl.Prediction, trace: object = None) -> bool:
    try:
        return abs(float(prediction.answer) - float(example.answer)) < 1e-6
    except (TypeError, ValueError):
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="local/gemma-3-270m")
    parser.add_argument("--max-iters", type=int, default=3)
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 110)
    pl.configure(lm=pl.LM(args.model, max_tokens=400))

    retriever = pl.BM25Retriever(hotpotqa_corpus())
    tools = [pl.Tool(calculator), pl.Tool(make_lookup(retriever), name="lookup"), pl.Tool(days_between)]
    agent = pl.ReAct("question -> answer: float", tools=tools, max_iters=args.max_iters)
    if args.compile:
        started = time.perf_counter()
        optimizer = pl.BootstrapFewShot(metric=correct, max_bootstrapped_demos=2, max_labeled_demos=0)
        agent = optimizer.compile(agent, trainset=TRAIN)
        demos = sum(len(p.demos) for p in agent.predictors())
        console.print(f"compiled in {time.perf_counter() - started:.0f} s: {demos} demos")

    table = Table(title=f"ReAct on {args.model} (max_iters={args.max_iters})")
    for column in ("question", "gold", "answer", "tool calls", "tool errors", "s"):
        table.add_column(column)
    right = calls = errors = 0
    for example in QUESTIONS:
        started = time.perf_counter()
        try:
            prediction = agent(question=example.question)
        except pl.ParseError as error:  # the model broke the format even after a retry: a wrong answer, not a crash
            prediction = pl.Prediction(answer=f"(unparsable: {error.reason[:40]})", steps=[])
        used = [s for s in prediction.steps if s.tool_name != "finish"]
        failed = [s for s in used if s.observation.startswith("Error")]
        right += correct(example, prediction)
        calls, errors = calls + len(used), errors + len(failed)
        table.add_row(
            example.question, example.answer, str(prediction.answer), str(len(used)), str(len(failed)),
            f"{time.perf_counter() - started:.1f}",
        )  # fmt: skip
    console.print(table)
    console.print(f"correct: {right}/{len(QUESTIONS)}; tool calls {calls}, of which failed {errors}")
    last = agent.predictors()[0]
    console.print(f"the step predictor's instructions:\n{last.signature.instructions}")


if __name__ == "__main__":
    main()
